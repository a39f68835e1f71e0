"""APGD-CE / APGD-T: schedule, losses, budget, strength, targets, seeds, errors."""

import keras
import numpy as np
import pytest
from testing import accuracy, l2, linf, toy_data, trained_mlp

from specformer_keras.attacks.apgd import apgd, apgd_targeted, checkpoint_schedule
from specformer_keras.attacks.losses import dlr_loss, targeted_dlr_loss


def _reference_checkpoints(steps):
    """Iterations at which fra31/auto-attack's counter logic checks the step."""
    k = max(int(0.22 * steps), 1)
    k_min = max(int(0.06 * steps), 1)
    decrease = max(int(0.03 * steps), 1)
    counter, checks = 0, []
    for i in range(steps):
        counter += 1
        if counter == k:
            checks.append(i)
            k = max(k - decrease, k_min)
            counter = 0
    return checks


@pytest.mark.parametrize("steps", [1, 5, 10, 37, 100, 250])
def test_checkpoint_schedule_matches_reference_counter(steps):
    assert checkpoint_schedule(steps) == _reference_checkpoints(steps)


def test_checkpoint_schedule_of_100_steps():
    assert checkpoint_schedule(100) == [21, 40, 56, 69, 79, 86, 92, 98]


def test_dlr_losses_match_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 7)).astype("float32")
    y = rng.integers(0, 7, 6)
    target = (y + 1 + rng.integers(0, 6, 6)) % 7
    ranked = -np.sort(-logits, axis=1)
    other = np.where(np.eye(7)[y] > 0, -np.inf, logits).max(1)
    true = logits[np.arange(6), y]
    dlr = -(true - other) / (ranked[:, 0] - ranked[:, 2] + 1e-12)
    tdlr = -(true - logits[np.arange(6), target]) / (
        ranked[:, 0] - 0.5 * (ranked[:, 2] + ranked[:, 3]) + 1e-12
    )
    got = keras.ops.convert_to_numpy(dlr_loss(logits, y))
    got_t = keras.ops.convert_to_numpy(targeted_dlr_loss(logits, y, target))
    np.testing.assert_allclose(got, dlr, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_t, tdlr, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 1.0)])
def test_apgd_respects_budget_box_shape_and_dtype(norm, eps):
    model = trained_mlp()
    x, y = toy_data(32, seed=3)
    x64 = x.astype("float64")
    x_adv = apgd(model, x64, y, eps, norm=norm, steps=10, seed=0)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float64
    distance = linf(x_adv, x) if norm == "linf" else l2(x_adv, x)
    assert distance.max() <= eps + 1e-5
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert accuracy(model, x_adv.astype("float32"), y) < accuracy(model, x, y)


def test_apgd_at_least_as_strong_as_pgd_with_same_iterations():
    attacks = pytest.importorskip("specformer_keras.attacks")
    if not hasattr(attacks, "pgd"):
        pytest.skip("specformer_keras.attacks.pgd is not available yet")
    model = trained_mlp()
    x, y = toy_data(128, seed=4)
    eps, steps = 0.06, 20
    pgd_acc, apgd_acc = [], []
    for seed in range(2):
        x_pgd = attacks.pgd(
            model, x, y, eps=eps, step_size=eps / 4, steps=steps, seed=seed
        )
        pgd_acc.append(accuracy(model, x_pgd, y))
        apgd_acc.append(
            accuracy(model, apgd(model, x, y, eps, steps=steps, seed=seed), y)
        )
    clean = accuracy(model, x, y)
    assert np.mean(pgd_acc) < clean, "the test problem should not be trivially robust"
    assert np.mean(apgd_acc) <= np.mean(pgd_acc) + 1 / 128, (apgd_acc, pgd_acc)


def test_apgd_returns_highest_loss_point_for_unbroken_points():
    model = trained_mlp()
    x, y = toy_data(32, seed=5)
    x_adv = apgd(model, x, y, 0.01, steps=5, seed=0)
    # A tiny budget breaks few points; the others move to higher loss.
    still_right = keras.ops.convert_to_numpy(model(x_adv)).argmax(-1) == y
    assert still_right.any()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    before = keras.ops.convert_to_numpy(loss(y, model(x)))[still_right]
    after = keras.ops.convert_to_numpy(loss(y, model(x_adv)))[still_right]
    assert after.mean() > before.mean()


def test_apgd_targeted_hits_the_second_class_on_an_easy_model():
    model = trained_mlp()
    x, y = toy_data(64, seed=6)
    logits = keras.ops.convert_to_numpy(model(x))
    second = np.argsort(-logits, axis=1)[:, 1]
    x_adv = apgd_targeted(model, x, y, 0.1, steps=20, n_target_classes=1, seed=0)
    assert linf(x_adv, x).max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    pred = keras.ops.convert_to_numpy(model(x_adv)).argmax(-1)
    fooled = pred != y
    assert fooled.mean() > 0.25
    assert (pred[fooled] == second[fooled]).mean() > 0.9


def test_apgd_seed_reproducibility():
    model = trained_mlp()
    x, y = toy_data(16, seed=7)
    a = apgd(model, x, y, 0.05, steps=5, seed=3)
    b = apgd(model, x, y, 0.05, steps=5, seed=3)
    c = apgd(model, x, y, 0.05, steps=5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_apgd_restarts_never_hurt():
    model = trained_mlp()
    x, y = toy_data(64, seed=8)
    one = accuracy(model, apgd(model, x, y, 0.05, steps=5, restarts=1, seed=0), y)
    three = accuracy(model, apgd(model, x, y, 0.05, steps=5, restarts=3, seed=0), y)
    assert three <= one


def _three_class_model():
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )


def _bad_output_model():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Dense(3)])


@pytest.mark.parametrize(
    "kwargs,error,fragment",
    [
        ({"eps": -0.1}, ValueError, "Received: eps=-0.1"),
        ({"steps": 0}, ValueError, "Received: steps=0"),
        ({"steps": 2.5}, TypeError, "Received: steps=2.5"),
        ({"restarts": 0}, ValueError, "Received: restarts=0"),
        ({"norm": "l1"}, ValueError, "Received: norm='l1'"),
        ({"loss": "cw"}, ValueError, "Received: loss='cw'"),
        ({"seed": -1}, ValueError, "Received: seed=-1"),
    ],
)
def test_apgd_argument_errors(kwargs, error, fragment):
    model = trained_mlp()
    x, y = toy_data(4, seed=9)
    arguments = {"eps": 0.1, "steps": 2, **kwargs}
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        apgd(model, x, y, **arguments)


def test_apgd_input_errors():
    model = trained_mlp()
    x, y = toy_data(4, seed=9)
    with pytest.raises(ValueError, match="must lie in"):
        apgd(model, x * 3.0, y, 0.1, steps=2)
    with pytest.raises(ValueError, match=r"Received: y.shape=\(3,\)"):
        apgd(model, x, y[:3], 0.1, steps=2)
    with pytest.raises(ValueError, match="labels in"):
        apgd(model, x, y + 10, 0.1, steps=2)
    with pytest.raises(ValueError, match="logits of shape"):
        apgd(_bad_output_model(), x, y, 0.1, steps=2)
    with pytest.raises(ValueError, match="at least 4 classes"):
        apgd_targeted(_three_class_model(), x, y % 3, 0.1, steps=2)
