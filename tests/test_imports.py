"""`import specformer_keras` (and every module of it) never imports TensorFlow on JAX or torch."""

import importlib.util
import os
import subprocess
import sys

import pytest
from testing import REPO_ROOT

SCRIPT = """
import importlib, os, pkgutil, sys
import specformer_keras
others = {"tensorflow", "jax", "torch"} - {os.environ["KERAS_BACKEND"]}
skipped = []
for info in pkgutil.walk_packages(specformer_keras.__path__, "specformer_keras."):
    leaf = info.name.rsplit(".", 1)[-1]
    if any(leaf.startswith(other + "_") for other in others):
        skipped.append(info.name)   # the other backends' own modules
        continue
    importlib.import_module(info.name)
loaded = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
print("skipped:", skipped)
assert not loaded, f"TensorFlow was imported: {loaded[:5]}"
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_no_tensorflow_import_on_other_backends(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed in this environment")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO_ROOT)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "specformer_keras.backend.tensorflow_attacks" in done.stdout
