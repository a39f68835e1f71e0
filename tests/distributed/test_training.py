"""Two-process training matches one process on the same global batches.

TensorFlow: 2 workers of `MultiWorkerMirroredStrategy` (``TF_CONFIG`` on
127.0.0.1). JAX: 2 processes of `jax.distributed` with
`keras.distribution.DataParallel` over their 2 CPU devices. Each process runs
``worker.py train``: a tiny SpectralViT with ``model.fit`` and with
`AdversarialTrainer` (PGD-AT, random start), 2 epochs of 2 global batches of 8,
SGD; the reference is the same script in one process without the engine. The
tolerances are those of the single-host test (tests/training/test_distributed.py).
"""

import numpy as np
import pytest
from launch import launch_with_reference
from testing import BACKEND

METHODS = ("fit", "pgd_at")
# XLA's CPU backend without its optimization passes: compiling the steps took
# most of the time (JAX 43 s -> 24 s for the reference run on a loaded
# machine); the same flags in both runs. TensorFlow runs without XLA here.
FAST = {"XLA_FLAGS": "--xla_backend_optimization_level=0"}
_RUNS = {}


def runs():
    """``(single, [process 0, process 1])`` results, once per session."""
    if not _RUNS:
        args = ["train", *METHODS]
        _RUNS["single"], _RUNS["multi"] = launch_with_reference(
            BACKEND, 2, args, timeout=300, extra_env=FAST
        )
    return _RUNS["single"], _RUNS["multi"]


def _max_difference(a, b):
    return max(float(np.max(np.abs(np.array(x) - np.array(y)))) for x, y in zip(a, b))


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_processes_train_like_one(method):
    if BACKEND == "torch":
        pytest.skip(
            "Keras 3.15 has no multi-device path for `fit` on torch: "
            "keras.distribution is implemented for JAX only (its torch "
            "distribution_lib is None) and torch DistributedDataParallel is "
            "only usable from a custom training loop, not from `fit`"
        )
    single, multi = runs()
    assert single["layout"]["process_count"] == 1
    reference = single["results"][method]
    assert len(reference["history"]["loss"]) == 2
    assert min(reference["history"]["msvp_loss"]) > 0
    for index, process in enumerate(multi):
        assert process["layout"]["process_index"] == index
        assert process["layout"]["process_count"] == 2
        assert process["initial_checksum"] == single["initial_checksum"]
        result = process["results"][method]
        # Same loss curve, penalty and accuracy within float tolerance.
        for key in reference["history"]:
            for a, b in zip(reference["history"][key], result["history"][key]):
                assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (key, reference, result)
        # Same weights and u/v as one process (all-reduce sums in another order).
        assert _max_difference(reference["weights"], result["weights"]) < 1e-3
        uv_names = sorted(reference["uv"])
        assert uv_names and sorted(result["uv"]) == uv_names
        assert (
            _max_difference(
                [reference["uv"][n][0] for n in uv_names],
                [result["uv"][n][0] for n in uv_names],
            )
            < 1e-4
        )
    # Every worker holds the same weights and u/v after training.
    first, second = (p["results"][method] for p in multi)
    assert _max_difference(first["weights"], second["weights"]) < 1e-6
    for name in uv_names:
        copies = first["uv"][name] + second["uv"][name]  # per worker, per device
        assert len(copies) == 2
        assert _max_difference(copies, [copies[0]] * len(copies)) < 1e-6, name
