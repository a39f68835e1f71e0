"""The recipes refuse an environment that starts several processes.

They run as one process per run; with ``TF_CONFIG`` (several tasks),
``JAX_NUM_PROCESSES`` > 1 or ``WORLD_SIZE`` > 1 every process would train on
all the data and write the same run folder.
"""

import json
import sys

import pytest
from testing import BACKEND, REPO_ROOT

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
    if found:
        with pytest.raises(RecipeError, match="recipes run as one process per run"):
            backends.select_distribution(BACKEND)


def test_bad_tf_config_is_named(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(RecipeError, match="Received: TF_CONFIG='{not json'"):
        backends.multi_process_environment()
