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


RECIPE_SCRIPT = """
import os, sys
from recipes import checkpoints, cifar10_adv, flags, modeling, train

class Stop(Exception):
    pass

build_trainable = modeling.build_trainable

def build_and_stop_at_fit(config, classifier, *args):
    trainable = build_trainable(config, classifier, *args)
    def fit(*unused, **unused_kwargs):
        # What the epoch-end checkpoint callbacks do first (Keras's
        # serialize_keras_object probes for TensorFlow), then stop.
        checkpoints.save_model(classifier, os.path.join(config.output_dir, "probe.keras"))
        checkpoints.load_classifier(os.path.join(config.output_dir, "probe.keras"), "")
        raise Stop
    trainable.fit = fit
    return trainable

modeling.build_trainable = build_and_stop_at_fit
flags.define_flags(cifar10_adv.get_config)
flags.FLAGS(["cifar10_adv"] + sys.argv[1:])
try:
    train.main("cifar10_adv", cifar10_adv.get_config)
except Stop:
    pass
else:
    raise AssertionError("the recipe never reached fit")
loaded = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
assert not loaded, f"TensorFlow was imported: {loaded[:5]}"
print("no tensorflow")
"""


def test_recipe_setup_on_jax_imports_no_installed_tensorflow(tmp_path):
    # Keras imports an installed TensorFlow from keras.utils.set_random_seed and
    # from model.save on every backend; the recipes keep it out on JAX
    # (recipes/backends.keep_tensorflow_unimported). Only meaningful where
    # TensorFlow IS installed: the tensorflow session, which also has JAX.
    for module in ("tensorflow", "jax"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: nothing to check here")
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("test", 2)):
        for label in range(2):
            folder = tmp_path / "images" / split / f"class_{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (16, 16, 3)).astype("uint8")
                Image.fromarray(pixels).save(folder / f"{i}.png")
    args = [
        "--config=smoke",
        "--backend=jax",
        f"--dataset={tmp_path / 'images'}",
        f"--cache_dir={tmp_path / 'cache'}",
        f"--output_dir={tmp_path / 'run'}",
    ]
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=REPO_ROOT)
    env.pop("XLA_FLAGS", None)
    done = subprocess.run(
        [sys.executable, "-c", RECIPE_SCRIPT, *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "no tensorflow" in done.stdout
