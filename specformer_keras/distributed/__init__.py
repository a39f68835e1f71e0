"""Several processes (one per host): the layout they run on and what they exchange.

The engines are Keras's own: `tf.distribute.MultiWorkerMirroredStrategy`
(``TF_CONFIG``) on TensorFlow, `jax.distributed` on JAX, `torch.distributed`
on torch. The per-backend code is ``specformer_keras.backend.<backend>_collectives``.

* `initialize()` starts the active backend's engine from environment variables
  (once, at program start).
* `process_layout()` says which process this is, of how many, with how many
  local devices, and which engine connects them.
* `allgather_objects(obj)` gives every process the list of every process's
  (picklable) object.
* `shard_indices(n)` is this process's contiguous, balanced share of ``range(n)``.

Example:

```python
from specformer_keras.distributed import (
    allgather_objects,
    process_layout,
    shard_indices,
)

layout = process_layout()       # one process here: engine "single"
assert layout.process_count == 1 and layout.engine == "single"
assert list(shard_indices(5, layout)) == [0, 1, 2, 3, 4]
assert allgather_objects({"correct": [1, 0]}) == [{"correct": [1, 0]}]
```
"""

from specformer_keras.distributed.collectives import allgather_objects
from specformer_keras.distributed.layout import (
    ProcessLayout,
    initialize,
    process_layout,
    shard_indices,
)

__all__ = [
    "ProcessLayout",
    "allgather_objects",
    "initialize",
    "process_layout",
    "shard_indices",
]
