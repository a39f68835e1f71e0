"""SpectralViT: presets, baseline equivalence, fit, MSVP metric, saving, errors."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from testing import BACKEND, REPO_ROOT, TINY_VIT

from specformer_keras import SpectralMultiHeadAttention, SpectralViT

TINY = {**TINY_VIT, "num_classes": 2, "depth": 2}


def learnable_data(n=64, seed=0):
    """Class 1 = bright left half; trivially learnable from patches."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3)).astype("float32") * 0.5
    y = rng.integers(0, 2, n)
    x[y == 1, :, :4] += 0.5
    return x, y


def compile_model(model, learning_rate=3e-3, **kwargs):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **kwargs,
    )
    return model


def test_presets_and_overrides():
    model = SpectralViT.from_preset("vit_tiny_patch4_32", depth=1, penalty=1e-5)
    assert (model.hidden_dim, model.num_heads, model.mlp_dim) == (192, 3, 768)
    assert model.output_shape == (None, 10)
    assert "vit_base_patch16_224" in SpectralViT.presets


def test_unknown_preset_lists_valid_names():
    with pytest.raises(
        ValueError, match="vit_tiny_patch4_32.*Received: name='vit_huge'"
    ):
        SpectralViT.from_preset("vit_huge")


@pytest.mark.parametrize("pooling", ["cls", "gap"])
def test_zero_penalty_is_the_same_architecture(pooling):
    msvp = SpectralViT(penalty=1e-3, pooling=pooling, **TINY)
    plain = SpectralViT(penalty=0.0, pooling=pooling, **TINY)
    assert [(w.path, w.shape) for w in msvp.trainable_weights] == [
        (w.path, w.shape) for w in plain.trainable_weights
    ]
    assert plain.non_trainable_weights == [] or all(
        "_u" not in w.name and "_v" not in w.name for w in plain.non_trainable_weights
    )
    # Same trainable weights => identical logits: MSVP changes training only.
    plain.set_weights([w.numpy() for w in msvp.trainable_weights])
    x, _ = learnable_data(4)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(msvp(x)),
        keras.ops.convert_to_numpy(plain(x)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert len(SpectralViT(penalty=1e-3, **TINY).spectral_norms()) == TINY["depth"]
    assert plain.spectral_norms() == {
        f"encoder_block_{i}/attention": {} for i in range(TINY["depth"])
    }


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_learns_and_reports_msvp_loss(jit_compile):
    keras.utils.set_random_seed(0)
    x, y = learnable_data()
    model = compile_model(
        SpectralViT(penalty=1e-3, seed=0, **TINY), jit_compile=jit_compile
    )
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    assert history["accuracy"][-1] > 0.8
    assert all(v > 0 for v in history["msvp_loss"])
    # The reported penalty is the formula evaluated on the final state.
    norms = model.spectral_norms()
    penalty = sum(
        1e-3 * np.sum(n**2) for layer in norms.values() for n in layer.values()
    )
    assert history["msvp_loss"][-1] == pytest.approx(penalty, rel=0.2)


def test_large_penalty_moves_sigma_compared_with_baseline():
    x, y = learnable_data()
    sigmas = {}
    for penalty in (0.0, 1.0):
        keras.utils.set_random_seed(1)
        model = compile_model(SpectralViT(penalty=penalty, seed=0, **TINY), 1e-2)
        model.fit(x, y, epochs=5, batch_size=16, verbose=0)
        exact = model.spectral_norms(exact=True)
        sigmas[penalty] = np.mean(
            [n for layer in exact.values() for n in layer.values()]
        )
    assert sigmas[1.0] < 0.8 * sigmas[0.0]


def test_config_round_trip():
    model = SpectralViT(
        penalty=(1e-3, 0.0, 2e-3), pooling="gap", drop_path_rate=0.1, seed=4, **TINY
    )
    config = model.get_config()
    clone = SpectralViT.from_config(config)
    assert clone.get_config() == config
    assert config["penalty"] == [1e-3, 0.0, 2e-3]


def test_keras_file_round_trip_is_exact(tmp_path):
    x, y = learnable_data(32)
    model = compile_model(SpectralViT(penalty=1e-2, seed=0, **TINY))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "vit.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SpectralViT)
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    )
    for a, b in zip(model.non_trainable_weights, loaded.non_trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert len(loaded.non_trainable_weights) == 2 * 3 * TINY["depth"]


def test_mixed_precision_fit():
    keras.config.set_dtype_policy("mixed_bfloat16")
    x, y = learnable_data(32)
    model = compile_model(SpectralViT(penalty=1e-2, seed=0, **TINY))
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0).history
    assert np.isfinite(history["loss"]).all() and history["msvp_loss"][-1] > 0
    layers = [
        m for m in model._flatten_layers() if isinstance(m, SpectralMultiHeadAttention)
    ]
    assert all(w.dtype == "float32" for m in layers for w in m.non_trainable_weights)


