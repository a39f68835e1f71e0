"""apply_msvp: converting existing models keeps outputs and weights, adds MSVP."""

import keras
import numpy as np
import pytest

from specformer_keras import SpectralMultiHeadAttention, apply_msvp


def functional_model():
    inputs = keras.Input((6, 8))
    h = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha_0")(
        inputs, inputs
    )
    h = keras.layers.LayerNormalization()(h + inputs)
    h = keras.layers.MultiHeadAttention(num_heads=4, key_dim=2, name="mha_1")(h, h)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(h))
    return keras.Model(inputs, outputs)


def spectral_layers(model):
    return [
        m for m in model._flatten_layers() if isinstance(m, SpectralMultiHeadAttention)
    ]


def test_functional_model_conversion_keeps_outputs_and_adds_penalty():
    keras.utils.set_random_seed(0)
    model = functional_model()
    converted = apply_msvp(model, penalty=(1e-3, 0.0, 1e-3), power_iterations=2)
    x = np.random.default_rng(0).random((4, 6, 8)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)),
        keras.ops.convert_to_numpy(converted(x)),
        rtol=1e-6,
        atol=1e-6,
    )
    layers = spectral_layers(converted)
    assert [m.name for m in layers] == ["mha_0", "mha_1"]
    assert all(m.lambdas == {"query": 1e-3, "key": 0.0, "value": 1e-3} for m in layers)
    assert all(m.power_iterations == 2 for m in layers)
    # The original is untouched.
    assert spectral_layers(model) == []
    converted(x, training=True)
    assert len(converted.losses) == 2
    # Warm-up power iteration: estimates are already close to the exact SVD
    # (from below: u^T W v <= sigma_max for unit u, v).
    for m in layers:
        estimate, exact = m.spectral_norms(), m.spectral_norms(exact=True)
        for name in estimate:
            assert np.all(estimate[name] <= exact[name] * (1 + 1e-5))
            assert np.all(estimate[name] >= 0.9 * exact[name])


def test_conversion_fine_tunes_with_fit():
    converted = apply_msvp(functional_model(), penalty=1e-2)
    converted.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.default_rng(0).random((8, 6, 8)).astype("float32")
    history = converted.fit(x, np.arange(8) % 3, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()


def test_model_without_attention_is_rejected():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no keras.layers.MultiHeadAttention"):
        apply_msvp(model, penalty=1e-3)


def test_bad_penalty_is_rejected():
    with pytest.raises(ValueError, match="penalty"):
        apply_msvp(functional_model(), penalty=(1.0, 2.0))


def test_keras_hub_vit_backbone_randomly_initialized():
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub not installed")
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(16, 16, 3),
        patch_size=4,
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=16,
    )
    converted = apply_msvp(backbone, penalty=1e-3)
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(backbone(x)),
        keras.ops.convert_to_numpy(converted(x)),
        rtol=1e-5,
        atol=1e-5,
    )
    assert len(spectral_layers(converted)) == 2
    converted(x, training=True)
    assert len(converted.losses) == 2
    # Building the original again afterwards still gives plain attention.
    again = keras_hub.models.ViTBackbone.from_config(backbone.get_config())
    assert spectral_layers(again) == []
