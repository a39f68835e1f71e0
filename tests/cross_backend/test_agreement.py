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

import numpy as np
import pytest
from problem import build_vit
from testing import REPO_ROOT, toy_data, trained_mlp

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


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cross_backend")
    x, y = toy_data(n=32, seed=1)  # new points of the problem trained_mlp learned
    mlp = trained_mlp()  # toy_mlp trained on toy_data(n=256, seed=0)
    mlp.save_weights(str(folder / "mlp.weights.h5"))
    vit = build_vit()
    x_vit = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    for _ in range(3):
        vit(x_vit, training=True)  # moves u/v off their initial values too
    vit.save_weights(str(folder / "vit.weights.h5"))
    np.savez(folder / "problem.npz", x=x, y=y, x_vit=x_vit)
    # The three workers run at once, each writing only its own <backend>.npz and
    # .err: much of a worker's time is its single-threaded import and tracing.
    workers = {}
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO_ROOT)
        with open(folder / f"{backend}.err", "w") as stderr:
            workers[backend] = subprocess.Popen(
                [sys.executable, WORKER, str(folder)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
    out = {}
    for backend, worker in workers.items():
        try:
            returncode = worker.wait(timeout=900)
        except subprocess.TimeoutExpired:
            worker.kill()
            returncode = f"killed after 900 s ({worker.wait()})"
        if returncode == 0:
            out[backend] = dict(np.load(folder / f"{backend}.npz"))
        else:
            stderr = (folder / f"{backend}.err").read_text()[-3000:]
            out[backend] = f"{backend} worker failed ({returncode}):\n{stderr}"
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
