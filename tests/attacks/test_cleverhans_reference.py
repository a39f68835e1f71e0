"""Our FGSM / PGD against cleverhans 4 (`cleverhans.tf2.attacks`) on TensorFlow.

Same trained model, same data, same settings (clip to [0, 1], labels given,
``sanity_checks=False``). Without a random start both are deterministic and
must agree point by point; Madry PGD (uniform random start, ``rand_minmax=eps``)
draws different starts, so robust accuracies (averaged over seeds) must agree
within 1 point.
"""

import keras
import numpy as np
import pytest
from _autoattack_toy import accuracy, toy_data, trained_mlp

from specformer_keras.attacks import fgsm, pgd

pytestmark = pytest.mark.skipif(
    keras.config.backend() != "tensorflow",
    reason="cleverhans.tf2 runs on TensorFlow only",
)

N_POINTS = 400
LINF_EPS = 0.1  # clean accuracy 1.0, FGSM/PGD bring it to roughly 0.55
L2_EPS = 0.8


@pytest.fixture(scope="module")
def problem():
    pytest.importorskip("cleverhans")
    model = trained_mlp()
    x, y = toy_data(N_POINTS, seed=21)
    assert accuracy(model, x, y) > 0.95
    return model, x, y


def _cw_margin_for_cleverhans(labels, logits):
    """CW margin ``max_{j!=y} z_j - z_y`` with cleverhans's loss_fn signature."""
    import tensorflow as tf

    one_hot = tf.one_hot(tf.cast(labels, "int32"), tf.shape(logits)[-1])
    other = tf.reduce_max(logits - one_hot * 1e9, axis=-1)
    return other - tf.reduce_sum(logits * one_hot, axis=-1)


def _model_fn(model):
    return lambda t: model(t, training=False)


def _predictions(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False))).argmax(-1)


def _ord(norm):
    return np.inf if norm == "linf" else 2


@pytest.mark.parametrize("norm,eps", [("linf", LINF_EPS), ("l2", L2_EPS)])
def test_fgsm_matches_cleverhans_fast_gradient_method(problem, norm, eps):
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method

    model, x, y = problem
    ours = fgsm(model, x, y, eps, norm=norm)
    theirs = fast_gradient_method(
        _model_fn(model), x, eps, _ord(norm), clip_min=0.0, clip_max=1.0, y=y,
        sanity_checks=False,
    ).numpy()  # fmt: skip
    ours_acc, theirs_acc = accuracy(model, ours, y), accuracy(model, theirs, y)
    assert ours_acc < accuracy(model, x, y) - 0.2  # the attack does something
    assert abs(ours_acc - theirs_acc) <= 0.01
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(
    "norm,eps,loss",
    [("linf", LINF_EPS, "ce"), ("linf", LINF_EPS, "cw"), ("l2", L2_EPS, "ce")],
)
def test_pgd_without_random_start_matches_cleverhans_pointwise(
    problem, norm, eps, loss
):
    from cleverhans.tf2.attacks.projected_gradient_descent import (
        projected_gradient_descent,
    )

    model, x, y = problem
    steps, step_size = 10, eps / 4
    ours = pgd(
        model, x, y, eps, step_size, steps, norm=norm, loss=loss, random_start=False
    )
    theirs = projected_gradient_descent(
        _model_fn(model), x, eps, step_size, steps, _ord(norm),
        loss_fn=_cw_margin_for_cleverhans if loss == "cw" else None,
        clip_min=0.0, clip_max=1.0, y=y, rand_init=False, sanity_checks=False,
    ).numpy()  # fmt: skip
    ours_acc, theirs_acc = accuracy(model, ours, y), accuracy(model, theirs, y)
    assert ours_acc < accuracy(model, x, y) - 0.2
    assert abs(ours_acc - theirs_acc) <= 0.01
    if norm == "linf":  # same iterates up to float rounding
        same = np.abs(ours - theirs).reshape(len(x), -1).max(1) < 1e-4
        assert same.mean() >= 0.99
    else:  # cleverhans clips to [0, 1] before the L2 projection, we after it
        agree = np.mean(_predictions(model, ours) == _predictions(model, theirs))
        assert agree >= 0.97


def test_madry_pgd_with_random_start_matches_cleverhans_accuracy(problem):
    import tensorflow as tf
    from cleverhans.tf2.attacks.projected_gradient_descent import (
        projected_gradient_descent,
    )

    model, x, y = problem
    eps, steps = LINF_EPS, 20
    ours, theirs = [], []
    for seed in range(3):
        x_ours = pgd(model, x, y, eps, eps / 4, steps, random_start=True, seed=seed)
        tf.random.set_seed(seed)
        x_theirs = projected_gradient_descent(
            _model_fn(model), x, eps, eps / 4, steps, np.inf, clip_min=0.0,
            clip_max=1.0, y=y, rand_init=True, rand_minmax=eps, sanity_checks=False,
        ).numpy()  # fmt: skip
        assert np.abs(x_ours - x).max() <= eps + 1e-6
        assert np.abs(x_theirs - x).max() <= eps + 1e-6
        ours.append(accuracy(model, x_ours, y))
        theirs.append(accuracy(model, x_theirs, y))
    assert np.mean(ours) < accuracy(model, x, y) - 0.2
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.01, (ours, theirs)
