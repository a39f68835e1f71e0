"""Square Attack: schedule, budget, gradient-free strength, seeds, errors."""

import keras
import numpy as np
import pytest
from testing import accuracy, linf, toy_data, trained_mlp

from specformer_keras.attacks.apgd import apgd
from specformer_keras.attacks.square import square, window_fraction


def test_window_fraction_follows_the_published_schedule():
    # p_init halves after queries 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000.
    expected = {0: 0.8, 10: 0.8, 11: 0.4, 50: 0.4, 51: 0.2, 201: 0.1, 501: 0.05}
    expected.update({1001: 0.025, 2001: 0.0125, 4001: 0.00625, 6001: 0.003125})
    expected.update({8001: 0.0015625})
    for iteration, p in expected.items():
        assert window_fraction(iteration) == pytest.approx(p)
    # Rescaled to 1000 queries, query 101 behaves like query 1010.
    assert window_fraction(101, n_queries=1000, rescale_schedule=True) == pytest.approx(
        0.025
    )


class _StopGradient(keras.layers.Layer):
    """Identity whose gradient is zero: a (crude) gradient-masking defence."""

    def call(self, inputs):
        return keras.ops.stop_gradient(inputs)


def test_square_breaks_a_gradient_masked_model_that_apgd_cannot_move():
    trained = trained_mlp()
    masked = keras.Sequential([keras.Input((8, 8, 1)), _StopGradient(), trained])
    x, y = toy_data(32, seed=13)
    eps = 0.15
    clean = accuracy(masked, x, y)
    x_square = square(masked, x, y, eps, n_queries=1000, seed=0)
    assert linf(x_square, x).max() <= eps + 1e-6
    assert x_square.min() >= 0.0 and x_square.max() <= 1.0
    assert x_square.shape == x.shape and x_square.dtype == x.dtype
    square_acc = accuracy(masked, x_square, y)
    assert square_acc < clean - 0.2
    # The gradient is zero, so APGD only keeps its random start.
    apgd_acc = accuracy(masked, apgd(masked, x, y, eps, steps=5, seed=0), y)
    assert square_acc < apgd_acc


def test_square_seed_reproducibility():
    model = trained_mlp()
    x, y = toy_data(16, seed=14)
    a = square(model, x, y, 0.2, n_queries=200, seed=5)
    b = square(model, x, y, 0.2, n_queries=200, seed=5)
    c = square(model, x, y, 0.2, n_queries=200, seed=6)
    assert accuracy(model, a, y) < 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_square_l2_is_not_implemented():
    model = trained_mlp()
    x, y = toy_data(4, seed=15)
    with pytest.raises(NotImplementedError, match="Received: norm='l2'"):
        square(model, x, y, 0.5, norm="l2", n_queries=5)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"n_queries": 0}, "Received: n_queries=0"),
        ({"p_init": 0.0}, "Received: p_init=0.0"),
        ({"p_init": 1.5}, "Received: p_init=1.5"),
        ({"restarts": 0}, "Received: restarts=0"),
        ({"eps": -0.5}, "Received: eps=-0.5"),
    ],
)
def test_square_argument_errors(kwargs, fragment):
    model = trained_mlp()
    x, y = toy_data(4, seed=15)
    arguments = {"eps": 0.1, "n_queries": 5, **kwargs}
    with pytest.raises(ValueError, match=fragment):
        square(model, x, y, **arguments)


def test_square_needs_images():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    x = np.full((2, 5), 0.5, "float32")
    with pytest.raises(ValueError, match=r"Received: x.shape=\(2, 5\)"):
        square(model, x, np.array([0, 1]), 0.1, n_queries=5)
