"""The same weights on TensorFlow, JAX and PyTorch: same logits, attacks and verdicts.

One process per backend (``worker.py``) loads weights saved here and writes its
results; this test compares every pair. It needs all three frameworks in one
environment, which the nox ``tensorflow`` session has (the ``jax`` and ``torch``
sessions have no TensorFlow on purpose), so it runs once per CI run.
"""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from problem import build_mlp, build_vit
from testing import REPO_ROOT

BACKENDS = ("tensorflow", "jax", "torch")
MISSING = [b for b in BACKENDS if importlib.util.find_spec(b) is None]
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"needs tensorflow, jax and torch in one environment; missing {MISSING} "
        "(the nox tensorflow session has all three)",
    ),
]


def _toy_problem():
    rng = np.random.default_rng(1234)
    centers = rng.uniform(0.2, 0.8, size=(5, 8, 8, 1))
    y_train = rng.integers(0, 5, 256)
    x_train = centers[y_train] + 0.08 * rng.standard_normal((256, 8, 8, 1))
    y = rng.integers(0, 5, 32)
    x = centers[y] + 0.08 * rng.standard_normal((32, 8, 8, 1))
    clip = lambda a: np.clip(a, 0.0, 1.0).astype("float32")  # noqa: E731
    return clip(x_train), y_train, clip(x), y.astype("int64")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cross_backend")
    x_train, y_train, x, y = _toy_problem()
    keras.utils.set_random_seed(0)
    mlp = build_mlp()
    mlp.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    mlp.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)
    mlp.save_weights(str(folder / "mlp.weights.h5"))
    vit = build_vit()
    x_vit = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    for _ in range(3):
        vit(x_vit, training=True)  # moves u/v off their initial values too
    vit.save_weights(str(folder / "vit.weights.h5"))
    np.savez(folder / "problem.npz", x=x, y=y, x_vit=x_vit)
    out = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO_ROOT)
        done = subprocess.run(
            [sys.executable, WORKER, str(folder)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if done.returncode == 0:
            out[backend] = dict(np.load(folder / f"{backend}.npz"))
        else:
            out[backend] = f"{backend} worker failed:\n{done.stderr[-3000:]}"
    return out


def _pair(results, a, b):
    for backend in (a, b):
        if isinstance(results[backend], str):
            pytest.fail(results[backend])
    return results[a], results[b]


PAIRS = [("tensorflow", "jax"), ("tensorflow", "torch"), ("jax", "torch")]


@pytest.mark.parametrize("a,b", PAIRS)
def test_same_weights_same_logits(results, a, b):
    ra, rb = _pair(results, a, b)
    for key in ("vit_logits", "mlp_logits"):
        np.testing.assert_allclose(ra[key], rb[key], atol=1e-5)


@pytest.mark.parametrize("a,b", PAIRS)
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_same_adversarial_examples(results, a, b, attack):
    # No random start: the iterates depend only on the gradient signs, which
    # agree except where a coordinate of the gradient is ~0 (float rounding).
    ra, rb = _pair(results, a, b)
    difference = np.abs(ra[attack] - rb[attack])
    assert np.mean(difference < 1e-5) > 0.999, np.mean(difference < 1e-5)


@pytest.mark.parametrize("a,b", PAIRS)
def test_same_autoattack_verdicts(results, a, b):
    ra, rb = _pair(results, a, b)
    robust = ra["autoattack_robust"]
    assert 0 < robust.sum() < len(robust)  # the check is not vacuous
    np.testing.assert_array_equal(robust, rb["autoattack_robust"])
