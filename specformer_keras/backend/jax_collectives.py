"""JAX multi-process layout and all-gather (`jax.distributed`).

Same names in every backend (``tensorflow_collectives``, ``torch_collectives``):

* ``initialize()``: `jax.distributed.initialize` from ``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` (unset ones from JAX's cluster
  detection);
* ``layout_fields()``: ``process_index``, ``process_count``, ``local_devices``,
  ``engine`` for `specformer_keras.distributed.ProcessLayout`;
* ``allgather_bytes(payload, layout)``: every process's ``bytes``, in order.

The all-gather is `jax.experimental.multihost_utils.process_allgather` (a jitted
collective over all processes' devices; on CPU through gloo, JAX's default
``jax_cpu_collectives_implementation``): first the lengths, then the payloads
as uint8 arrays padded to the longest.
"""

import os

import jax
import numpy as np

ENV_ADDRESS = "JAX_COORDINATOR_ADDRESS"
ENV_COUNT = "JAX_NUM_PROCESSES"
ENV_ID = "JAX_PROCESS_ID"


def _env_int(name):
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(
            f"Environment variable {name} must be an integer. Received: {name}={value!r}"
        ) from None


def _is_initialized():
    from jax._src import distributed

    return distributed.global_state.client is not None


def initialize():
    """`jax.distributed.initialize` from the environment (once; no-op for 1 process)."""
    if _is_initialized():
        return
    address = os.environ.get(ENV_ADDRESS)
    count, index = _env_int(ENV_COUNT), _env_int(ENV_ID)
    if address is None and (count is None or count <= 1):
        # One process. (Under SLURM, Open MPI or on a Cloud TPU pod, call
        # jax.distributed.initialize() itself: it detects the cluster.)
        return
    if address is not None and ":" not in address:
        raise ValueError(
            f"Environment variable {ENV_ADDRESS} must be host:port of process 0. "
            f"Received: {ENV_ADDRESS}={address!r}"
        )
    jax.distributed.initialize(
        coordinator_address=address, num_processes=count, process_id=index
    )


def layout_fields():
    count = jax.process_count()
    return {
        "process_index": jax.process_index(),
        "process_count": count,
        "local_devices": jax.local_device_count(),
        "engine": "jax.distributed" if count > 1 else "single",
    }


def allgather_bytes(payload, layout):
    from jax.experimental import multihost_utils

    lengths = np.asarray(
        multihost_utils.process_allgather(np.array([len(payload)], np.int32))
    ).reshape(layout.process_count)
    buffer = np.zeros(int(lengths.max()), np.uint8)
    buffer[: len(payload)] = np.frombuffer(payload, np.uint8)
    gathered = np.asarray(multihost_utils.process_allgather(buffer))
    return [gathered[i, : lengths[i]].tobytes() for i in range(layout.process_count)]
