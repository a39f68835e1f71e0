"""The data of `evaluate_robustness`: batches with their global ranges, and shards.

`data_source(data, batch_size)` turns ``(x, y)`` arrays or an iterable of
``(x, y)`` batches into a `DataSource` (numpy batches, their number when it is
known, the arrays themselves for fingerprinting); `owned_batches` says which
batches a process attacks: with array data a contiguous block of batches
(`specformer_keras.distributed.shard_indices` over the batches), with an
iterable every ``process_count``-th batch (every process iterates the same
batches).

Example:

```python
import numpy as np
from specformer_keras.distributed import ProcessLayout
from specformer_keras.evaluation.sources import data_source, owned_batches

source = data_source((np.zeros((10, 2), "float32"), np.zeros(10, int)), 4)
second = ProcessLayout("jax", 1, 2, 1, "jax.distributed")
owned = owned_batches(source, second)
assert source.total == 3 and [owned(i) for i in range(3)] == [False, True, True]
```
"""

import numpy as np

from specformer_keras.attacks.inputs import to_numpy
from specformer_keras.distributed import shard_indices

__all__ = ["DataSource", "data_source", "labels_of", "owned_batches"]


class DataSource:
    """Batches of ``data``.

    Attributes:
        generator: yields numpy ``(x, y)`` batches, once.
        total: number of batches, or None if unknown.
        arrays: ``(x, y)`` for array data, else None.
    """

    def __init__(self, generator, total, arrays=None):
        self.generator, self.total, self.arrays = generator, total, arrays


def data_source(data, batch_size):
    """The `DataSource` of ``data`` (arrays cut into ``batch_size`` batches)."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (to_numpy(part) for part in data)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                "Argument `data` must be (x, y) with one label per image. "
                f"Received: data with x.shape={x.shape} and y.shape={y.shape}"
            )
        total = -(-x.shape[0] // batch_size)
        generator = (
            (x[i : i + batch_size], y[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        )
        return DataSource(generator, total, (x, y))
    if not hasattr(data, "__iter__"):
        raise TypeError(
            "Argument `data` must be a tuple (x, y) of arrays, or a tf.data.Dataset "
            f"or iterable of (x, y) batches. Received: data={data!r}"
        )
    total = None
    if hasattr(data, "cardinality"):
        cardinality = int(data.cardinality())
        total = cardinality if cardinality >= 0 else None

    def generator():
        for element in data:
            if not isinstance(element, (tuple, list)) or len(element) < 2:
                raise ValueError(
                    "Argument `data` must yield (x, y) batches. "
                    f"Received: an element of type {type(element).__name__}"
                )
            x, y = to_numpy(element[0]), to_numpy(element[1])
            if y.ndim == 0:
                raise ValueError(
                    "Argument `data` must yield batches (call dataset.batch(...)). "
                    f"Received: data yielding single examples, x.shape={x.shape}"
                )
            yield x, y

    return DataSource(generator(), total)


def labels_of(y):
    """Integer labels of integer, one-hot or soft labels ``y``."""
    y = np.asarray(y)
    if y.ndim == 2:  # one-hot or soft labels
        return y.argmax(axis=-1)
    return y


def owned_batches(source, layout):
    """``owned(batch_index) -> bool``: whether this process attacks the batch.

    Args:
        source: a `DataSource`.
        layout: the `specformer_keras.distributed.ProcessLayout` of this process.
    """
    if layout.process_count == 1:
        return lambda batch_index: True
    if source.total is not None and source.arrays is not None:
        mine = set(shard_indices(source.total, layout).tolist())
        return lambda batch_index: batch_index in mine
    count, index = layout.process_count, layout.process_index
    return lambda batch_index: batch_index % count == index
