"""A resumable `robustness_curve`, and the stale temporary files of a killed write.

The curve keeps one evaluation folder per budget (`evaluate_robustness`'s
per-(attack, batch) files) under a manifest of its own settings. A run
interrupted after some batch files (here: in process, by an exception raised
in place of the sixth write, with the temporary files a ``kill -9`` in the
middle of a write would leave planted beside them) resumes to the curve of an
uninterrupted run, reading the finished batches back. The SIGKILL of a real
process is tested for `evaluate_robustness` itself
(tests/test_evaluation_resume.py), whose folders the curve reuses.
"""

import json
import os
import subprocess
import sys
import time

import keras
import pytest
from curve_task import CURVE, POINTS, curve_task
from evaluation_task import template_classifier
from testing import toy_data

from specformer_keras.evaluation import robustness_curve
from specformer_keras.evaluation.stale import remove_stale_temporaries
from specformer_keras.evaluation.store import ResultStore
from specformer_keras.utils.io import temporary_writer, writer_host


class Killed(BaseException):
    """Stands for the kill: raised in place of a write."""


def dead_pid():
    """The id of a process of this host that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def written(folder):
    """``{path: mtime_ns}`` of every batch result file under ``folder``."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".json") and "batches" in root and name[0] != ".":
                path = os.path.join(root, name)
                files[path] = os.stat(path).st_mtime_ns
    return files


def test_interrupted_curve_resumes_to_the_uninterrupted_curve(tmp_path, monkeypatch):
    reference = curve_task()["curve"]
    # Not trivial, and the same on every backend (torch's was 1, 0.875, 0.5 before
    # the cross-entropy's true-class gradient was made exact on confident points).
    assert reference["accuracy"]["pgd3"] == [1.0, 0.75, 0.0]
    folder = str(tmp_path / "curve")
    saves, original, limit = [], ResultStore.save, [5]

    def save(store, *args, **kwargs):
        if len(saves) == limit[0]:
            raise Killed
        saves.append(store.path(*args[:4]))
        original(store, *args, **kwargs)

    monkeypatch.setattr(ResultStore, "save", save)
    with pytest.raises(Killed):
        curve_task(folder)
    # 2 batches x (clean, pgd3) per budget: budget 0 done, budget 1 begun.
    done = written(folder)
    assert sorted(done) == sorted(saves) and len(done) == 5
    assert not os.path.exists(os.path.join(folder, "curve.json"))

    batches = os.path.join(folder, "eps-0.2", "batches", "00-clean")
    host = writer_host()
    stale = {
        "dead": f".000000004-000000008.json~{host}~{dead_pid()}.k3x_9.tmp",
        "running": f".000000004-000000008.json~{host}~{os.getppid()}.a1b2.tmp",
        "other host": f".000000004-000000008.json~elsewhere.example~{dead_pid()}.zz.tmp",
        "unnamed": ".000000004-000000008.json.q8w7e6.tmp",
    }
    for name in stale.values():
        path = os.path.join(batches, name)
        open(path, "w").close()
        os.utime(path, (time.time() - 3600,) * 2)  # written an hour ago

    saves.clear()
    limit[0] = None
    with pytest.warns(UserWarning, match="3 temporary file") as caught:
        resumed = curve_task(folder)["curve"]
    assert resumed == reference
    assert len(saves) == 3 * 2 * 2 - 5  # only the missing batches computed
    assert all(written(folder)[path] == mtime for path, mtime in done.items())
    left = set(os.listdir(batches))
    assert stale["dead"] not in left
    assert {stale[k] for k in ("running", "other host", "unnamed")} <= left
    (message,) = [str(w.message) for w in caught if "temporary" in str(w.message)]
    assert stale["running"] in message and stale["dead"] not in message
    with open(os.path.join(folder, "curve.json")) as f:
        assert json.load(f) == reference


def test_a_curve_folder_of_other_settings_is_refused(tmp_path):
    folder = str(tmp_path / "curve")
    first = curve_task(folder, eps_list=[0.2])["curve"]
    x, y = toy_data(n=POINTS, seed=7)
    keras.backend.clear_session()  # the layer names of the first run
    model = template_classifier()
    arguments = {**CURVE, "eps_list": [0.2], "output_dir": folder}
    assert robustness_curve(model, (x, y), **arguments) == first  # resumable
    for change, match in [
        ({"seed": 2}, "seed: 1 in the folder, 2 now"),
        ({"attack": "pgd4"}, "robustness_curve.attack: 'pgd3' in the folder"),
        ({"resume": False}, "resume=True"),
    ]:
        with pytest.raises(ValueError, match=match):
            robustness_curve(model, (x, y), **{**arguments, **change})
    with pytest.raises(ValueError, match="data.sha256"):
        robustness_curve(model, (x[::-1], y[::-1]), **arguments)
    model.layers[-1].bias.assign(model.layers[-1].bias + 1.0)
    with pytest.raises(ValueError, match="model.sha256"):
        robustness_curve(model, (x, y), **arguments)
    with pytest.raises(ValueError, match="seed=None"):
        robustness_curve(model, (x, y), **{**arguments, "seed": None})


def test_a_one_shot_iterator_is_refused_for_several_budgets():
    x, y = toy_data(n=POINTS, seed=7)
    batches = ((x[i : i + 4], y[i : i + 4]) for i in (0, 4))
    with pytest.raises(ValueError, match="one-shot.*Received: data of type generator"):
        robustness_curve(template_classifier(), batches, [0.0, 0.1])


def test_stale_temporaries_only_of_gone_writers_are_removed(tmp_path):
    host, folder, pid = writer_host(), tmp_path / "evaluation", dead_pid()
    (folder / "batches" / "00-clean").mkdir(parents=True)
    other = folder / "eps-0.1"  # another evaluation: left to it
    other.mkdir()
    (other / "manifest.json").write_text("{}")
    gone = folder / "batches" / "00-clean" / f".a.json~{host}~{pid}.x.tmp"
    recent = folder / f".b.json~{host}~{pid}.w.tmp"
    mine = folder / f".report.json~{host}~{os.getpid()}.y.tmp"
    theirs = other / f".b.json~{host}~{pid}.z.tmp"
    for path in (gone, recent, mine, theirs):
        path.write_text("")
        if path != recent:
            os.utime(path, (time.time() - 3600,) * 2)
    assert temporary_writer(gone.name) == ("a.json", host, pid)
    with pytest.warns(UserWarning, match="2 temporary file.*running process"):
        removed, kept = remove_stale_temporaries(str(folder))
    assert removed == [str(gone)] and sorted(kept) == sorted([str(recent), str(mine)])
    assert not gone.exists() and recent.exists() and mine.exists() and theirs.exists()
    with pytest.warns(UserWarning, match="1 temporary file"):  # mine, still
        assert remove_stale_temporaries(str(folder), min_age=0)[0] == [str(recent)]


def test_verbose_curve_shows_one_bar_over_budgets_and_batches(tmp_path, capsys):
    for run in ("computed", "read back"):
        curve_task(str(tmp_path), verbose=True, eps_list=[0.0, 0.3])
        err = capsys.readouterr().err
        assert "curve pgd3" in err and "4/4" in err and "accuracy=" in err, run
