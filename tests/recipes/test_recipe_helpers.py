"""recipes/common.py pieces in-process: schedules, output-folder rules, CSV trimming."""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest
from testing import REPO_ROOT


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location(
        "_recipes_common_helpers", os.path.join(REPO_ROOT, "recipes", "common.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _settings(**overrides):
    s = {
        "epochs": 4,
        "learning_rate": 0.1,
        "warmup_epochs": 1,
        "schedule": "cosine",
        "grad_clip": 1.0,
        "optimizer": "sgd",
        "momentum": 0.9,
        "weight_decay": 1e-4,
    }
    s.update(overrides)
    return s


def _lr(optimizer, step):
    schedule = optimizer._learning_rate
    if callable(schedule):
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return float(schedule)


def test_cosine_schedule_with_linear_warmup(common):
    optimizer = common.build_optimizer(_settings(), steps_per_epoch=10)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == 0.9 and optimizer.global_clipnorm == 1.0
    assert _lr(optimizer, 0) == pytest.approx(0.0)
    assert _lr(optimizer, 5) == pytest.approx(0.05, rel=1e-5)  # halfway up
    assert _lr(optimizer, 10) == pytest.approx(0.1, rel=1e-5)  # peak after warmup
    # Cosine over the remaining 30 steps: half-way (step 25) is half the peak.
    assert _lr(optimizer, 25) == pytest.approx(0.05, rel=1e-4)
    assert _lr(optimizer, 40) == pytest.approx(0.0, abs=1e-7)


def test_constant_schedule_with_warmup_and_adamw(common):
    optimizer = common.build_optimizer(
        _settings(
            schedule="constant", optimizer="adamw", warmup_epochs=0.5, grad_clip=0
        ),
        steps_per_epoch=4,
    )
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.global_clipnorm is None
    got = [_lr(optimizer, step) for step in range(5)]
    np.testing.assert_allclose(got, [0.05, 0.1, 0.1, 0.1, 0.1], rtol=1e-6)


def test_output_dir_fresh_resume_refuse(common, tmp_path):
    s = {"output_dir": str(tmp_path / "run"), "overwrite": False, "epochs": 2}
    assert common.prepare_output_dir(dict(s)) == "fresh"
    assert common.prepare_output_dir(dict(s)) == "resume"
    with pytest.raises(common.RecipeError, match="different settings \\(epochs\\)"):
        common.prepare_output_dir(dict(s, epochs=3))
    with open(os.path.join(s["output_dir"], "results.json"), "w") as f:
        json.dump({}, f)
    with pytest.raises(common.RecipeError, match="holds a finished run"):
        common.prepare_output_dir(dict(s))
    assert common.prepare_output_dir(dict(s, overwrite=True)) == "fresh"
    assert not os.path.exists(os.path.join(s["output_dir"], "results.json"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(common.RecipeError, match="holds no run_config.json"):
        common.prepare_output_dir({"output_dir": str(foreign), "overwrite": False})
    assert (foreign / "notes.txt").read_text() == "mine"


def test_trim_csv_log_drops_epochs_to_rerun(common, tmp_path):
    csv_path = tmp_path / "log.csv"
    csv_path.write_text("epoch,loss\n0,2.0\n1,1.5\n2,1.2\n")
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2}))
    common.trim_csv_log(str(csv_path), str(backup))
    assert csv_path.read_text() == "epoch,loss\n0,2.0\n1,1.5\n"


@pytest.mark.parametrize(
    "text, expected",
    [("8/255", 8 / 255), ("0.5", 0.5), (" 2/255 ", 2 / 255), ("0", 0.0)],
)
def test_parse_fraction(common, text, expected):
    assert common.parse_fraction("eps", text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["-1/255", "abc", "1/0", "nan"])
def test_parse_fraction_rejects(common, text):
    with pytest.raises(common.RecipeError, match="Received: eps="):
        common.parse_fraction("eps", text)


@pytest.mark.parametrize(
    "setting, backend, replicas, expected",
    [
        # Keras's "auto" leaves TF on CPU without XLA; the recipes ask for it.
        ("auto", "tensorflow", 1, True),
        ("auto", "tensorflow", 2, "auto"),
        ("auto", "jax", 1, "auto"),
        ("true", "jax", 1, True),
        ("true", "tensorflow", 1, True),
        ("false", "tensorflow", 1, False),
        ("false", "tensorflow", 4, False),
        ("false", "jax", 1, False),
    ],
)
def test_resolve_jit_compile(common, setting, backend, replicas, expected):
    assert common.resolve_jit_compile(setting, backend, replicas) == expected


def test_resolve_jit_compile_refuses_forced_xla_under_tf_distribute(common):
    with pytest.raises(common.RecipeError, match="--jit_compile=true cannot be used"):
        common.resolve_jit_compile("true", "tensorflow", 2)
