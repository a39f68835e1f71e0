"""FAB-T: exact boundary projections, minimal norm on a linear model, budget, targets."""

import keras
import numpy as np
import pytest
from scipy.optimize import linprog, minimize
from testing import accuracy, l2, linf, toy_data, trained_mlp

from specformer_keras.attacks.fab import fab_targeted, project_onto_boundary


def _reference_projection(t, w, b, norm):
    """min ||d|| s.t. <w, t + d> = b, 0 <= t + d <= 1 by scipy (None if infeasible)."""
    n = t.size
    bounds = list(zip(-t, 1 - t))
    if norm == "linf":
        cost = np.r_[np.zeros(n), 1.0]
        a_ub = np.block([[np.eye(n), -np.ones((n, 1))], [-np.eye(n), -np.ones((n, 1))]])
        result = linprog(
            cost,
            A_ub=a_ub,
            b_ub=np.zeros(2 * n),
            A_eq=np.r_[w, 0.0][None],
            b_eq=[b - w @ t],
            bounds=bounds + [(0, None)],
        )
        return result.x[:n] if result.status == 0 else None
    result = minimize(
        lambda d: d @ d,
        np.zeros(n),
        jac=lambda d: 2 * d,
        constraints=[{"type": "eq", "fun": lambda d: w @ (t + d) - b}],
        bounds=bounds,
        method="SLSQP",
        options={"ftol": 1e-12, "maxiter": 500},
    )
    return result.x if result.success else None


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_projection_matches_scipy(norm):
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(60):
        t = rng.uniform(size=6)
        w = rng.normal(size=6)
        if trial % 4 == 0:
            w[2] = 0.0
        b = w @ t + 1.5 * rng.normal()
        d = np.asarray(
            keras.ops.convert_to_numpy(
                project_onto_boundary(
                    t[None].astype("float32"),
                    w[None].astype("float32"),
                    np.array([b], "float32"),
                    norm,
                )
            )
        )[0]
        assert np.all(t + d >= -1e-6) and np.all(t + d <= 1 + 1e-6)
        reachable = np.minimum(w, 0).sum() <= b <= np.maximum(w, 0).sum()
        if not reachable:
            # Unreachable: every coordinate moves to the box face facing the plane.
            side = np.sign(b - w @ t)
            corner = np.where(side * w > 0, 1.0, 0.0)
            np.testing.assert_allclose((t + d)[w != 0], corner[w != 0], atol=1e-6)
            continue
        expected = _reference_projection(t, w, b, norm)
        if expected is None:  # the solver failed on a reachable plane
            continue
        checked += 1
        size = np.abs(d).max() if norm == "linf" else np.linalg.norm(d)
        best = np.abs(expected).max() if norm == "linf" else np.linalg.norm(expected)
        assert abs(w @ (t + d) - b) < 1e-4
        assert size == pytest.approx(best, abs=2e-5)
    assert checked > 20


def _linear_two_class_model():
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(16, 2)).astype("float32")
    # Both logits agree at the grey image 0.5: the boundary passes through it.
    model.set_weights([kernel, -0.5 * kernel.sum(0)])
    return model


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_finds_nearly_minimal_perturbation_of_a_linear_model(norm):
    model = _linear_two_class_model()
    weights = model.get_weights()[0]
    rng = np.random.default_rng(3)
    x = rng.uniform(0.45, 0.55, size=(16, 4, 4, 1)).astype("float32")
    y = keras.ops.convert_to_numpy(model(x)).argmax(-1)
    x_adv = fab_targeted(model, x, y, eps=10.0, norm=norm, steps=20, seed=0)
    logits = keras.ops.convert_to_numpy(model(x))
    gap = np.abs(logits[:, 0] - logits[:, 1])
    normal = np.abs(weights[:, 0] - weights[:, 1])
    dual = normal.sum() if norm == "linf" else np.sqrt((normal**2).sum())
    minimal = gap / dual  # distance to the boundary; the box is not active here
    assert minimal.max() < 0.1
    found = linf(x_adv, x) if norm == "linf" else l2(x_adv, x)
    assert np.all(keras.ops.convert_to_numpy(model(x_adv)).argmax(-1) != y)
    assert np.all(found >= minimal * (1 - 1e-3))
    assert np.all(found <= minimal * 1.06)


def test_fab_respects_budget_and_hits_target():
    model = trained_mlp()
    x, y = toy_data(32, seed=12)
    eps = 0.1
    x_adv = fab_targeted(model, x, y, eps, steps=10, n_target_classes=1, seed=0)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert linf(x_adv, x).max() <= eps + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    pred = keras.ops.convert_to_numpy(model(x_adv)).argmax(-1)
    second = np.argsort(-keras.ops.convert_to_numpy(model(x)), axis=1)[:, 1]
    fooled = pred != y
    assert fooled.mean() > 0.2
    assert (pred[fooled] == second[fooled]).mean() > 0.9
    assert accuracy(model, x_adv, y) < accuracy(model, x, y)


def test_fab_seed_reproducibility_with_restarts():
    model = trained_mlp()
    x, y = toy_data(16, seed=12)
    a = fab_targeted(model, x, y, 0.05, steps=5, n_target_classes=1, restarts=2, seed=1)
    b = fab_targeted(model, x, y, 0.05, steps=5, n_target_classes=1, restarts=2, seed=1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"alpha_max": 0.0}, "Received: alpha_max=0.0"),
        ({"beta": 1.5}, "Received: beta=1.5"),
        ({"eta": 0.5}, "Received: eta=0.5"),
        ({"steps": 0}, "Received: steps=0"),
        ({"n_target_classes": 0}, "Received: n_target_classes=0"),
        ({"norm": "l1"}, "Received: norm='l1'"),
        ({"eps": -1.0}, "Received: eps=-1.0"),
    ],
)
def test_fab_argument_errors(kwargs, fragment):
    model = _linear_two_class_model()
    x = np.full((2, 4, 4, 1), 0.5, "float32")
    arguments = {"eps": 0.1, "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=fragment):
        fab_targeted(model, x, np.array([0, 1]), **arguments)
