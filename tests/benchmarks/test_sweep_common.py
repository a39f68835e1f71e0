"""The sweep scripts' helpers: data subsets, augmentation, intervals, resumable summaries.

No training here (the scripts' end-to-end runs are `--tiny` smoke runs, see
docs/reproducing.md); these check the pieces whose mistakes would silently
bias a sweep: class balance, pairing, the t-interval and the paired differences.
"""

import io
import json
import math
import os
import tarfile

import numpy as np
import pytest
from testing import load_benchmark


def _load(name):
    return load_benchmark(name)


sweep_common = _load("sweep_common")
results = _load("at_sweep_results")


def test_t_interval_matches_student_t():
    values = [0.31, 0.35, 0.29, 0.40]
    mean, half = sweep_common.t_interval(values)
    std = np.std(values, ddof=1)
    assert mean == pytest.approx(np.mean(values))
    # t_{0.975, 3} = 3.182 (tables; scipy.stats.t.ppf(0.975, 3) = 3.1824)
    assert half == pytest.approx(3.182 * std / math.sqrt(4), rel=1e-6)
    assert sweep_common.t_interval([0.5]) == (0.5, None)
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in range(1, 11):
        assert sweep_common._T975[df] == pytest.approx(
            scipy_stats.t.ppf(0.975, df), abs=6e-4
        )


def test_slope_interval_matches_ordinary_least_squares():
    rng = np.random.default_rng(0)
    x = np.arange(1, 11)
    y = 0.5 * x + rng.normal(0, 0.3, size=10)
    slope, half = sweep_common.slope_interval(x, y)
    design = np.stack([np.ones(10), x], axis=1)
    coef, residual, *_ = np.linalg.lstsq(design, y, rcond=None)
    se = math.sqrt(residual[0] / 8 / np.sum((x - x.mean()) ** 2))
    assert slope == pytest.approx(coef[1]) and half == pytest.approx(2.306 * se)
    assert sweep_common.slope_interval([1, 2, 3], [5, 5, 5]) == (0.0, 0.0)
    assert sweep_common.slope_interval([1, 2], [0, 1])[1] is None
    with pytest.raises(ValueError, match="Received: xs="):
        sweep_common.slope_interval([1, 1], [0, 1])


def test_plateau_rows_give_the_slope_of_the_final_epochs():
    # Robust accuracy rises 1 point per epoch until epoch 25, then is flat.
    epochs = [
        {"epoch": e, "heldout_robust": min(e, 25) / 100, "heldout_clean": 0.3}
        for e in range(1, 31)
    ]
    short = {"epochs": epochs[:4]}  # too few epochs for the long window: no row
    lines = results.plateau_rows({0.0: {0: {"epochs": epochs}, 1: short}})
    assert len([line for line in lines if line.startswith("| 0 |")]) == 1
    row = lines[-1].split(" | ")
    window10 = sweep_common.slope_interval(
        range(21, 31), [min(e, 25) for e in range(21, 31)]
    )
    assert row[3] == f"{window10[0]:+.2f} ± {window10[1]:.2f}"
    assert row[4] == "+0.00 ± 0.00" and row[5] == "+0.00 ± 0.00"


def test_plateau_rows_average_the_seeds_slopes_with_an_interval_over_seeds():
    # Seed 0 rises 1 point per epoch, seed 1 rises 3: mean 2, and the two slopes'
    # standard error 1 times t(0.975, 1 df) = 12.706 as the half-width.
    def unit(rate):
        return {
            "epochs": [
                {"epoch": e, "heldout_robust": rate * e / 100, "heldout_clean": 0.3}
                for e in range(1, 13)
            ]
        }

    lines = results.plateau_rows({0.1: {0: unit(1), 1: unit(3)}})
    mean_row = lines[-1].split(" | ")
    assert mean_row[0] == "| 0.1" and mean_row[1] == "mean of 2"
    assert mean_row[3] == "+2.00 ± 12.71" and mean_row[4] == "+2.00 ± 12.71"
    assert mean_row[5] == "+0.00 ± 0.00"
    # One seed gives no mean row (no interval over seeds).
    single = results.plateau_rows({0.1: {0: unit(1)}})
    assert not [line for line in single if "mean of" in line]


