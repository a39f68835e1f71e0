"""Run folders and checkpoints in-process: states, lock, corrupt files, CSV, schedules."""

import dataclasses
import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from recipes import checkpoints, modeling, run_dir
from recipes.config import Config, RecipeError


def _prepare(out, overwrite=False, **settings):
    with run_dir.locked(str(out)):
        return run_dir.prepare(str(out), {"epochs": 2, **settings}, overwrite)


def _epoch_backup(out, epoch=1):
    backup = out / "backup"
    backup.mkdir(exist_ok=True)
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": epoch}))


# -- states


def test_output_dir_fresh_resume_refuse(tmp_path):
    out = tmp_path / "run"
    assert _prepare(out) == "fresh"
    assert _prepare(out) == "resume"
    _epoch_backup(out)
    with pytest.raises(RecipeError, match="different settings \\(epochs\\)"):
        _prepare(out, epochs=3)
    (out / "results.json").write_text("{}")
    with pytest.raises(RecipeError, match="holds a finished run"):
        _prepare(out)
    assert _prepare(out, overwrite=True) == "fresh"
    assert sorted(os.listdir(out)) == [".lock", "run_config.json"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RecipeError, match="holds no run_config.json"):
        _prepare(foreign)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_failed_start_does_not_block_new_settings(tmp_path):
    out = tmp_path / "run"
    assert _prepare(out) == "fresh"
    (out / "training_log.csv").write_text("epoch,loss\n")  # no epoch finished
    assert _prepare(out, epochs=3) == "fresh"
    settings = json.loads((out / "run_config.json").read_text())["settings"]
    assert settings["epochs"] == 3
    assert not (out / "training_log.csv").exists()


def test_resumable_settings_may_change(tmp_path):
    out = tmp_path / "run"
    _prepare(out, verbose="auto", jit_compile="auto")
    _epoch_backup(out)
    assert _prepare(out, verbose="2", jit_compile="false") == "resume"


def test_trained_run_is_evaluated_not_retrained(tmp_path):
    out = tmp_path / "run"
    _prepare(out)
    (out / "trained.json").write_text(json.dumps({"train_seconds": 1.0}))
    assert _prepare(out) == "evaluate"
    with pytest.raises(RecipeError, match="different settings"):
        _prepare(out, epochs=3)


@pytest.mark.parametrize(
    "name", ["run_config.json", "backup/training_metadata.json", "trained.json"]
)
def test_corrupt_run_files_are_named(tmp_path, name):
    out = tmp_path / "run"
    _prepare(out)
    _epoch_backup(out)
    (out / name).write_text('{"settings": {"epo')
    with pytest.raises(RecipeError) as info:
        _prepare(out)
    message = str(info.value)
    assert str(out / name) in message and "--overwrite" in message
    assert _prepare(out, overwrite=True) == "fresh"


def test_corrupt_model_file_is_named(tmp_path):
    path = tmp_path / "final_model.keras"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RecipeError, match="final_model.keras cannot be loaded"):
        checkpoints.load_classifier(str(path), str(tmp_path))


# -- lock


def test_lock_refuses_a_second_holder_and_names_its_pid(tmp_path):
    out = str(tmp_path / "run")
    with run_dir.locked(out):
        with pytest.raises(
            RecipeError, match=f"in use by another run \\(PID {os.getpid()}\\)"
        ):
            with run_dir.locked(out):
                pass
    with run_dir.locked(out):  # released at the end of the block
        pass


def test_lock_of_another_process_and_a_stale_lock(tmp_path):
    out = str(tmp_path / "run")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.path.insert(0, sys.argv[1]); "
            "from recipes import run_dir\n"
            "with run_dir.locked(sys.argv[2]):\n"
            "    print('locked', flush=True); time.sleep(60)",
            os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
            out,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RecipeError, match=f"PID {holder.pid}"):
            with run_dir.locked(out):
                pass
    finally:
        holder.kill()
        holder.wait()
    # The dead process's PID is still in the file: its lock is taken over.
    assert open(os.path.join(out, ".lock")).read().strip() == str(holder.pid)
    deadline = time.time() + 10
    while True:
        try:
            with run_dir.locked(out):
                assert open(os.path.join(out, ".lock")).read().strip() == str(
                    os.getpid()
                )
            break
        except RecipeError:
            assert time.time() < deadline
            time.sleep(0.1)


