"""benchmarks/adversarial_sweep.py end to end on a tiny archive: every stage, the record.

The sweep's pieces are tested in test_sweep_common.py; this runs two tiny units
(1 epoch, a few images) through train, lipschitz, blocks, eval and AutoAttack, and
checks what a later session relies on: the record holds every stage and the code
commit, a rerun skips recorded units without reading data, and the summary pairs
the record's units.
"""

import io
import json
import os
import tarfile

import numpy as np
import pytest
from testing import BACKEND, load_benchmark

pytestmark = pytest.mark.skipif(
    BACKEND != "jax",
    reason="the sweep runs on JAX (docs/reproducing.md); one backend keeps CI time "
    "(about a minute of attack compilation per unit)",
)

CLASSES = [f"class{c}" for c in range(10)]
TINY = [
    "--lambdas=0,0.1",
    "--seeds=0",
    "--epochs=1",
    "--train_size=20",
    "--heldout_size=10",
    "--test_size=10",
    "--autoattack_size=10",
    "--autoattack_chunk=10",
    "--lipschitz_size=2",
    "--lipschitz_iterations=2",
    "--batch_size=10",
]


def _sweep():
    return load_benchmark("adversarial_sweep")


def _archive(path, per_class):
    from PIL import Image

    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for split, count in per_class.items():
            for c, name in enumerate(CLASSES):
                for k in range(count):
                    pixels = rng.integers(0, 64, (32, 32, 3)) + 19 * c
                    buffer = io.BytesIO()
                    Image.fromarray(pixels.astype("uint8")).save(buffer, format="PNG")
                    info = tarfile.TarInfo(f"{split}/{name}/{k}.png")
                    info.size = buffer.tell()
                    buffer.seek(0)
                    tar.addfile(info, buffer)


def test_two_units_run_every_stage_and_are_recorded(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECFORMER_KERAS_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "tiny.tar.gz"
    _archive(archive, {"train": 4, "test": 1})
    sweep = _sweep()
    out, record = tmp_path / "runs", tmp_path / "record"
    argv = [f"--out={out}", f"--record={record}", f"--archive={archive}", *TINY]
    sweep.main(argv)

    for penalty in ("0", "0.1"):
        saved = json.load(open(record / f"lambda={penalty}_seed=0.json"))
        assert saved["code"] == sweep.code_version()
        assert len(saved["epochs"]) == 1 and "seed_states" not in saved
        assert set(saved["lipschitz"]["attention"]) and saved["blocks"]["blocks"]
        assert saved["eval"]["n"] == 10 and saved["autoattack_chunks"][0]["n"] == 10
        assert os.path.exists(out / f"lambda={penalty}_seed=0" / "model.keras")
    summary = open(out / "summary.md").read()
    assert "Paired differences" in summary and "All units ran code" in summary

    # A later session: no run folder, no data; the record alone finishes the sweep.
    capsys.readouterr()
    os.remove(archive)
    sweep.main([f"--out={tmp_path / 'new_runs'}", *argv[1:]])
    printed = capsys.readouterr().out
    assert printed.count("(recorded in") == 2 and "PGD-AT lambda" not in printed
    assert "2 units" in open(tmp_path / "new_runs" / "summary.md").read()
