"""torch multi-process layout and all-gather (`torch.distributed`).

Same names in every backend (``tensorflow_collectives``, ``jax_collectives``):

* ``initialize()``: `torch.distributed.init_process_group(init_method="env://")`
  when ``WORLD_SIZE`` > 1 (``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``, as
  ``torchrun`` sets them); ``gloo`` on CPU, ``nccl`` with CUDA;
* ``layout_fields()``: ``process_index``, ``process_count``, ``local_devices``,
  ``engine`` for `specformer_keras.distributed.ProcessLayout`;
* ``allgather_bytes(payload, layout)``: every process's ``bytes``, in order
  (`torch.distributed.all_gather_object`).

Keras's torch backend runs a model on one device per process, so
``local_devices`` is 1.
"""

import atexit
import os

import torch
import torch.distributed as dist


def _initialized():
    return dist.is_available() and dist.is_initialized()


def initialize():
    """The default process group from ``torchrun``'s variables (no-op for 1 process)."""
    if _initialized():
        return
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        world_size = int(value)
    except ValueError:
        raise ValueError(
            f"Environment variable WORLD_SIZE must be an integer. "
            f"Received: WORLD_SIZE={value!r}"
        ) from None
    if world_size <= 1:
        return
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ValueError(
                f"WORLD_SIZE={world_size} needs the environment variable {name} "
                "(torchrun sets RANK, MASTER_ADDR and MASTER_PORT). "
                f"Received: {name} unset"
            )
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, init_method="env://")
    # Without it, gloo's threads may abort the interpreter at exit (seen once,
    # torch 2.13: "terminate called without an active exception", status -6).
    atexit.register(_destroy)


def _destroy():
    if _initialized():
        dist.destroy_process_group()


def layout_fields():
    if not _initialized():
        return {
            "process_index": 0,
            "process_count": 1,
            "local_devices": 1,
            "engine": "single",
        }
    count = dist.get_world_size()
    return {
        "process_index": dist.get_rank(),
        "process_count": count,
        "local_devices": 1,
        "engine": "torch.distributed" if count > 1 else "single",
    }


def allgather_bytes(payload, layout):
    gathered = [None] * layout.process_count
    dist.all_gather_object(gathered, payload)
    return gathered
