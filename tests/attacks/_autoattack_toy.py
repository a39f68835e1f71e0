"""Tiny, quickly trained problems shared by the AutoAttack component tests."""

import functools

import keras
import numpy as np

IMAGE = 8
CLASSES = 5


def toy_data(n=256, seed=0, image=IMAGE, channels=1, classes=CLASSES, noise=0.08):
    """Noisy copies of random class templates: easy, but not trivially robust."""
    templates = np.random.default_rng(1234)
    centers = templates.uniform(0.2, 0.8, size=(classes, image, image, channels))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = centers[y] + noise * rng.standard_normal((n, image, image, channels))
    return np.clip(x, 0.0, 1.0).astype("float32"), y.astype("int64")


@functools.cache
def trained_mlp(hidden=32, epochs=15, classes=CLASSES, channels=1, seed=0):
    """A small MLP trained on `toy_data` (cached per test process)."""
    x, y = toy_data(classes=classes, channels=channels)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((IMAGE, IMAGE, channels)),
            keras.layers.Flatten(),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(classes),
        ]
    )
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return model


def accuracy(model, x, y):
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    return float((np.asarray(logits).argmax(-1) == y).mean())


def linf(a, b):
    return (
        np.abs(np.asarray(a, "float64") - np.asarray(b, "float64"))
        .reshape(len(a), -1)
        .max(1)
    )


def l2(a, b):
    d = (np.asarray(a, "float64") - np.asarray(b, "float64")).reshape(len(a), -1)
    return np.sqrt((d**2).sum(1))
