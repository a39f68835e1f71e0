"""`allgather_objects`: every process's picklable object, on every process."""

import pickle

from specformer_keras.backend import backend_module
from specformer_keras.distributed.layout import process_layout


def allgather_objects(obj):
    """Every process gets ``[obj of process 0, obj of process 1, ...]``.

    With one process this is ``[obj]`` (the object itself, not a copy). With
    several, ``obj`` is pickled and the bytes are exchanged by the engine's
    collective (JAX: `jax.experimental.multihost_utils.process_allgather` of
    padded uint8 arrays; TensorFlow: `strategy.gather` inside the
    `MultiWorkerMirroredStrategy`; torch: `torch.distributed.all_gather_object`).
    Every process must call it, in the same order (it is a collective).

    Args:
        obj: a picklable Python object (e.g. a dict of NumPy arrays).

    Returns:
        A list of ``process_layout().process_count`` objects, in process order.

    Raises:
        TypeError: ``obj`` cannot be pickled.

    Example:

    ```python
    import numpy as np
    from specformer_keras.distributed import allgather_objects

    gathered = allgather_objects({"robust": np.array([True, False])})
    assert len(gathered) == 1 and gathered[0]["robust"].tolist() == [True, False]
    ```
    """
    layout = process_layout()
    if layout.process_count == 1:
        return [obj]
    try:
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise TypeError(
            "Argument `obj` must be picklable to be gathered across processes "
            f"({error}). Received: obj of type {type(obj).__name__}"
        ) from error
    payloads = backend_module("collectives").allgather_bytes(payload, layout)
    if len(payloads) != layout.process_count:
        raise RuntimeError(
            f"The {layout.engine} all-gather returned {len(payloads)} payloads for "
            f"{layout.process_count} processes."
        )
    return [pickle.loads(p) for p in payloads]
