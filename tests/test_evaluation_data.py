"""How `evaluate_robustness` reads ``data``: (x, y) arrays or batches, decided by structure.

A tuple or list of two is ``(x, y)`` only when its two elements fit together
as images and labels (``x`` of rank >= 2, one label per image); a sequence of
``(x, y)`` pairs is a list of batches, two included. Every accepted form gives
the per-point verdicts of the arrays; anything else is refused naming the
argument, the types and shapes received and the accepted forms.
"""

import keras
import numpy as np
import pytest
from evaluation_task import template_classifier
from testing import TOY_CLASSES, toy_data

from specformer_keras.evaluation import evaluate_robustness
from specformer_keras.evaluation.sources import data_source, describe

SETTINGS = {"attacks": ("clean", "pgd3"), "eps": 0.2, "verbose": False}


def verdicts(data, model=None, **overrides):
    model = model or template_classifier()
    report = evaluate_robustness(model, data, **{**SETTINGS, **overrides})
    return report["n"], report["per_point"]


def split(x, y, *starts):
    bounds = list(starts) + [len(x)]
    return [(x[a:b], y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


@pytest.fixture(scope="module")
def points():
    return toy_data(n=12, seed=7)


@pytest.fixture(scope="module")
def reference(points):
    n, per_point = verdicts(points, batch_size=4)
    assert n == 12 and "0" in per_point["pgd3"] and "1" in per_point["pgd3"]
    return per_point


@pytest.mark.parametrize(
    "form",
    [
        "tuple",
        "list (x, y)",
        "two batches",
        "three batches",
        "generator",
        "labels column",
    ],
)
def test_every_accepted_form_gives_the_arrays_verdicts(form, points, reference):
    x, y = points
    data = {
        "tuple": (x, y),
        "list (x, y)": [x, y],
        "two batches": split(x, y, 0, 8),
        "three batches": split(x, y, 0, 4, 8),
        "generator": iter(split(x, y, 0, 4, 8)),
        "labels column": (x, y[:, None]),
    }[form]
    assert verdicts(data, batch_size=4) == (12, reference)


def test_tf_data_batches_give_the_arrays_verdicts(points, reference):
    tf = pytest.importorskip("tensorflow")
    x, y = points
    one_hot = np.eye(TOY_CLASSES, dtype="float32")[y]
    dataset = tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(4)
    assert verdicts(dataset) == (12, reference)
    assert data_source(dataset, 4).total == 3


def test_two_batches_whose_x_and_y_have_one_shape_are_batches():
    """The closest a list of two batches comes to (x, y): each batch holds x
    and one-hot y of the same shape (3 features, 3 classes). Its elements are
    tuples, never arrays, so it reads as batches (6 points), as it must."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(6, 3)).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2]]
    assert data_source(split(x, y, 0, 3), 3).arrays is None
    n, per_point = verdicts(split(x, y, 0, 3), model=model)
    assert (n, per_point) == verdicts((x, y), model=model, batch_size=3)
    assert n == 6


@pytest.mark.parametrize(
    "make, received",
    [
        (
            lambda x, y: (x, y[:-1]),
            r"y.shape\[0\] == x.shape\[0\]\). Received: data=tuple of 2: "
            r"\(ndarray shape=\(12, 8, 8, 1\) dtype=float32, ndarray shape=\(11,\)",
        ),
        (
            lambda x, y: [(x[:4], y[:4]), (x[4:], y[4:-1])],
            r"every element must be an \(x, y\) batch. Received: data=list of 2: "
            r"\(tuple of 2, tuple of 2\)",
        ),
        (
            lambda x, y: [x, x],
            r"Received: data=list of 2: \(ndarray shape=\(12, 8, 8, 1\)",
        ),
        (lambda x, y: (x[:, 0, 0, 0], y), r"x must have rank >= 2"),
        (lambda x, y: [(x, y), (x, y), x], r"Received: data=list of 3"),
        (lambda x, y: iter([(x[:4], y[:3])]), r"batch 0 with x.shape=\(4, 8, 8, 1\)"),
    ],
)
def test_data_that_fits_no_form_is_refused_naming_shapes(make, received, points):
    x, y = points
    with pytest.raises(ValueError, match=r"Argument `data` must be .*" + received):
        evaluate_robustness(template_classifier(), make(x, y), **SETTINGS)


def test_describe_names_types_and_shapes_not_data():
    x = np.full((2, 3), 7.0)
    text = describe([(x, [0, 1]), 5, "abc", (x,), {}])
    assert "7.0" not in text and text.startswith("list of 5: (tuple of 2, int, str")
