"""FGSM and PGD: budgets, numpy references, strength, targets, seeds, backends, errors."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from testing import (
    TOY_CLASSES,
    accuracy,
    l2,
    linf,
    only_backends,
    toy_data,
    trained_mlp,
)

from specformer_keras.attacks import fgsm, pgd
from specformer_keras.attacks.losses import cw_margin_loss

EPS = 8 / 255
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def predictions(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False))).argmax(-1)


def linear_model(seed=0, inputs=12, classes=4):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(classes)])
    return model


def numpy_input_gradient(model, x, y, loss):
    """d loss / d x for a linear softmax model, analytically."""
    kernel, bias = [np.asarray(w, "float64") for w in model.get_weights()]
    logits = x.astype("float64") @ kernel + bias
    one_hot = np.eye(kernel.shape[1])[y]
    if loss == "ce":
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        return (probs - one_hot) @ kernel.T
    other = np.where(one_hot > 0, -np.inf, logits).argmax(1)
    return (np.eye(kernel.shape[1])[other] - one_hot) @ kernel.T


def numpy_pgd(model, x, y, eps, step_size, steps, norm, loss):
    x_adv = x.astype("float64")
    for _ in range(steps):
        grad = numpy_input_gradient(model, x_adv, y, loss)
        if norm == "linf":
            x_adv = np.clip(x_adv + step_size * np.sign(grad), x - eps, x + eps)
        else:
            unit = grad / np.linalg.norm(grad, axis=1, keepdims=True)
            delta = np.clip(x_adv + step_size * unit, 0.0, 1.0) - x
            size = np.linalg.norm(delta, axis=1, keepdims=True)
            x_adv = x + delta * np.minimum(1.0, eps / size)
        x_adv = np.clip(x_adv, 0.0, 1.0)
    return x_adv


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_pgd_matches_numpy_reference_on_linear_model(norm, loss):
    model = linear_model()
    rng = np.random.default_rng(1)
    x = rng.uniform(0.05, 0.95, size=(8, 12)).astype("float32")
    y = rng.integers(0, 4, 8)
    eps = 0.1 if norm == "linf" else 0.5
    ours = pgd(model, x, y, eps, eps / 4, 6, norm=norm, loss=loss, random_start=False)
    reference = numpy_pgd(model, x, y, eps, eps / 4, 6, norm, loss)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_fgsm_is_one_signed_gradient_step():
    model = linear_model(seed=3)
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(8, 12)).astype("float32")
    y = rng.integers(0, 4, 8)
    grad = numpy_input_gradient(model, x, y, "ce")
    expected = np.clip(x + 0.05 * np.sign(grad), 0.0, 1.0)
    np.testing.assert_allclose(fgsm(model, x, y, 0.05), expected, atol=1e-6)
    np.testing.assert_allclose(fgsm(model, x, y, 0.0), x)


def test_cw_margin_loss_matches_numpy():
    logits = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
    y = np.array([0, 1, 2, 3, 4, 0])
    masked = logits.copy()
    masked[np.arange(6), y] = -np.inf
    expected = masked.max(1) - logits[np.arange(6), y]
    got = keras.ops.convert_to_numpy(cw_margin_loss(logits, y))
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("norm,eps", [("linf", EPS), ("l2", 0.5)])
@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_budget_box_shape_and_dtype(norm, eps, loss):
    model = trained_mlp()
    x, y = toy_data(n=16, seed=5)
    x = x.astype("float64")
    x_adv = pgd(model, x, y, eps, eps / 4, 4, norm=norm, loss=loss, restarts=2, seed=0)
    assert isinstance(x_adv, np.ndarray)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float64
    distance = linf(x_adv, x) if norm == "linf" else l2(x_adv, x)
    assert distance.max() <= eps + 1e-5
    assert distance.max() > 0.5 * eps
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    tensor_out = fgsm(model, keras.ops.convert_to_tensor(x.astype("float32")), y, eps)
    assert keras.ops.is_tensor(tensor_out)


def test_attacks_lower_accuracy_and_pgd_is_stronger_than_fgsm():
    model = trained_mlp()
    x, y = toy_data(n=128, seed=7)
    clean = accuracy(model, x, y)
    fgsm_accuracy = accuracy(model, fgsm(model, x, y, 0.1), y)
    pgd_accuracy = accuracy(model, pgd(model, x, y, 0.1, 0.025, 10, seed=0), y)
    cw_accuracy = accuracy(
        model, pgd(model, x, y, 0.1, 0.025, 10, loss="cw", seed=0), y
    )
    assert clean > 0.9
    assert fgsm_accuracy < clean - 0.2
    assert pgd_accuracy <= fgsm_accuracy
    assert cw_accuracy <= fgsm_accuracy


@pytest.mark.parametrize("loss", ["ce", "cw"])
def test_targeted_attacks_reach_their_targets(loss):
    model = trained_mlp()
    x, y = toy_data(n=32, seed=9)
    targets = (y + 1) % TOY_CLASSES
    x_adv = pgd(model, x, targets, 0.3, 0.03, 20, loss=loss, targeted=True, seed=0)
    assert np.mean(predictions(model, x_adv) == targets) >= 0.9
    assert linf(x_adv, x).max() <= 0.3 + 1e-5


def test_seeded_random_starts_are_reproducible():
    model = trained_mlp()
    x, y = toy_data(n=16, seed=11)
    first = pgd(model, x, y, EPS, EPS / 4, 2, seed=3)
    np.testing.assert_array_equal(first, pgd(model, x, y, EPS, EPS / 4, 2, seed=3))
    assert not np.array_equal(first, pgd(model, x, y, EPS, EPS / 4, 2, seed=4))


def test_restarts_keep_every_success_of_the_first_run():
    model = trained_mlp()
    x, y = toy_data(n=64, seed=13)
    one = predictions(model, pgd(model, x, y, 0.06, 0.015, 3, seed=0)) != y
    three = (
        predictions(model, pgd(model, x, y, 0.06, 0.015, 3, restarts=3, seed=0)) != y
    )
    assert np.all(three[one])
    assert three.sum() >= one.sum()


def test_new_budgets_reuse_the_compiled_loop():
    from specformer_keras.attacks import runner

    model = linear_model(seed=5)
    x = np.random.default_rng(0).uniform(size=(4, 12)).astype("float32")
    y = np.array([0, 1, 2, 3])
    pgd(model, x, y, 0.1, 0.02, 3, seed=0)
    pgd(model, x, y, 0.2, 0.05, 3, seed=0)
    module = __import__(
        f"specformer_keras.backend.{keras.config.backend()}_attacks",
        fromlist=["_CACHE"],
    )
    keys = [k for k in module._CACHE[model] if k[0] == "pgd"]
    assert keys == [("pgd", "linf", "ce", 3, False)]
    assert runner.compile_body is not None


OTHER_BACKEND_SCRIPT = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    from specformer_keras.attacks import fgsm, pgd

    folder = sys.argv[1]
    data = np.load(folder + "/data.npz")
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(5)])
    model.load_weights(folder + "/model.weights.h5")
    x, y = data["x"], data["y"]
    np.savez(folder + "/other.npz",
             pgd=pgd(model, x, y, 0.1, 0.025, 5, seed=0),
             fgsm=fgsm(model, x, y, 0.1))
    """
)


