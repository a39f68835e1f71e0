"""The recipes under an environment that starts several processes.

``TF_CONFIG`` naming several workers on TensorFlow: a 2-worker
`MultiWorkerMirroredStrategy` run of the smoke recipe. ``JAX_NUM_PROCESSES``
or ``WORLD_SIZE`` > 1 (and ``TF_CONFIG`` off TensorFlow) is refused: every
process would feed the whole batch.
"""

import json
import os
import sys

import pytest
from testing import BACKEND, CIFAR10_ARCHIVE, REPO_ROOT

if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from recipes import backends  # noqa: E402
from recipes.config import RecipeError  # noqa: E402

NAMES = ("TF_CONFIG", "JAX_NUM_PROCESSES", "WORLD_SIZE")


def _cluster(tasks):
    return json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{2000 + i}" for i in range(tasks)]},
            "task": {"type": "worker", "index": 0},
        }
    )


@pytest.mark.parametrize(
    "name, value, found",
    [
        ("TF_CONFIG", _cluster(2), "TF_CONFIG names 2 tasks"),
        ("TF_CONFIG", _cluster(1), None),
        ("JAX_NUM_PROCESSES", "2", "JAX_NUM_PROCESSES=2"),
        ("JAX_NUM_PROCESSES", "1", None),
        ("WORLD_SIZE", "4", "WORLD_SIZE=4"),
        ("WORLD_SIZE", "1", None),
    ],
)
def test_multi_process_environment(monkeypatch, name, value, found):
    for other in NAMES:
        monkeypatch.delenv(other, raising=False)
    assert backends.multi_process_environment() is None
    monkeypatch.setenv(name, value)
    assert backends.multi_process_environment() == found
    if found and not (name == "TF_CONFIG" and BACKEND == "tensorflow"):
        with pytest.raises(RecipeError, match="recipes run as one process per run"):
            backends.select_distribution(BACKEND)


def test_bad_tf_config_is_named(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(RecipeError, match="Received: TF_CONFIG='{not json'"):
        backends.multi_process_environment()


@pytest.mark.slow
def test_two_tensorflow_workers_run_the_smoke_recipe(tmp_path):
    if BACKEND != "tensorflow":
        pytest.skip("multi-worker recipe runs are TensorFlow's (TF_CONFIG)")
    if not os.path.exists(CIFAR10_ARCHIVE):
        pytest.skip(f"the smoke recipe needs the CIFAR-10 archive at {CIFAR10_ARCHIVE}")
    from launch import launch

    workers = launch(BACKEND, 2, ["recipe", str(tmp_path)], timeout=400)
    for index, results in enumerate(workers):
        assert results["distribution"] == (
            f"MultiWorkerMirroredStrategy, worker {index} of 2 (2 replicas)"
        )
        layout = results["robustness"]["layout"]
        assert layout["process_index"] == index and layout["process_count"] == 2
    first, second = (w["robustness"] for w in workers)
    for key in ("accuracy", "per_point", "worst_case"):
        assert first[key] == second[key], key
    assert workers[0]["final_spectral_norms"] == workers[1]["final_spectral_norms"]