def test_paired_gap_rows_follow_the_gap_to_lambda_0_over_two_windows():
    def unit(offset, shrink=0.0, epochs=30):
        rows = [
            {"epoch": e, "heldout_robust": (20 + offset + shrink * e) / 100}
            for e in range(1, epochs + 1)
        ]
        return {"epochs": rows}

    # Seed 0: a gap of -1 point that does not change; seed 1: a gap of -3 + 0.1 * e
    # (-1.45 over epochs 11-20, -0.45 over 21-30, slope +0.1). Seed 2 has no
    # lambda-0 partner and seed 3's partner is too short: neither gives a row.
    by_lambda = {
        0.0: {0: unit(0), 1: unit(0), 3: unit(0, epochs=15)},
        0.1: {0: unit(-1), 1: unit(-3, shrink=0.1), 2: unit(-1), 3: unit(-1)},
    }
    lines = results.plateau_rows({}) + results.paired_gap_rows(by_lambda)
    rows = [line.split(" | ") for line in lines if line.startswith("| 0.1 |")]
    assert [row[1] for row in rows] == ["0", "1", "mean of 2"]
    assert rows[0][2:] == ["11-20 / 21-30", "-1.0", "-1.0", "+0.000 ± 0.000 |"]
    assert rows[1][3:5] == ["-1.5", "-0.5"] and rows[1][5].startswith("+0.100 ± ")
    # Mean over the two seeds with a t-interval of one degree of freedom: the
    # half-width is 12.706 * |a - b| / 2 for two values a, b.
    assert rows[2][3] == f"-1.2 ± {12.706 * 0.45 / 2:.1f}"  # -1.0 and -1.45
    assert rows[2][4] == f"-0.7 ± {12.706 * 0.55 / 2:.1f}"  # -1.0 and -0.45
    assert results.paired_gap_rows({0.0: {0: unit(0)}}) == []


def test_interleaved_balanced_prefixes_and_exclusion():
    labels = np.repeat(np.arange(10), 50)
    idx = sweep_common.interleaved_balanced(labels, 200, seed=3)
    assert len(set(idx.tolist())) == 200
    for k in (10, 50, 100, 200):
        assert np.bincount(labels[idx[:k]], minlength=10).tolist() == [k // 10] * 10
    held = sweep_common.interleaved_balanced(labels, 100, seed=4, exclude=idx)
    assert not set(held.tolist()) & set(idx.tolist())
    assert np.bincount(labels[held], minlength=10).tolist() == [10] * 10
    np.testing.assert_array_equal(
        idx, sweep_common.interleaved_balanced(labels, 200, seed=3)
    )


def test_augment_is_a_padded_crop_or_its_mirror():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(6, 5, 5, 3)).astype("uint8")
    out = sweep_common.augment(x, np.random.default_rng(1), pad=2)
    assert out.shape == x.shape and out.dtype == np.uint8
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    for i in range(len(x)):
        windows = [
            w
            for dy in range(5)
            for dx in range(5)
            for w in (
                padded[i, dy : dy + 5, dx : dx + 5],
                padded[i, dy : dy + 5, dx : dx + 5][:, ::-1],
            )
        ]
        assert any(np.array_equal(out[i], w) for w in windows)


def test_load_cifar_arrays_from_an_archive(tmp_path):
    from PIL import Image

    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            for c, name in enumerate(("cat", "ant")):
                for k in range(2):
                    buffer = io.BytesIO()
                    Image.new("RGB", (4, 4), (40 * c, 10 * k, 0)).save(
                        buffer, format="PNG"
                    )
                    info = tarfile.TarInfo(f"{split}/{name}/{k}.png")
                    info.size = buffer.tell()
                    buffer.seek(0)
                    tar.addfile(info, buffer)
    first = sweep_common.load_cifar_arrays(
        str(archive), cache_dir=str(tmp_path / "cache")
    )
    x_train, y_train, x_test, y_test, names = first
    assert names == ["ant", "cat"]
    assert x_train.shape == (4, 4, 4, 3) and y_train.tolist() == [0, 0, 1, 1]
    # "ant" (written second, red 40) is class 0 after sorting; "cat" (red 0) class 1.
    assert x_train[0, 0, 0, 0] == 40 and x_train[2, 0, 0, 0] == 0
    again = sweep_common.load_cifar_arrays(
        str(archive), cache_dir=str(tmp_path / "cache")
    )
    np.testing.assert_array_equal(again[2], x_test)
    with pytest.raises(FileNotFoundError, match="Received: archive="):
        sweep_common.load_cifar_arrays(str(tmp_path / "missing.tar.gz"))


