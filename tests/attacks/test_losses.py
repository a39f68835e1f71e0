"""Attack losses against float64 references: values and gradients, confident points included.

Runs on every backend (KERAS_BACKEND=tensorflow|jax|torch).
"""

import keras
import numpy as np
from autodiff import grad_wrt_variable
from keras import ops

from specformer_keras.attacks.losses import cross_entropy_loss


def _logits(n=64, classes=10, seed=0):
    """Half confident (1 - p_y down to ~1e-11), half misclassified by up to 20 logits."""
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(n, classes)) * 3).astype("float32")
    y = rng.integers(0, classes, n)
    rows = np.arange(n)
    z[rows, y] += np.where(rows % 2 == 0, 1.0, -1.0) * rng.uniform(5, 25, n)
    return z.astype("float32"), y


def _softmax64(z):
    z = z.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def test_cross_entropy_value_matches_float64_even_when_tiny():
    z, y = _logits()
    p = _softmax64(z)
    rows = np.arange(len(y))
    # -log p_y without cancellation: log1p of the other classes' mass over p_y.
    reference = np.log1p((p.sum(axis=1) - p[rows, y]) / p[rows, y])
    loss = ops.convert_to_numpy(cross_entropy_loss(z, y))
    assert reference.min() < 1e-8  # the confident points are really confident
    np.testing.assert_allclose(loss, reference, rtol=1e-4)


def test_cross_entropy_gradient_matches_softmax_minus_one_hot():
    # d CE / d z = p - onehot; the y entry is -sum_{j != y} p_j, which float32
    # gets wrong as p_y - 1 on confident points (the bug this formulation fixes).
    z, y = _logits()
    variable = keras.Variable(z)
    grad = grad_wrt_variable(lambda: ops.sum(cross_entropy_loss(variable, y)), variable)
    p = _softmax64(z)
    rows = np.arange(len(y))
    reference = p.copy()
    reference[rows, y] = -(p.sum(axis=1) - p[rows, y])
    np.testing.assert_allclose(grad, reference, rtol=1e-4, atol=1e-30)


def test_cross_entropy_does_not_overflow():
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 0.0]], "float32")
    loss = ops.convert_to_numpy(cross_entropy_loss(z, np.array([0, 0])))
    np.testing.assert_allclose(loss, [0.0, 2000.0], atol=1e-3)
    variable = keras.Variable(z)
    grad = grad_wrt_variable(
        lambda: ops.sum(cross_entropy_loss(variable, np.array([0, 0]))), variable
    )
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad[1], [-1.0, 1.0, 0.0], atol=1e-6)
