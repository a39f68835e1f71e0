"""Per-example random draws, sharded and resumable `evaluate_robustness`.

A point's random starts and searches depend only on the seed and its index in
the data, so its adversarial example and verdict are the same for any batch
size, shard or resume point; an evaluation killed with SIGKILL resumes from its
per-batch files to the report of an uninterrupted run.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from evaluation_task import EPS, evaluate_task, template_classifier, toy_data
from testing import REPO_ROOT

from specformer_keras.attacks import (
    apgd,
    apgd_targeted,
    autoattack,
    fab_targeted,
    pgd,
    square,
)
from specformer_keras.attacks.randomness import check_example_ids
from specformer_keras.distributed import ProcessLayout
from specformer_keras.evaluation import evaluate_robustness
from specformer_keras.evaluation import report as report_module
from specformer_keras.utils.io import CorruptFileError

TASK = os.path.join(REPO_ROOT, "tests", "evaluation_task.py")
SMALL = {
    "apgd-ce": {"steps": 3},
    "apgd-t": {"steps": 3, "n_target_classes": 2},
    "fab-t": {"steps": 3, "n_target_classes": 2},
    "square": {"n_queries": 20},
}
ATTACKS = {
    "pgd": lambda m, x, y, **k: pgd(m, x, y, EPS, EPS / 4, 3, restarts=2, seed=5, **k),
    "apgd": lambda m, x, y, **k: apgd(m, x, y, EPS, steps=3, restarts=2, seed=5, **k),
    "apgd-t": lambda m, x, y, **k: apgd_targeted(
        m, x, y, EPS, steps=3, n_target_classes=2, seed=5, **k
    ),
    "fab-t": lambda m, x, y, **k: fab_targeted(
        m, x, y, EPS, steps=3, n_target_classes=2, restarts=2, seed=5, **k
    ),
    "square": lambda m, x, y, **k: square(m, x, y, EPS, n_queries=20, seed=5, **k),
    "autoattack": lambda m, x, y, **k: autoattack(
        m, x, y, EPS, version="custom", attack_settings=SMALL, seed=5, **k
    ),
}


def strip(report):
    """A report without what may differ between equal runs (timings, layout)."""
    return {k: v for k, v in report.items() if k not in ("seconds", "layout")}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_each_attack_draws_per_example(name):
    model = template_classifier()
    x, y = toy_data(n=8, seed=7)
    whole = ATTACKS[name](model, x, y)
    half = ATTACKS[name](model, x[4:], y[4:], example_ids=np.arange(4, 8))
    np.testing.assert_array_equal(half, whole[4:])
    # Under other ids the same points get other draws (seen in the result
    # of the attacks that return their highest-loss point, not the clean one).
    if name in ("pgd", "apgd"):
        other = ATTACKS[name](model, x[4:], y[4:], example_ids=np.arange(14, 18))
        assert not np.array_equal(other, whole[4:])


def test_autoattack_chunks_do_not_change_the_result():
    model = template_classifier()
    x, y = toy_data(n=8, seed=7)
    settings = {"version": "custom", "attack_settings": SMALL, "seed": 2}
    big = autoattack(model, x, y, EPS, batch_size=8, **settings)
    small = autoattack(model, x, y, EPS, batch_size=3, **settings)
    np.testing.assert_array_equal(big, small)


@pytest.mark.parametrize(
    "ids, kind, match",
    [
        ([0.0, 1.0], TypeError, "integers"),
        ([0, 1, 2], ValueError, r"shape \(2,\)"),
        ([-1, 0], ValueError, ">= 0"),
        ([3, 3], ValueError, "distinct"),
    ],
)
def test_bad_example_ids(ids, kind, match):
    with pytest.raises(kind, match=match):
        check_example_ids(ids, 2)
    model = template_classifier()
    x, y = toy_data(n=2, seed=7)
    with pytest.raises(kind, match="example_ids"):
        pgd(model, x, y, EPS, EPS / 4, 1, example_ids=ids)


EVAL = {"attacks": ("clean", "pgd6", "square30"), "eps": EPS, "seed": 4}


def test_verdicts_do_not_depend_on_the_batch_size():
    model = template_classifier()
    data = toy_data(n=32, seed=7)
    small = evaluate_robustness(model, data, batch_size=8, verbose=False, **EVAL)
    large = evaluate_robustness(model, data, batch_size=32, verbose=False, **EVAL)
    assert 0 < small["accuracy"]["pgd6"] < 1
    assert small["per_point"] == large["per_point"]
    assert small["accuracy"] == large["accuracy"]
    assert small["layout"]["batch_size"] == 8 and large["layout"]["batch_size"] == 32


@pytest.mark.parametrize("kind", ["arrays", "iterable"])
def test_two_shards_gather_the_single_process_report(kind, monkeypatch):
    """Process 1 of 2, then process 0 with both processes' records gathered:
    the report of a single-process run."""
    model = template_classifier()
    x, y = toy_data(n=20, seed=7)
    if kind == "arrays":
        data = (x, y)
        # Contiguous blocks of batches: 5 batches -> points [0, 8) and [8, 20).
        expected = {0: [0, 4], 1: [8, 12, 16]}
    else:  # every second batch
        data = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 20, 4)]
        expected = {0: [0, 8, 16], 1: [4, 12]}
    single = evaluate_robustness(model, data, batch_size=4, verbose=False, **EVAL)
    shards = {}

    class Stop(Exception):
        pass

    def fake_gather(records):
        shards[index] = records
        if index == 1:
            raise Stop
        return [shards[0], shards[1]]

    monkeypatch.setattr(report_module, "allgather_objects", fake_gather)
    for index in (1, 0):
        layout = ProcessLayout(single["backend"], index, 2, 1, "jax.distributed")
        monkeypatch.setattr(
            report_module, "process_layout", lambda layout=layout: layout
        )
        try:
            sharded = evaluate_robustness(
                model, data, batch_size=4, verbose=False, **EVAL
            )
        except Stop:
            pass
    assert {i: [r["start"] for r in shards[i]] for i in (0, 1)} == expected
    assert strip(sharded) == strip(single)
    assert sharded["layout"]["process_count"] == 2


def test_resume_reads_finished_batches_and_refuses_other_settings(tmp_path):
    model = template_classifier()
    x, y = toy_data(n=12, seed=7)
    folder = str(tmp_path / "evaluation")
    first = evaluate_robustness(
        model, (x, y), batch_size=4, output_dir=folder, verbose=False, **EVAL
    )
    files = sorted(
        os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
    )
    assert len([f for f in files if "batches" in f]) == 3 * 3
    assert json.load(open(os.path.join(folder, "report.json")))["n"] == 12
    batch = os.path.join(folder, "batches", "01-pgd6", "000000004-000000008.json")
    record = json.load(open(batch))
    assert record["start"] == 4 and len(record["robust"]) == 4

    # A rerun reads every batch back (a changed result would show).
    record["robust"] = "".join("0" if b == "1" else "1" for b in record["robust"])
    with open(batch, "w") as f:
        json.dump(record, f)
    again = evaluate_robustness(
        model, (x, y), batch_size=4, output_dir=folder, verbose=False, **EVAL
    )
    assert again["per_point"]["pgd6"][4:8] != first["per_point"]["pgd6"][4:8]

    with open(batch, "w") as f:
        f.write('{"format": 1, "attack": "pgd6", "sta')
    with pytest.raises(CorruptFileError, match="000000004-000000008.json"):
        evaluate_robustness(
            model, (x, y), batch_size=4, output_dir=folder, verbose=False, **EVAL
        )
    os.remove(batch)  # a missing batch is recomputed
    redone = evaluate_robustness(
        model, (x, y), batch_size=4, output_dir=folder, verbose=False, **EVAL
    )
    assert strip(redone) == strip(first)

    for change, match in [
        ({"eps": EPS / 2}, "eps: 0.14 in the folder, 0.07 now"),
        ({"seed": 5}, "seed: 4 in the folder, 5 now"),
        ({"batch_size": 6}, "batch_size: 4 in the folder, 6 now"),
        ({"attacks": ("clean", "pgd6")}, "attacks"),
    ]:
        arguments = {**EVAL, "batch_size": 4, **change}
        with pytest.raises(ValueError, match=match):
            evaluate_robustness(
                model, (x, y), output_dir=folder, verbose=False, **arguments
            )
    with pytest.raises(ValueError, match="data.sha256"):
        evaluate_robustness(
            model,
            (x[::-1], y[::-1]),
            batch_size=4,
            output_dir=folder,
            verbose=False,
            **EVAL,
        )
    # The same model built again (Keras numbers its layers anew) resumes the folder.
    rebuilt = template_classifier()
    assert rebuilt.layers[-1].name != model.layers[-1].name
    assert strip(
        evaluate_robustness(
            rebuilt, (x, y), batch_size=4, output_dir=folder, verbose=False, **EVAL
        )
    ) == strip(first)
    other = template_classifier()
    other.layers[-1].bias.assign(other.layers[-1].bias + 1.0)
    with pytest.raises(ValueError, match="model.sha256"):
        evaluate_robustness(
            other, (x, y), batch_size=4, output_dir=folder, verbose=False, **EVAL
        )
    with pytest.raises(ValueError, match="resume=True"):
        evaluate_robustness(
            model,
            (x, y),
            batch_size=4,
            output_dir=folder,
            resume=False,
            verbose=False,
            **EVAL,
        )
    with pytest.raises(ValueError, match="seed=None"):
        evaluate_robustness(
            model, (x, y), output_dir=str(tmp_path / "b"), seed=None, verbose=False
        )


def test_iterable_data_is_checked_batch_by_batch(tmp_path):
    model = template_classifier()
    x, y = toy_data(n=12, seed=7)
    folder = str(tmp_path / "evaluation")
    batches = [(x[i : i + 4], y[i : i + 4]) for i in (0, 4, 8)]
    arguments = {"output_dir": folder, "verbose": False, **EVAL}
    first = evaluate_robustness(model, batches, **arguments)
    assert strip(evaluate_robustness(model, batches, **arguments)) == strip(first)
    batches[1] = (batches[1][0][::-1], batches[1][1][::-1])
    with pytest.raises(ValueError, match="other data than points \\[4, 8\\)"):
        evaluate_robustness(model, batches, **arguments)


def batch_files(folder):
    """The result files in ``folder`` (not the hidden temporary file of a write
    in progress, which a kill may leave behind and nothing reads)."""
    if not os.path.isdir(folder):
        return []
    return [n for n in os.listdir(folder) if n.endswith(".json") and n[0] != "."]


def test_killed_autoattack_evaluation_resumes_to_the_same_report(tmp_path):
    """SIGKILL after some AutoAttack batch files exist; the rerun of the same
    command gives the report of an uninterrupted run in another folder."""
    folder = str(tmp_path / "killed")
    # Data seed 17: APGD-CE breaks the first batch at once, the second keeps
    # robust points (the full AutoAttack runs there): killed in the second.
    command = [sys.executable, TASK, folder, "--n", "8", "--batch_size", "4"]
    command += ["--data_seed", "17"]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    done = os.path.join(folder, "batches", "02-autoattack")
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 240
    try:
        while not batch_files(done):
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no AutoAttack batch within 240 s"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not os.path.exists(os.path.join(folder, "report.json"))
    finished = {
        name: os.path.getmtime(os.path.join(done, name)) for name in batch_files(done)
    }
    assert len(finished) == 1

    rerun = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=240
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = json.loads(rerun.stdout.strip().splitlines()[-1])
    for name, mtime in finished.items():  # read back, not recomputed
        assert os.path.getmtime(os.path.join(done, name)) == mtime
    assert len(batch_files(done)) == 2

    reference = evaluate_task(
        str(tmp_path / "uninterrupted"), n=8, batch_size=4, data_seed=17
    )
    reference = json.loads(json.dumps(reference))
    assert 0 < reference["accuracy"]["autoattack"] < 1
    assert resumed == reference