def _write_unit(out, penalty, seed, clean, pgd, sigma=1.0):
    directory = os.path.join(out, f"lambda={penalty:g}_seed={seed}")
    os.makedirs(directory)
    config = dict(
        penalty=penalty, seed=seed, preset="p", train_size=10, epochs=2, train_eps=8.0,
        attack_steps=3, eval_eps=8.0, monitor_attack="pgd10", heldout_size=5,
        autoattack_chunk=5, autoattack_size=10,
    )  # fmt: skip
    state = {
        "config": config,
        "epochs_done": 2,
        "epochs": [
            {
                "epoch": e,
                "heldout_clean": clean,
                "heldout_robust": pgd,
                "mean_sigma_max": sigma,
            }
            for e in (1, 2)
        ],
        "eval": {"n": 1000, "accuracy": {"clean": clean, "pgd20": pgd, "cw20": pgd}},
    }
    with open(os.path.join(directory, "state.json"), "w") as f:
        json.dump(state, f)


def test_summary_pairs_units_by_seed(tmp_path):
    out = str(tmp_path / "sweep")
    robust = {0.0: [0.20, 0.25, 0.22], 0.01: [0.21, 0.27, 0.22]}
    sigma = {0.0: [2.0, 4.0, 1.0], 0.01: [1.0, 1.0, 1.0]}
    for lam, values in robust.items():
        for seed, value in enumerate(values):
            _write_unit(out, lam, seed, clean=0.4, pgd=value, sigma=sigma[lam][seed])
    results.summarize(out)
    text = open(os.path.join(out, "summary.md")).read()
    paired = text.split("Paired differences")[1].split("Per unit")[0]
    diffs = [100 * (b - a) for a, b in zip(robust[0.0], robust[0.01])]
    mean, half = sweep_common.t_interval(diffs)
    assert f"{mean:.1f} ± {half:.1f} (n=3)" in paired
    # sigma is paired as a relative change: -50%, -75%, 0%.
    mean, half = sweep_common.t_interval([-50.0, -75.0, 0.0])
    assert f"{mean:.1f}% ± {half:.1f}% (n=3)" in paired
    # The values behind the means, one row per seed: held-out clean, held-out PGD-10,
    # sigma, clean, PGD-20, CW-20 of this unit minus (or relative to) lambda 0's.
    per_seed = text.split("Paired differences per seed")[1].split("Per unit")[0]
    rows = [line for line in per_seed.splitlines() if line.startswith("| 0.01 |")]
    assert rows == [
        "| 0.01 | 0 | +0.0 | +1.0 | -50.0% | +0.0 | +1.0 | +1.0 |",
        "| 0.01 | 1 | +0.0 | +2.0 | -75.0% | +0.0 | +2.0 | +2.0 |",
        "| 0.01 | 2 | +0.0 | +0.0 | +0.0% | +0.0 | +0.0 | +0.0 |",
    ]
    for figure in ("heldout_pgd_per_epoch.png", "paired_differences.png"):
        assert os.path.exists(os.path.join(out, figure))


