"""The documented command behind the home-page figure still runs (tiny settings)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from snippets import DOCS_BACKEND, REPO_ROOT, subprocess_env

SCRIPT = os.path.join(REPO_ROOT, "docs", "_scripts", "sigma_figure.py")


def _image_folder(root, classes=2, per_class=16, size=32):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(classes):
            folder = os.path.join(root, split, f"class_{c}")
            os.makedirs(folder)
            for i in range(per_class):
                image = rng.integers(0, 256, size=(size, size, 3)).astype("uint8")
                keras.utils.save_img(os.path.join(folder, f"{i}.png"), image)
    return root


@pytest.mark.slow
def test_sigma_figure_script_runs_and_msvp_lowers_sigma(tmp_path):
    if keras.config.backend() != DOCS_BACKEND:
        pytest.skip(f"docs tests run under KERAS_BACKEND={DOCS_BACKEND}")
    data = _image_folder(str(tmp_path / "data"))
    output = tmp_path / "figure.png"
    result = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            f"--data={data}",
            f"--output={output}",
            "--subset=32",
            "--epochs=2",
            "--batch_size=16",
            "--penalty=1.0",
            "--jit_compile=false",
        ],
        cwd=tmp_path,
        env=subprocess_env(SPECFORMER_KERAS_CACHE=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    numbers = json.loads(output.with_suffix(".json").read_text())
    depth = 4  # vit_micro_patch4_32
    for run in ("initial", "vanilla", "msvp"):
        assert set(numbers[run]) == {"query", "key", "value"}
        assert all(len(v) == depth for v in numbers[run].values())
    # A large penalty must pull the spectral norms below the unpenalized run's.
    msvp = np.mean([numbers["msvp"][p] for p in ("query", "key", "value")])
    vanilla = np.mean([numbers["vanilla"][p] for p in ("query", "key", "value")])
    assert msvp < vanilla, (msvp, vanilla)
