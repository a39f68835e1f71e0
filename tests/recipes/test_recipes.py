"""Recipes end to end (subprocesses): files produced, bad flags, refuse, kill and resume.

Each run uses the `smoke` config on a tiny synthetic image folder built here
(16x16 images, a few classes), so the tests do not depend on the shared archive.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from testing import BACKEND, REPO_ROOT

import specformer_keras  # noqa: F401  (registers SpectralViT for load_model)
from recipes import variants

RECIPES = os.path.join(REPO_ROOT, "recipes")

pytestmark = pytest.mark.slow


def _env(backend):
    env = dict(os.environ)
    env["KERAS_BACKEND"] = backend
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.pop("XLA_FLAGS", None)
    return env


def _run(recipe, args, backend=BACKEND, timeout=600):
    return subprocess.run(
        [sys.executable, os.path.join(RECIPES, recipe), *args],
        capture_output=True,
        text=True,
        env=_env(backend),
        cwd=REPO_ROOT,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """train/ and test/ folders of 4 classes of 16x16 PNGs (class-dependent colors)."""
    root = tmp_path_factory.mktemp("recipe_data")
    rng = np.random.default_rng(0)
    for split, count in (("train", 16), ("test", 8)):
        for label in range(4):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 120, (16, 16, 3)) + 30 * label
                keras.utils.save_img(str(folder / f"{i}.png"), image, scale=False)
    return str(root)


@pytest.fixture(scope="module")
def smoke_run(image_folder, tmp_path_factory):
    """`(output folder, CompletedProcess)` of the plain smoke command, run once."""
    out = str(tmp_path_factory.mktemp("smoke") / "run")
    return out, _run("cifar10_adv.py", _smoke_args(image_folder, out))


def _smoke_args(image_folder, out, extra=()):
    return [
        "--config=smoke",
        f"--dataset={image_folder}",
        f"--cache_dir={os.path.join(os.path.dirname(out), 'cache')}",
        f"--output_dir={out}",
        *extra,
    ]


EXPECTED_FILES = (
    "results.json",
    "run_config.json",
    "best_model.keras",
    "final_model.keras",
    "training_log.csv",
    "sigma.json",
    "sigma.csv",
    "training_curves.png",
    "sigma.png",
    "accuracy_vs_eps.png",
)


def _check_run_outputs(out, epochs=1, num_classes=4):
    files = set(os.listdir(out))
    assert set(EXPECTED_FILES) <= files, sorted(files)
    assert "backup" not in files  # removed when training finished
    events = [f for _, _, fs in os.walk(os.path.join(out, "tensorboard")) for f in fs]
    assert any(f.startswith("events.out.tfevents") for f in events)
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    accuracy = results["robustness"]["accuracy"]
    assert sorted(accuracy) == sorted(results["settings"]["eval_attacks"])
    assert all(0.0 <= a <= 1.0 for a in accuracy.values())
    assert accuracy["pgd20"] <= accuracy["clean"]
    curve = results["robustness_curve"]
    assert curve["eps"] == results["settings"]["curve_eps"]
    assert results["final_spectral_norms"]
    with open(os.path.join(out, "sigma.json")) as f:
        sigma_epochs = [e["epoch"] for e in json.load(f)["history"]]
    assert sigma_epochs == list(range(-1, epochs))
    with open(os.path.join(out, "training_log.csv")) as f:
        header = f.readline().strip().split(",")
        rows = f.read().strip().splitlines()
    assert len(rows) == epochs
    assert "val_accuracy" in header and any(h.startswith("sigma/") for h in header)
    model = keras.saving.load_model(os.path.join(out, "final_model.keras"))
    logits = model(np.zeros((2, 16, 16, 3), "float32"))
    assert tuple(logits.shape) == (2, num_classes)
    return results


# Under TensorFlow, cifar10_adv.py runs end to end in test_kill_and_resume.
@pytest.mark.parametrize(
    "recipe, extra, method, backends",
    [
        ("cifar10_adv.py", (), "pgd_at", ("jax", "torch")),
        ("cifar10_standard.py", ("--mixup", "--cutmix"), "standard", ("tensorflow",)),
        ("cifar100_adv.py", ("--method=trades",), "trades", ("tensorflow",)),
        ("imagenette_adv.py", ("--image_size=16",), "pgd_at", ("tensorflow",)),
    ],
)
def test_recipe_end_to_end(recipe, extra, method, backends, image_folder, request):
    if BACKEND not in backends:
        pytest.skip(f"{recipe} runs end to end under {backends} only (time)")
    if recipe == "cifar10_adv.py":  # the plain smoke command: shared with the next test
        out, result = request.getfixturevalue("smoke_run")
    else:
        out = str(request.getfixturevalue("tmp_path") / "run")
        result = _run(recipe, _smoke_args(image_folder, out, extra))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = _check_run_outputs(out)
    assert results["settings"]["backend"] == BACKEND
    assert results["settings"]["method"] == method


def _error_line(result, recipe):
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    name = recipe.replace(".py", "")
    lines = [line for line in result.stderr.splitlines() if line.startswith(name)]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


# Each case is a process; those failing after Keras is imported cost a framework
# import each (TF about 4 s). Their checks (recipes/config.py, flags.py and the
# model/attack name checks of modeling.py and report.py) are the same Python on
# every backend, so the whole table runs in the jax session (the quickest import);
# every session runs the cases that fail before Keras is imported and, through
# specformer_keras's own modules, `--eval_attacks`.
TABLE_BACKEND = "jax"
table_only = pytest.mark.skipif(
    BACKEND != TABLE_BACKEND,
    reason=f"the same flag check on every backend; the {TABLE_BACKEND} session runs "
    "the whole table, this one --eval_attacks and the pre-Keras cases (time)",
)


@pytest.mark.parametrize(
    "args, expected",
    [
        pytest.param(
            ["--preset=vit_huge"], "--preset must be one of", marks=table_only
        ),
        pytest.param(
            ["--eps=-8/255"], "--eps must be a finite number in [0", marks=table_only
        ),
        pytest.param(
            ["--dataset=no/such/data.tar.gz"], "was not found", marks=table_only
        ),
        pytest.param(
            ["--penalty=1e-3,1e-3"], "--penalty takes 1 or 3 value", marks=table_only
        ),
        (["--config=fast"], "--config must be one of"),
        pytest.param(
            ["--jit_compile=yes"], "--jit_compile must be one of", marks=table_only
        ),
        (["--no_such_flag=1"], "Unknown command line flag"),
        pytest.param(["--seed=-1"], "--seed must be an integer >= 0", marks=table_only),
        (["--eval_attacks=clean,foo"], "--eval_attacks names unknown attacks ['foo']"),
        pytest.param(
            ["--curve_attack=foo"], "--curve_attack must be an attack", marks=table_only
        ),
        pytest.param(
            ["--model_override=hidden_dims=32"],
            "unknown SpectralViT arguments",
            marks=table_only,
        ),
        pytest.param(
            ["--model_override=penalty=0.5"],
            "cannot set penalty: use --penalty",
            marks=table_only,
        ),
        (["--backend=numpy"], "--backend must be one of"),
    ],
)
def test_bad_flags_exit_with_one_clear_line(args, expected, tmp_path):
    result = _run(
        "cifar10_adv.py", ["--config=smoke", *args, f"--output_dir={tmp_path / 'out'}"]
    )
    assert result.returncode == 2
    assert expected in _error_line(result, "cifar10_adv.py")
    assert not (tmp_path / "out").exists()


def test_output_dir_that_is_a_file_exits_with_one_clear_line(tmp_path):
    a_file = tmp_path / "out"
    a_file.write_text("not a folder")
    result = _run("cifar10_adv.py", ["--config=smoke", f"--output_dir={a_file}"])
    assert result.returncode == 2
    assert "--output_dir must be a folder" in _error_line(result, "cifar10_adv.py")


def test_quick_config_finds_shared_archive(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(RECIPES, "cifar10_adv.py"),
            "--config=quick",
            "--print_settings",
        ],
        capture_output=True,
        text=True,
        env=_env(BACKEND),
        cwd=str(tmp_path),  # relative dataset path resolved from the repo root
        timeout=120,
    )
    if not os.path.exists(variants.SHARED_CIFAR10):
        assert result.returncode == 2 and "was not found" in result.stderr
        pytest.skip("shared CIFAR-10 archive not present")
    assert result.returncode == 0, result.stderr[-2000:]
    settings = json.loads(result.stdout)
    assert os.path.samefile(settings["dataset"], variants.SHARED_CIFAR10)
    assert settings["config"] == "quick" and settings["epochs"] == 4
    assert not os.listdir(tmp_path)  # --print_settings writes nothing


@pytest.mark.skipif(BACKEND != "tensorflow", reason="one backend is enough (time)")
def test_kill_and_resume(image_folder, tmp_path):
    out = str(tmp_path / "run")
    args = _smoke_args(image_folder, out, ("--epochs=4", "--subset=64"))
    metadata = os.path.join(out, "backup", "training_metadata.json")
    process = subprocess.Popen(
        [sys.executable, os.path.join(RECIPES, "cifar10_adv.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(BACKEND),
        cwd=REPO_ROOT,
    )
    deadline = time.time() + 400
    while not os.path.exists(metadata) and process.poll() is None:
        assert time.time() < deadline, "no epoch finished in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with open(metadata) as f:
        finished = json.load(f)["epoch"]
    assert 1 <= finished < 4, "killed too late to test resuming"
    assert not os.path.exists(os.path.join(out, "results.json"))

    # Different settings on an unfinished run: refused, nothing touched.
    changed = _run("cifar10_adv.py", [*args[:-2], "--epochs=5", "--subset=64"])
    assert changed.returncode == 2
    assert "different settings (epochs)" in _error_line(changed, "cifar10_adv.py")

    resumed = _run("cifar10_adv.py", args)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resume run" in resumed.stdout
    assert f"Epoch {finished + 1}/4" in resumed.stdout
    assert "Epoch 1/4" not in resumed.stdout
    _check_run_outputs(out, epochs=4, num_classes=4)

    # Killed during the final evaluation (trained.json, no results.json): the
    # rerun evaluates the final model without training, from the saved batches.
    with open(os.path.join(out, "training_log.csv")) as f:
        log_before = f.read()
    with open(os.path.join(out, "results.json")) as f:
        first = json.load(f)
    assert os.listdir(os.path.join(out, "evaluation_curve"))
    os.remove(os.path.join(out, "results.json"))
    evaluated = _run("cifar10_adv.py", args)
    assert evaluated.returncode == 0, (
        evaluated.stdout[-3000:] + evaluated.stderr[-3000:]
    )
    assert "evaluate run" in evaluated.stdout and "Epoch" not in evaluated.stdout
    with open(os.path.join(out, "training_log.csv")) as f:
        assert f.read() == log_before
    again_results = _check_run_outputs(out, epochs=4, num_classes=4)
    for key in ("robustness", "robustness_curve"):
        assert again_results[key]["accuracy"] == first[key]["accuracy"], key

    # A finished run is never overwritten silently; --overwrite starts afresh.
    again = _run("cifar10_adv.py", args)
    assert again.returncode == 2
    assert "holds a finished run" in _error_line(again, "cifar10_adv.py")


def test_same_seed_same_run(image_folder, smoke_run, tmp_path):
    """Two runs of one command on one backend: the same log and the same results.

    The first run is `smoke_run` (on JAX and torch also checked end to end above),
    the second a fresh process into another folder.
    """
    logs, accuracies = [], []
    second = str(tmp_path / "second")
    for out, result in (smoke_run, (second, None)):
        if result is None:
            result = _run("cifar10_adv.py", _smoke_args(image_folder, out))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        with open(os.path.join(out, "training_log.csv")) as f:
            logs.append(f.read())
        with open(os.path.join(out, "results.json")) as f:
            accuracies.append(json.load(f)["robustness"]["accuracy"])
    assert logs[0] == logs[1]
    assert accuracies[0] == accuracies[1]


@pytest.mark.skipif(
    BACKEND == "torch",
    reason="JAX and torch read folders through the same ImageDataset (PIL); the jax "
    "session tests that path (time)",
)
def test_corrupt_image_is_named_and_the_fixed_folder_then_runs(image_folder, tmp_path):
    """One line naming the file; the failed start does not block the next command."""
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    bad = data / "train" / "class_0" / "0.png"
    good = bad.read_bytes()
    bad.write_bytes(b"not an image")
    out = str(tmp_path / "run")
    args = _smoke_args(str(data), out, ("--eval_attacks=clean", "--curve_eps=0"))
    failed = _run("cifar10_adv.py", args)
    assert failed.returncode == 2
    assert str(bad) in _error_line(failed, "cifar10_adv.py")
    bad.write_bytes(good)
    fixed = _run("cifar10_adv.py", [*args, "--seed=1"])  # other settings: allowed
    assert fixed.returncode == 0, fixed.stdout[-3000:] + fixed.stderr[-3000:]


@pytest.mark.skipif(
    BACKEND != "jax",
    reason="the stop reads the logged loss in recipes/train.py and checkpoints.py, the "
    "same code on every backend; one backend is enough (time)",
)
def test_divergence_stops_with_one_line_and_keeps_no_bad_model(image_folder, tmp_path):
    out = tmp_path / "run"
    args = _smoke_args(image_folder, str(out), ("--learning_rate=1e30", "--epochs=2"))
    result = _run("cifar10_adv.py", args)
    assert result.returncode == 2
    assert "training diverged" in _error_line(result, "cifar10_adv.py")
    for name in ("best_model.keras", "final_model.keras", "trained.json", "backup"):
        assert not (out / name).exists(), name
    fixed = _run("cifar10_adv.py", [*args[:-2], "--epochs=1"])  # no epoch finished
    assert fixed.returncode == 0, fixed.stdout[-3000:] + fixed.stderr[-3000:]