def test_summary_pairs_a_unit_still_training_at_the_common_epoch(tmp_path):
    out = str(tmp_path / "sweep")
    _write_unit(out, 0.0, 0, clean=0.4, pgd=0.2)
    _write_unit(out, 0.01, 0, clean=0.4, pgd=0.2)
    base_path = os.path.join(out, "lambda=0_seed=0", "state.json")
    base = json.load(open(base_path))
    base["epochs"][0]["heldout_robust"] = 0.10  # lambda 0 at epoch 1
    base["epochs"][1]["heldout_robust"] = 0.30  # and at epoch 2
    json.dump(base, open(base_path, "w"))
    unit_path = os.path.join(out, "lambda=0.01_seed=0", "state.json")
    unit = json.load(open(unit_path))
    unit["epochs"] = unit["epochs"][:1]  # still training: epoch 1 only
    unit["epochs"][0]["heldout_robust"] = 0.15
    unit["epochs_done"] = 1
    del unit["eval"]
    json.dump(unit, open(unit_path, "w"))
    results.summarize(out, assets=str(tmp_path / "assets" / "new"))
    paired = open(os.path.join(out, "summary.md")).read().split("Paired differences")[1]
    row = [line for line in paired.splitlines() if line.startswith("| 0.01 |")][0]
    # 15 - 10 at epoch 1, not 15 - 30 (lambda 0's last epoch).
    assert row.split(" | ")[2] == "5.0 (n=1)"
    assert os.listdir(tmp_path / "assets" / "new")


def test_a_seed_still_training_is_averaged_at_the_common_epoch(tmp_path):
    # Seed 0 finished (epoch 2: 30%), seed 1 at epoch 1 (12%): the per-lambda mean is
    # taken at epoch 1 for both (10% and 12%), never 30% mixed with 12%.
    out = str(tmp_path / "sweep")
    for seed in (0, 1):
        _write_unit(out, 0.0, seed, clean=0.4, pgd=0.2)
    path = os.path.join(out, "lambda=0_seed=0", "state.json")
    done = json.load(open(path))
    done["epochs"][0]["heldout_robust"] = 0.10
    done["epochs"][1]["heldout_robust"] = 0.30
    json.dump(done, open(path, "w"))
    path = os.path.join(out, "lambda=0_seed=1", "state.json")
    running = json.load(open(path))
    running["epochs"] = running["epochs"][:1]
    running["epochs"][0]["heldout_robust"] = 0.12
    running["epochs_done"] = 1
    json.dump(running, open(path, "w"))
    results.summarize(out)
    text = open(os.path.join(out, "summary.md")).read()
    row = [line for line in text.splitlines() if line.startswith("| 0 |")][0]
    mean, half = sweep_common.t_interval([10.0, 12.0])
    assert row.split(" | ")[2] == f"{mean:.1f} ± {half:.1f} (n=2)"
    per_unit = text.split("Per unit")[1]
    assert "| 0 | 0 | 40.0 | 30.0 |" in per_unit
    assert "| 0 | 1 | 40.0 | 12.0 |" in per_unit


def _write_pilot_unit(out, penalty, clean, sigma, epochs_done=3):
    directory = os.path.join(out, f"lambda={penalty:g}_seed=0")
    os.makedirs(directory)
    state = {
        "config": {"penalty": penalty, "seed": 0, "epochs": 3},
        "epochs_done": epochs_done,
        "epochs": [{"heldout_clean": clean, "mean_sigma_max": sigma}],
    }
    with open(os.path.join(directory, "state.json"), "w") as f:
        json.dump(state, f)


def test_pilot_rule_picks_the_two_largest_qualifying_lambdas(tmp_path):
    sweep = _load("adversarial_sweep")
    out = str(tmp_path / "pilot")
    _write_pilot_unit(out, 0.0, clean=0.30, sigma=1.50)
    _write_pilot_unit(out, 1.0, clean=0.20, sigma=0.80)  # costs 10 points: out
    _write_pilot_unit(out, 0.1, clean=0.28, sigma=1.20)  # -20%, 2 points: in
    _write_pilot_unit(out, 0.01, clean=0.31, sigma=1.40)  # -6.7%: in
    _write_pilot_unit(out, 0.001, clean=0.30, sigma=1.49)  # -0.7%: out
    lambdas, rows = sweep.choose_lambdas(out)
    assert lambdas == [0.0, 0.01, 0.1]
    assert [r["qualifies"] for r in rows] == [False, True, True, False]


