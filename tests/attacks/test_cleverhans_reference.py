"""Our FGSM/PGD against cleverhans 4 (TensorFlow 2) on the same trained model and data."""

import keras
import numpy as np
import pytest
from testing import accuracy, toy_data, trained_mlp

from specformer_keras.attacks import fgsm, pgd

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="cleverhans.tf2 needs the TensorFlow backend",
)
EPS = 0.1


@pytest.fixture(scope="module")
def problem():
    pytest.importorskip("cleverhans")
    model = trained_mlp()
    x, y = toy_data(n=400, seed=41)
    return model, x, y


def model_fn(model):
    return lambda x: model(x, training=False)


def test_fgsm_equals_cleverhans(problem):
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method

    model, x, y = problem
    theirs = fast_gradient_method(
        model_fn(model),
        x,
        EPS,
        np.inf,
        clip_min=0.0,
        clip_max=1.0,
        y=y,
        sanity_checks=False,
    ).numpy()
    ours = fgsm(model, x, y, EPS)
    assert np.mean(np.abs(ours - theirs) < 1e-5) > 0.999
    assert abs(accuracy(model, ours, y) - accuracy(model, theirs, y)) <= 0.01


@pytest.mark.parametrize("norm,eps", [("linf", EPS), ("l2", 1.0)])
def test_pgd_without_random_start_equals_cleverhans(problem, norm, eps):
    from cleverhans.tf2.attacks.projected_gradient_descent import (
        projected_gradient_descent,
    )

    model, x, y = problem
    theirs = projected_gradient_descent(
        model_fn(model),
        x,
        eps,
        eps / 4,
        10,
        np.inf if norm == "linf" else 2,
        clip_min=0.0,
        clip_max=1.0,
        y=y,
        rand_init=False,
        sanity_checks=False,
    ).numpy()
    ours = pgd(model, x, y, eps, eps / 4, 10, norm=norm, random_start=False)
    assert np.mean(np.abs(ours - theirs) < 1e-4) > 0.99
    assert abs(accuracy(model, ours, y) - accuracy(model, theirs, y)) <= 0.01


def test_madry_pgd_from_the_same_random_start_matches_cleverhans(problem):
    """Random start uniform in [-eps, eps]: cleverhans draws it with TF's seeded
    RNG; the same draw is fed to our compiled PGD loop (different random starts
    would differ by sampling noise of a few points, not by the algorithm)."""
    import tensorflow as tf
    from cleverhans.tf2.attacks.projected_gradient_descent import (
        projected_gradient_descent,
    )

    from specformer_keras.attacks.pgd import run_pgd_once

    model, x, y = problem
    tf.random.set_seed(7)
    eta = tf.random.uniform(x.shape, -EPS, EPS, dtype=x.dtype).numpy()
    tf.random.set_seed(7)
    theirs = projected_gradient_descent(
        model_fn(model),
        x,
        EPS,
        EPS / 4,
        10,
        np.inf,
        clip_min=0.0,
        clip_max=1.0,
        y=y,
        rand_init=True,
        rand_minmax=EPS,
        sanity_checks=False,
    ).numpy()
    start = np.clip(x + eta, 0.0, 1.0)
    ours = run_pgd_once(model, x, y, start, EPS, EPS / 4, 10, "linf", "ce", False)[0]
    assert np.mean(np.abs(ours - theirs) < 1e-4) > 0.99
    assert accuracy(model, ours, y) < accuracy(model, x, y) - 0.2
    assert abs(accuracy(model, ours, y) - accuracy(model, theirs, y)) <= 0.01
