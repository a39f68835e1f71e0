"""apply_msvp: converting existing models keeps outputs and weights, adds MSVP."""

import keras
import numpy as np
import pytest
from testing import tiny_vit

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


# === Issue 13: every attention layer converted, clear refusals, .keras ===


def test_already_spectral_layers_get_the_new_penalty():
    # Before: apply_msvp did nothing on SpectralMultiHeadAttention layers.
    plain = tiny_vit(penalty=0.0, hidden_dim=8, depth=2, mlp_dim=8)
    converted = apply_msvp(plain, penalty=(1e-2, 0.0, 2e-2), power_iterations=2)
    layers = spectral_layers(converted)
    assert [m.lambdas for m in layers] == [
        {"query": 1e-2, "key": 0.0, "value": 2e-2}
    ] * 2
    assert all(m.power_iterations == 2 for m in layers)
    assert all(len(m.non_trainable_weights) == 4 for m in layers)  # u/v of q and v
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(plain(x)),
        keras.ops.convert_to_numpy(converted(x)),
        atol=1e-6,
    )
    # And back to penalty 0: the u/v state is dropped, every other weight kept.
    back = apply_msvp(converted, penalty=0.0)
    assert all(not m.non_trainable_weights for m in spectral_layers(back))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(back(x)),
        keras.ops.convert_to_numpy(plain(x)),
        atol=1e-6,
    )


@keras.saving.register_keras_serializable(package="tests")
class ScaledAttention(keras.layers.MultiHeadAttention):
    """A MultiHeadAttention subclass with its own argument and behaviour."""

    def __init__(self, scale=2.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, query, value, key=None, **kwargs):
        return self.scale * super().call(query, value, key=key, **kwargs)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def subclass_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 8))
    h = ScaledAttention(scale=3.0, num_heads=2, key_dim=4, name="scaled")(
        inputs, inputs
    )
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(h))
    return keras.Model(inputs, outputs)


def test_subclasses_keep_their_behaviour_and_reload(tmp_path):
    model = subclass_model()
    converted = apply_msvp(model, penalty=1e-3)
    (layer,) = spectral_layers(converted)
    assert isinstance(layer, ScaledAttention) and layer.scale == 3.0
    x = np.random.default_rng(0).random((4, 6, 8)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)),
        keras.ops.convert_to_numpy(converted(x)),
        rtol=1e-6,
        atol=1e-6,
    )
    converted(x, training=True)
    assert len(converted.losses) == 1
    path = str(tmp_path / "subclass.keras")
    converted.save(path)
    restored = keras.saving.load_model(path)
    (again,) = spectral_layers(restored)
    assert isinstance(again, ScaledAttention) and again.lambdas == layer.lambdas
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(x)),
        keras.ops.convert_to_numpy(converted(x)),
        atol=1e-6,
    )


def test_bare_attention_layer_is_converted():
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")
    x = np.random.default_rng(0).random((2, 5, 8)).astype("float32")
    expected = keras.ops.convert_to_numpy(layer(x, x))
    converted = apply_msvp(layer, penalty=1e-3)
    assert isinstance(converted, SpectralMultiHeadAttention)
    assert converted.name == "mha" and converted.penalized_projections
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(converted(x, x)), expected, atol=1e-6
    )
    # Unbuilt: a fresh MSVP layer with the same configuration.
    fresh = apply_msvp(keras.layers.MultiHeadAttention(2, 4), penalty=1e-3)
    assert isinstance(fresh, SpectralMultiHeadAttention) and not fresh.built


@pytest.mark.parametrize(
    "model, error, match",
    [
        ("abc", TypeError, "must be a Keras model.*Received: model='abc'"),
        (None, TypeError, "Received: model=None"),
        (keras.layers.Dense(2), TypeError, "must be a keras.Model.*Dense"),
    ],
)
def test_non_models_are_refused(model, error, match):
    with pytest.raises(error, match=match):
        apply_msvp(model, penalty=1e-3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"power_iterations": 0}, ValueError, "Received: power_iterations=0"),
        ({"warmup_iterations": -1}, ValueError, "Received: warmup_iterations=-1"),
        ({"warmup_iterations": 2.5}, TypeError, "Received: warmup_iterations=2.5"),
        ({"penalti": 1e-3}, TypeError, "penalti"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        apply_msvp(functional_model(), penalty=1e-3, **kwargs)


def test_keras_hub_vit_classifier_reloads_and_continues_training(tmp_path):
    # Before: "Layer 'mha' expected 0 variables, but received 6" on loading.
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub not installed")
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ViTBackbone(
        image_shape=(8, 8, 3),
        patch_size=4,
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        mlp_dim=8,
    )
    classifier = keras_hub.models.ViTImageClassifier(
        backbone=backbone, num_classes=3, preprocessor=None
    )
    converted = apply_msvp(classifier, penalty=1e-3)
    assert isinstance(converted, keras_hub.models.ViTImageClassifier)
    converted.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.default_rng(0).random((8, 8, 8, 3)).astype("float32")
    y = np.arange(8) % 3
    converted.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "vit.keras")
    converted.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, keras_hub.models.ViTImageClassifier)
    assert len(spectral_layers(restored)) == 1
    for got, want in zip(restored.weights, converted.weights):
        assert got.path == want.path
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want)
        )
    restored.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = restored.fit(x, y, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    restored(x, training=True)
    assert len(restored.losses) == 1
    # Converting the converted model again changes its penalty.
    again = apply_msvp(restored, penalty=0.5)
    assert [m.lambdas["query"] for m in spectral_layers(again)] == [0.5]