# The comparison is symmetric (this run against a subprocess on the other
# backend), so one direction is enough; it runs under TensorFlow.
@only_backends("tensorflow")
def test_tensorflow_and_jax_agree_on_the_same_weights(tmp_path):
    model = trained_mlp()
    x, y = toy_data(n=64, seed=17)
    model.save_weights(str(tmp_path / "model.weights.h5"))
    np.savez(tmp_path / "data.npz", x=x, y=y)
    other = "jax" if keras.config.backend() == "tensorflow" else "tensorflow"
    environment = dict(os.environ, KERAS_BACKEND=other, PYTHONPATH=REPO)
    subprocess.run(
        [sys.executable, "-c", OTHER_BACKEND_SCRIPT, str(tmp_path)],
        check=True,
        env=environment,
        capture_output=True,
    )
    theirs = np.load(tmp_path / "other.npz")
    ours = {
        "pgd": pgd(model, x, y, 0.1, 0.025, 5, seed=0),
        "fgsm": fgsm(model, x, y, 0.1),
    }
    for name, x_adv in ours.items():
        # Same start (numpy seed) and weights: the iterates agree except where
        # a gradient coordinate is ~0 and its sign flips between backends.
        assert np.mean(np.abs(x_adv - theirs[name]) < 1e-4) > 0.99
        ours_accuracy = accuracy(model, x_adv, y)
        theirs_accuracy = accuracy(model, theirs[name], y)
        assert abs(ours_accuracy - theirs_accuracy) <= 1 / 64 + 1e-9


def bad_output_model():
    return keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(4), keras.layers.Reshape((2, 2))]
    )


@pytest.mark.parametrize(
    "overrides,kind,name",
    [
        ({"eps": -0.1}, ValueError, "eps"),
        ({"steps": 0}, ValueError, "steps"),
        ({"steps": 2.5}, TypeError, "steps"),
        ({"step_size": 0.0}, ValueError, "step_size"),
        ({"restarts": 0}, ValueError, "restarts"),
        ({"norm": "l1"}, ValueError, "norm"),
        ({"loss": "dlr"}, ValueError, "loss"),
        ({"seed": -1}, ValueError, "seed"),
        ({"targeted": "yes"}, TypeError, "targeted"),
        ({"random_start": 1}, TypeError, "random_start"),
        ({"x": np.full((4, 12), 1.5, "float32")}, ValueError, "x"),
        ({"y": np.array([0, 1, 2])}, ValueError, "y"),
        ({"y": np.array([0, 1, 2, 9])}, ValueError, "y"),
        ({"model": "bad_output"}, ValueError, "model"),
    ],
)
def test_bad_arguments_raise_clear_errors(overrides, kind, name):
    arguments = {
        "model": linear_model(seed=7),
        "x": np.random.default_rng(0).uniform(size=(4, 12)).astype("float32"),
        "y": np.array([0, 1, 2, 3]),
        "eps": 0.1,
        "step_size": 0.02,
        "steps": 2,
    }
    arguments.update(overrides)
    if arguments["model"] == "bad_output":
        arguments["model"] = bad_output_model()
    with pytest.raises(kind, match=rf"`{name}`.*Received: {name}"):
        pgd(**arguments)


def test_fgsm_rejects_negative_eps():
    model = linear_model()
    x = np.random.default_rng(0).uniform(size=(2, 12)).astype("float32")
    with pytest.raises(ValueError, match=r"`eps`.*Received: eps=-0.5"):
        fgsm(model, x, np.array([0, 1]), -0.5)