def test_pilot_rule_refuses_an_unfinished_pilot(tmp_path):
    sweep = _load("adversarial_sweep")
    out = str(tmp_path / "pilot")
    _write_pilot_unit(out, 0.0, clean=0.30, sigma=1.50)
    _write_pilot_unit(out, 0.1, clean=0.28, sigma=1.20, epochs_done=1)
    _write_pilot_unit(out, 0.01, clean=0.28, sigma=1.20)
    with pytest.raises(SystemExit, match="not finished"):
        sweep.choose_lambdas(out)


def test_a_recorded_unit_is_finished_and_read_with_the_run_folder(tmp_path):
    # The record (kept in the repository) outlives the run folder: a recorded unit is
    # skipped, summarized, and wins over an unfinished rerun of the same unit.
    sweep = _load("adversarial_sweep")
    out, record = str(tmp_path / "runs"), str(tmp_path / "record")
    _write_unit(out, 0.0, 0, clean=0.4, pgd=0.30)  # an unfinished rerun in runs/
    _write_unit(str(tmp_path / "old"), 0.0, 0, clean=0.4, pgd=0.20)
    finished = json.load(open(tmp_path / "old" / "lambda=0_seed=0" / "state.json"))
    finished["seed_states"] = [[1, 2]]
    sweep.save_record(record, finished)
    saved = json.load(open(os.path.join(record, "lambda=0_seed=0.json")))
    assert "seed_states" not in saved and saved["config"] == finished["config"]
    _write_unit(out, 0.01, 0, clean=0.4, pgd=0.25)  # only in runs/
    states = results.load_states(out, record)
    found = {s["config"]["penalty"]: s["epochs"][-1]["heldout_robust"] for s in states}
    assert found == {0.0: 0.20, 0.01: 0.25}
    args = sweep.parse_args([f"--out={out}", f"--record={record}", "--lambdas=0"])
    matching = dict(finished, config=sweep.unit_config(args, 0.0, 0))
    sweep.save_record(str(tmp_path / "matching"), matching)
    args.record = str(tmp_path / "matching")
    assert sweep.run_unit(args, 0.0, 0, {}) is None  # skipped before any data is read
    results.summarize(str(tmp_path / "summary"), record=record)
    text = open(tmp_path / "summary" / "summary.md").read()
    assert "| 0 | 0 | 40.0 | 20.0 |" in text.split("Per unit")[1]


def test_a_unit_started_with_other_code_is_not_resumed(tmp_path):
    sweep = _load("adversarial_sweep")
    out = str(tmp_path / "runs")
    args = sweep.parse_args([f"--out={out}", "--lambdas=0", "--seeds=0"])
    directory = sweep.unit_dir(out, 0.0, 0)
    os.makedirs(directory)
    state = {
        "config": sweep.unit_config(args, 0.0, 0),
        "code": {"commit": "0" * 40, "dirty": False},
    }
    json.dump(state, open(os.path.join(directory, "state.json"), "w"))
    with pytest.raises(SystemExit, match="other code"):
        sweep.run_unit(args, 0.0, 0, {})


def test_the_summary_says_when_units_ran_different_code(tmp_path):
    states = [
        {
            "config": {"penalty": 0.0, "seed": 0},
            "code": {"commit": "a" * 40, "dirty": False},
        },
        {
            "config": {"penalty": 0.1, "seed": 0},
            "code": {"commit": "b" * 40, "dirty": True},
        },
    ]
    line = results.code_line(states)
    assert (
        "pairing is broken" in line and "bbbbbbbbbb (with uncommitted changes)" in line
    )
    assert results.code_line(states[:1]) == "All units ran code aaaaaaaaaa."


def test_a_recorded_unit_of_other_settings_is_refused_not_skipped(tmp_path):
    sweep = _load("adversarial_sweep")
    record = str(tmp_path / "record")
    args = sweep.parse_args([f"--out={tmp_path}", f"--record={record}", "--lambdas=0"])
    saved = {"config": dict(sweep.unit_config(args, 0.0, 0), epochs=10)}
    sweep.save_record(record, saved)
    with pytest.raises(SystemExit, match=r"other settings .*'epochs': \(10, 30\)"):
        sweep.run_unit(args, 0.0, 0, {})