# -- checkpoints


@pytest.mark.parametrize(
    "backed_up, text, expected",
    [
        (2, "epoch,loss\n0,2.0\n1,1.5\n2,1.2\n", "epoch,loss\n0,2.0\n1,1.5\n"),
        (3, "epoch,loss\n0,2.0\n1,1.5\n2,1.", "epoch,loss\n0,2.0\n1,1.5\n"),
        (3, "epoch,loss\n0,2.0\n1\n", "epoch,loss\n0,2.0\n"),
        (None, "epoch,loss\n0,2.0\n", "epoch,loss\n"),
    ],
)
def test_trim_csv_log_drops_rows_the_rerun_repeats(tmp_path, backed_up, text, expected):
    csv_path = tmp_path / "log.csv"
    csv_path.write_text(text)
    if backed_up is not None:
        _epoch_backup(tmp_path, epoch=backed_up)
    checkpoints.trim_csv_log(str(csv_path), str(tmp_path / "backup"))
    assert csv_path.read_text() == expected


def test_save_model_is_atomic_and_loads_back(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = str(tmp_path / "best_model.keras")
    checkpoints.save_model(model, path)
    assert sorted(os.listdir(tmp_path)) == ["best_model.keras"]
    loaded = checkpoints.load_classifier(path, str(tmp_path))
    x = np.ones((1, 3), "float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x))
    )


# -- optimizer and schedules


def _config(**changes):
    base = dict(
        epochs=4,
        learning_rate=0.1,
        warmup_epochs=1.0,
        schedule="cosine",
        grad_clip=1.0,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=1e-4,
    )
    return dataclasses.replace(Config(), **{**base, **changes})


def _lr(optimizer, step):
    schedule = optimizer._learning_rate
    if callable(schedule):
        return float(keras.ops.convert_to_numpy(schedule(step)))
    return float(schedule)


def test_cosine_schedule_with_linear_warmup():
    optimizer = modeling.build_optimizer(_config(), steps_per_epoch=10)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == 0.9 and optimizer.global_clipnorm == 1.0
    assert _lr(optimizer, 0) == pytest.approx(0.0)
    assert _lr(optimizer, 5) == pytest.approx(0.05, rel=1e-5)  # halfway up
    assert _lr(optimizer, 10) == pytest.approx(0.1, rel=1e-5)  # peak after warmup
    # Cosine over the remaining 30 steps: half-way (step 25) is half the peak.
    assert _lr(optimizer, 25) == pytest.approx(0.05, rel=1e-4)
    assert _lr(optimizer, 40) == pytest.approx(0.0, abs=1e-7)


def test_constant_schedule_with_warmup_and_adamw():
    optimizer = modeling.build_optimizer(
        _config(schedule="constant", optimizer="adamw", warmup_epochs=0.5, grad_clip=0),
        steps_per_epoch=4,
    )
    assert isinstance(optimizer, keras.optimizers.AdamW)
    assert optimizer.global_clipnorm is None
    got = [_lr(optimizer, step) for step in range(5)]
    np.testing.assert_allclose(got, [0.05, 0.1, 0.1, 0.1, 0.1], rtol=1e-6)


def test_epoch_backup_keeps_the_last_good_epoch(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    backup = checkpoints.EpochBackup(str(tmp_path / "backup"), str(tmp_path))
    backup.set_model(model)
    metadata = tmp_path / "backup" / "training_metadata.json"
    backup.on_epoch_end(0, {"loss": 1.0})
    assert json.loads(metadata.read_text())["epoch"] == 1
    backup.on_epoch_end(1, {"loss": float("nan")})
    assert json.loads(metadata.read_text())["epoch"] == 1
    model.stop_training = True  # TerminateOnNaN or the sigma monitor stopped it
    backup.on_epoch_end(2, {"loss": 0.5})
    assert json.loads(metadata.read_text())["epoch"] == 1
    assert checkpoints.diverged({"loss": float("inf")})
    assert not checkpoints.diverged({"loss": 2.0}) and not checkpoints.diverged({})
