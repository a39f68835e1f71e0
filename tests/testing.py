"""Test-suite constants and helpers, importable from any test module.

The one home of the suite's shared fixtures: the tiny ViT and its images, the
toy template problem of the attack tests, and `run_layer_test`, the checks
every layer passes (see CONTRIBUTING.md, "Tests"). Imports no TensorFlow.
(`conftest.py` files are not imported by name: there is more than one.)
"""

import functools
import os
import tempfile

import keras
import numpy as np
import pytest

BACKEND = keras.config.backend()
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10_ARCHIVE = os.path.join(
    os.path.dirname(REPO_ROOT), "shared", "data", "cifar10-jpeg.tar.gz"
)


def only_backends(*names):
    """Decorator: skip a test unless the active backend is one of ``names``."""
    return pytest.mark.skipif(
        BACKEND not in names,
        reason=f"needs backend in {names}, running {BACKEND}",
    )


def load_benchmark(name):
    """The module of ``benchmarks/<name>.py`` (its folder on ``sys.path`` for its imports)."""
    import importlib.util
    import sys

    folder = os.path.join(REPO_ROOT, "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(folder, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# === Shared small models and data ===

# The tiny ViT of the unit tests: 8x8 RGB images, 4 patches, one encoder block.
TINY_VIT = dict(
    image_size=8,
    patch_size=4,
    num_classes=3,
    hidden_dim=16,
    depth=1,
    num_heads=2,
    mlp_dim=16,
)


def tiny_vit(penalty=1e-2, seed=0, **overrides):
    """A `SpectralViT` of `TINY_VIT` (changed by `overrides`), the same on every call.

    `SpectralViT(seed=...)` seeds u/v, dropout and drop path but not the weight
    initializers, so the global Keras seed is set to `seed` first.
    """
    from specformer_keras import SpectralViT

    keras.utils.set_random_seed(seed)
    return SpectralViT(**{**TINY_VIT, **overrides}, penalty=penalty, seed=seed)


def tiny_images(n=16, size=8, channels=3, classes=3, seed=0):
    """`(x, y)`: `n` uniform float32 images in [0, 1) and integer labels."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, channels)).astype("float32")
    y = rng.integers(0, classes, size=n)
    return x, y


# === The toy classification problem of the attack, evaluation and cross-backend tests ===

TOY_IMAGE = 8
TOY_CLASSES = 5


def toy_templates(image=TOY_IMAGE, channels=1, classes=TOY_CLASSES):
    """The class templates of `toy_data`, `(classes, image, image, channels)` in [0.2, 0.8]."""
    rng = np.random.default_rng(1234)
    return rng.uniform(0.2, 0.8, size=(classes, image, image, channels))


def toy_data(
    n=256, seed=0, image=TOY_IMAGE, channels=1, classes=TOY_CLASSES, noise=0.08
):
    """Noisy copies of random class templates: easy, but not trivially robust.

    The templates (`toy_templates`) are the same for every `seed`; `seed`
    draws labels and noise.
    """
    centers = toy_templates(image, channels, classes)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = centers[y] + noise * rng.standard_normal((n, image, image, channels))
    return np.clip(x, 0.0, 1.0).astype("float32"), y.astype("int64")


def toy_mlp(hidden=32, classes=TOY_CLASSES, channels=1, image=TOY_IMAGE):
    """An untrained Flatten-Dense(relu)-Dense classifier of `toy_data` images."""
    return keras.Sequential(
        [
            keras.Input((image, image, channels)),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(classes),
        ]
    )


@functools.cache
def trained_mlp(hidden=32, epochs=15, classes=TOY_CLASSES, channels=1, seed=0):
    """A `toy_mlp` trained on `toy_data` (cached per test process)."""
    x, y = toy_data(classes=classes, channels=channels)
    keras.utils.set_random_seed(seed)
    model = toy_mlp(hidden, classes, channels)
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def accuracy(model, x, y):
    """Clean accuracy of `model` (inference mode) on `(x, y)`, a float."""
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    return float((np.asarray(logits).argmax(-1) == y).mean())


def linf(a, b):
    """Per-example L-inf distance between two batches, float64."""
    return (
        np.abs(np.asarray(a, "float64") - np.asarray(b, "float64"))
        .reshape(len(a), -1)
        .max(1)
    )


def l2(a, b):
    """Per-example L2 distance between two batches, float64."""
    d = (np.asarray(a, "float64") - np.asarray(b, "float64")).reshape(len(a), -1)
    return np.sqrt((d**2).sum(1))


# === Layer-test harness (in the spirit of keras.src.testing.TestCase.run_layer_test) ===


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_shape,
    expected_output_shape,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    supports_masking=None,
    call_kwargs=None,
    run_training_check=True,
    seed=0,
):
    """Runs the checks every layer of the package must pass, on the active backend.

    1. `get_config` names every argument of `init_kwargs`, `from_config`
       gives a layer with the same config, and
       `keras.saving` (de)serializes it to the same class and config.
    2. `build(input_shape)` builds it with the expected numbers of trainable
       and non-trainable weights (the non-trainable ones are the u/v state).
    3. A symbolic call and an eager call give `expected_output_shape` (`None`
       matches any size).
    4. Non-trainable weights do not move in inference (`training=False` and
       the default) and, when there are any, at least one moves in a training
       call (the power iteration updates u/v).
    5. Saved inside a functional model to a `.keras` file and loaded again:
       the same weight paths (sublayers are named), the same weights and the
       same inference outputs.
    6. With `run_training_check`, one `fit` step on the default compile path
       runs, gives a finite loss and moves the u/v state inside the train step.

    Args:
        layer_cls: The layer class.
        init_kwargs: Constructor arguments.
        input_shape: Shape tuple with the batch size, or a dict of them for
            layers called with several inputs, keyed by the `build` argument
            names: `{"query_shape": ..., "value_shape": ...}` builds with
            `build(query_shape=..., value_shape=...)` and calls with
            `layer(query=..., value=...)`.
        expected_output_shape: The output shape tuple.
        expected_num_trainable_weights: Checked when not None.
        expected_num_non_trainable_weights: Checked when not None.
        supports_masking: Checked against `layer.supports_masking` when not None.
        call_kwargs: Extra call arguments (not `training`).
        run_training_check: Whether to run one `fit` step.
        seed: Seed of the random inputs.

    Returns:
        The layer of the eager call (built, after the state checks), for
        further checks by the caller.
    """
    call_kwargs = dict(call_kwargs or {})
    several = isinstance(input_shape, dict)
    rng = np.random.default_rng(seed)
    shapes = input_shape if several else {"inputs_shape": input_shape}
    data = {
        key[: -len("_shape")]: rng.random(shape).astype("float32")
        for key, shape in shapes.items()
    }

    def call(layer, inputs, **kwargs):
        kwargs = {**call_kwargs, **kwargs}
        if several:
            return layer(**inputs, **kwargs)
        return layer(inputs["inputs"], **kwargs)

    def numpy(x):
        return np.asarray(keras.ops.convert_to_numpy(x))

    def check_shape(output, where):
        shape = tuple(output.shape)
        assert len(shape) == len(expected_output_shape) and all(
            e is None or e == s for e, s in zip(expected_output_shape, shape)
        ), f"{where}: expected output shape {expected_output_shape}, got {shape}"

    def check_counts(layer, where):
        assert layer.built, f"{where}: layer not built"
        if expected_num_trainable_weights is not None:
            assert len(layer.trainable_weights) == expected_num_trainable_weights, (
                f"{where}: {len(layer.trainable_weights)} trainable weights, "
                f"expected {expected_num_trainable_weights}"
            )
        if expected_num_non_trainable_weights is not None:
            n = len(layer.non_trainable_weights)
            assert n == expected_num_non_trainable_weights, (
                f"{where}: {n} non-trainable weights, "
                f"expected {expected_num_non_trainable_weights}"
            )

    def state(layer):
        return {w.path: numpy(w) for w in layer.non_trainable_weights}

    # 1. Serialization.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    missing = sorted(set(init_kwargs) - set(config))
    assert not missing, f"get_config() lacks constructor arguments {missing}"
    assert layer_cls.from_config(config).get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(revived) is layer_cls and revived.get_config() == config
    if supports_masking is not None:
        assert layer.supports_masking == supports_masking

    # 2. Build.
    layer = layer_cls(**init_kwargs)
    if several:
        layer.build(**input_shape)
    else:
        layer.build(input_shape)
    check_counts(layer, "build")

    # 3. Symbolic and eager calls.
    layer = layer_cls(**init_kwargs)
    symbolic = {k: keras.KerasTensor(v.shape, dtype="float32") for k, v in data.items()}
    check_shape(call(layer, symbolic), "symbolic call")
    check_counts(layer, "symbolic call")
    layer = layer_cls(**init_kwargs)
    check_shape(call(layer, data), "eager call")
    check_counts(layer, "eager call")

    # 4. The u/v state: frozen in inference, updated in training.
    before = state(layer)
    for training in (False, None):
        kwargs = {} if training is None else {"training": False}
        check_shape(call(layer, data, **kwargs), f"training={training}")
        after = state(layer)
        for path, value in before.items():
            np.testing.assert_array_equal(
                after[path], value, err_msg=f"{path} moved with training={training}"
            )
    check_shape(call(layer, data, training=True), "training=True")
    after = state(layer)
    if before:
        assert any(not np.array_equal(after[p], v) for p, v in before.items()), (
            f"no non-trainable weight moved in a training call: {sorted(before)}"
        )

    # 5. A .keras file round trip inside a functional model.
    inputs = {k: keras.Input(batch_shape=v.shape, name=k) for k, v in data.items()}
    model = keras.Model(inputs, call(layer_cls(**init_kwargs), inputs))
    call(model.layers[-1], data, training=True)  # u/v off their initial values
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "layer.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    paths = [w.path for w in model.weights]
    assert [w.path for w in loaded.weights] == paths, (
        "weight paths changed in the .keras round trip (name the sublayers)"
    )
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(numpy(a), numpy(b), err_msg=a.path)
    np.testing.assert_allclose(
        numpy(loaded(data, training=False)),
        numpy(model(data, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )

    # 6. One compiled training step.
    if run_training_check:
        trained = layer_cls(**init_kwargs)

        class Wrapper(keras.Model):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def call(self, x, training=False):
                return call(self.inner, x, training=training)

        wrapper = Wrapper(trained)
        output = numpy(wrapper(data))
        start = state(trained)
        wrapper.compile(
            optimizer="sgd",
            loss=lambda y_true, y_pred: keras.ops.mean(keras.ops.square(y_pred)),
        )
        history = wrapper.fit(data, np.zeros_like(output), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"]).all(), history.history
        end = state(trained)
        if start:
            assert any(not np.array_equal(end[p], v) for p, v in start.items()), (
                "no non-trainable weight moved in a fit step"
            )
    return layer