# A cycle, so that the three suites together check every pair of backends.
OTHER_BACKEND = {"tensorflow": "jax", "jax": "torch", "torch": "tensorflow"}[BACKEND]


def test_weights_saved_under_other_backend_give_same_logits(tmp_path):
    script = textwrap.dedent(
        f"""
        import keras
        import numpy as np
        from specformer_keras import SpectralViT
        model = SpectralViT(penalty=1e-2, seed=0, **{TINY!r})
        x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
        for _ in range(3):
            model(x, training=True)  # moves u/v too
        model.save_weights({str(tmp_path / "w.weights.h5")!r})
        np.save({str(tmp_path / "logits.npy")!r},
                keras.ops.convert_to_numpy(model(x)))
        """
    )
    env = dict(os.environ, KERAS_BACKEND=OTHER_BACKEND)
    try:
        __import__(OTHER_BACKEND)
    except ImportError:
        pytest.skip(f"{OTHER_BACKEND} is not installed")
    subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO_ROOT, check=True, timeout=300
    )
    model = SpectralViT(penalty=1e-2, seed=0, **TINY)
    model.load_weights(tmp_path / "w.weights.h5")
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)),
        np.load(tmp_path / "logits.npy"),
        atol=1e-5,
    )


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"image_size": 0}, "image_size=0"),
        ({"patch_size": -4}, "patch_size=-4"),
        ({"num_classes": 0}, "num_classes=0"),
        ({"depth": 0}, "depth=0"),
        ({"hidden_dim": 18, "num_heads": 4}, "hidden_dim=18, num_heads=4"),
        ({"image_size": 10}, "image_size=10, patch_size=4"),
        ({"pooling": "max"}, "pooling='max'"),
        ({"penalty": (1.0, 2.0)}, "exactly 3 values"),
        ({"penalty": -0.1}, "penalty=-0.1"),
        ({"drop_path_rate": 1.0}, "drop_path_rate=1.0"),
        ({"mean": (0.5, 0.5)}, "mean="),
        ({"std": 0.0}, "std="),
    ],
)
def test_invalid_constructor_arguments(overrides, match):
    with pytest.raises(ValueError, match=match):
        SpectralViT(**{**TINY, **overrides})


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"mlp_dim": 2.5}, "Received: mlp_dim=2.5"),
        ({"power_iterations": 1.5}, "Received: power_iterations=1.5"),
        ({"dropout_rate": "0.1"}, "Received: dropout_rate='0.1'"),
    ],
)
def test_wrongly_typed_constructor_arguments(overrides, match):
    with pytest.raises(TypeError, match=match):
        SpectralViT(**{**TINY, **overrides})


@pytest.mark.parametrize("typo", [{"penalti": 1.0}, {"hidden_dims": 32}])
def test_unknown_keyword_arguments_are_refused(typo):
    # Keras's functional constructor ignores unknown keywords: a typo would
    # silently build the default model (issue 13).
    with pytest.raises(
        TypeError, match=rf"Unrecognized keyword arguments.*{list(typo)[0]}.*Received"
    ):
        SpectralViT(**TINY, **typo)
    with pytest.raises(
        TypeError,
        match=rf"Unrecognized keyword arguments passed to SpectralViT.from_preset"
        rf".*{list(typo)[0]}.*Received",
    ):
        SpectralViT.from_preset("vit_micro_patch4_32", **typo)


def test_dtype_is_refused_with_the_policy_hint():
    # `dtype` was silently ignored by the functional constructor.
    with pytest.raises(TypeError, match="set_dtype_policy.*Received: dtype='bfloat16'"):
        SpectralViT(**TINY, dtype="bfloat16")


def test_model_keyword_arguments_still_work():
    model = SpectralViT(**TINY, name="vit", trainable=False)
    assert model.name == "vit" and not model.trainable
    model = SpectralViT.from_preset(
        "vit_micro_patch4_32", image_size=8, depth=1, trainable=False
    )
    assert model.depth == 1 and not model.trainable


@pytest.mark.parametrize("shape", [(2, 8, 8), (2, 8, 8, 1), (2, 16, 16, 3)])
def test_wrong_input_shapes_are_rejected(shape):
    model = SpectralViT(**TINY)
    with pytest.raises(ValueError, match="shape"):
        model(np.zeros(shape, "float32"))
