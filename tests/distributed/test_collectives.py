"""`specformer_keras.distributed`: layout, shards and all-gather, 1 and 2 processes.

The two-process test starts two local processes on 127.0.0.1 connected by the
active backend's engine (`MultiWorkerMirroredStrategy` with ``TF_CONFIG``,
`jax.distributed`, `torch.distributed` with gloo) through ``launch.py``.
"""

import numpy as np
import pytest
from launch import ENGINES, launch
from testing import BACKEND

from specformer_keras.distributed import (
    ProcessLayout,
    allgather_objects,
    process_layout,
    shard_indices,
)


def test_single_process_layout_and_gather():
    layout = process_layout()
    assert layout == ProcessLayout(BACKEND, 0, 1, layout.local_devices, "single")
    assert layout.is_primary and layout.to_dict()["engine"] == "single"
    obj = {"correct": np.array([True, False])}
    gathered = allgather_objects(obj)
    assert len(gathered) == 1 and gathered[0] is obj


@pytest.mark.parametrize("n", [0, 1, 5, 16, 17])
@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_shards_cover_range_exactly_once(n, count):
    shards = [
        shard_indices(n, ProcessLayout(BACKEND, i, count, 1, _engine(count)))
        for i in range(count)
    ]
    np.testing.assert_array_equal(np.concatenate(shards), np.arange(n))
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    for s in shards:  # contiguous
        assert s.dtype == np.int64 and np.all(np.diff(s) == 1)


def _engine(count):
    return "single" if count == 1 else "jax.distributed"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(process_index=2, process_count=2), "Received: process_index=2"),
        (dict(process_index=0, process_count=0), "Received: process_count=0"),
        (dict(local_devices=0), "Received: local_devices=0"),
        (dict(engine="mpi"), "Received: engine='mpi'"),
        (dict(process_count=2, engine="single"), "exactly when process_count == 1"),
        (dict(process_index=1.0, process_count=2), "Received: process_index=1.0"),
    ],
)
def test_layout_rejects_bad_fields(kwargs, message):
    fields = dict(
        backend=BACKEND,
        process_index=0,
        process_count=1,
        local_devices=1,
        engine="single",
    )
    if kwargs.get("process_count", 1) > 1 and "engine" not in kwargs:
        fields["engine"] = "jax.distributed"
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        ProcessLayout(**fields)


@pytest.mark.parametrize("n", [-1, 2.0, True, None])
def test_shard_indices_rejects_bad_n(n):
    with pytest.raises(ValueError, match=f"Received: n={n!r}"):
        shard_indices(n)


def test_shard_indices_rejects_bad_layout():
    with pytest.raises(ValueError, match="Received: layout=2"):
        shard_indices(4, layout=2)


def test_unpicklable_object_is_refused_with_two_processes(monkeypatch):
    from specformer_keras.distributed import collectives

    monkeypatch.setattr(
        collectives,
        "process_layout",
        lambda: ProcessLayout(BACKEND, 0, 2, 1, "jax.distributed"),
    )
    with pytest.raises(TypeError, match="must be picklable"):
        allgather_objects(lambda: None)


@pytest.mark.slow
def test_two_processes_gather_the_same_list():
    results = launch(BACKEND, 2, ["allgather"], timeout=150)
    engine = ENGINES[BACKEND]
    for index, result in enumerate(results):
        assert result["layout"] == {
            "backend": BACKEND,
            "process_index": index,
            "process_count": 2,
            "local_devices": 1,
            "engine": engine,
        }
    expected = [
        {
            "index": i,
            "array": (np.arange(3 + 5 * i) * (i + 1.0)).tolist(),
            "text": 1000 * i,
        }
        for i in range(2)
    ]
    assert results[0]["gathered"] == results[1]["gathered"] == expected
    assert (
        results[0]["shards"]
        == results[1]["shards"]
        == [
            list(range(0, 5)),
            list(range(5, 11)),
        ]
    )
