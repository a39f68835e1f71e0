"""The data of `evaluate_robustness`: batches with their global ranges, and shards.

`data_source(data, batch_size)` turns ``(x, y)`` arrays or an iterable of
``(x, y)`` batches into a `DataSource` (numpy batches, their number when it is
known, the arrays themselves for fingerprinting), deciding by structure
whether a tuple or list is ``(x, y)`` or a list of batches (see
`data_source`); `owned_batches` says which
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

__all__ = [
    "ACCEPTED",
    "DataSource",
    "data_source",
    "describe",
    "labels_of",
    "owned_batches",
]


class DataSource:
    """Batches of ``data``.

    Attributes:
        generator: yields numpy ``(x, y)`` batches, once.
        total: number of batches, or None if unknown.
        arrays: ``(x, y)`` for array data, else None.
    """

    def __init__(self, generator, total, arrays=None):
        self.generator, self.total, self.arrays = generator, total, arrays


ACCEPTED = (
    "a tuple (x, y) of arrays (x of rank >= 2, y of integer or one-hot labels, "
    "one per image), or a list, tf.data.Dataset or other iterable of (x, y) "
    "batches"
)


def describe(value, depth=0):
    """Types and shapes of ``value`` (never its data), for error messages.

    Example:

    ```python
    import numpy as np
    from specformer_keras.evaluation.sources import describe

    assert describe((np.zeros((2, 3)), [0, 1])) == (
        "tuple of 2: (ndarray shape=(2, 3) dtype=float64, list of 2)")
    ```
    """
    name = type(value).__name__
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{name} shape={tuple(value.shape)} dtype={value.dtype}"
    if isinstance(value, (tuple, list)):
        if depth >= 1 or not value:
            return f"{name} of {len(value)}"
        parts = [describe(part, depth + 1) for part in value[:3]]
        more = ", ..." if len(value) > 3 else ""
        return f"{name} of {len(value)}: (" + ", ".join(parts) + more + ")"
    return name


def _as_pair(x, y):
    """``(x, y)`` as numpy arrays if they are one batch of images and labels, else None.

    A batch: ``x`` of rank >= 2, ``y`` of rank 1 (or 2: one-hot, or a column
    of labels) with one label per image. Neither may be a tuple or list of
    arrays (that is a batch itself); lists of numbers are arrays.
    """
    arrays = []
    for part in (x, y):
        if isinstance(part, (tuple, list)) and part and not _is_number_list(part):
            return None
        try:
            arrays.append(to_numpy(part))
        except (TypeError, ValueError):
            return None
    x, y = arrays
    if x.dtype == object or y.dtype == object or x.ndim < 2:
        return None
    if y.ndim not in (1, 2) or y.shape[0] != x.shape[0]:
        return None
    return x, y


def _is_number_list(values):
    """Whether a list holds numbers or nested lists of numbers (an array as lists)."""
    first = values[0]
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    return isinstance(first, (int, float, np.number, np.bool_))


def _is_batch(element):
    return (
        isinstance(element, (tuple, list))
        and len(element) >= 2
        and _as_pair(element[0], element[1]) is not None
    )


def _sequence_kind(data):
    """``("arrays", (x, y))`` or ``("batches", None)`` for a tuple or list ``data``.

    The two readings exclude each other: in a list of batches each element is
    a tuple, which `_as_pair` never reads as an array.

    Raises:
        ValueError: neither reading fits.
    """
    arrays = _as_pair(*data) if len(data) == 2 else None
    if arrays is not None:
        return "arrays", arrays
    if data and all(_is_batch(element) for element in data):
        return "batches", None
    if len(data) == 2 and not any(_is_batch(part) for part in data):
        why = (
            "read as (x, y), x must have rank >= 2 and y one label per image "
            "(y.shape[0] == x.shape[0])"
        )
    else:
        why = "read as a list of batches, every element must be an (x, y) batch"
    raise ValueError(
        f"Argument `data` must be {ACCEPTED}; {why}. Received: data={describe(data)}"
    )


def data_source(data, batch_size):
    """The `DataSource` of ``data`` (arrays cut into ``batch_size`` batches).

    A tuple or list is read by its structure: two arrays that fit together
    (``x`` of rank >= 2, one label per image) are ``(x, y)``; a sequence whose
    every element is such a pair is a list of batches (of any length, two
    included). Anything else is refused naming the types and shapes received.

    Raises:
        ValueError: ``data`` is not one of the accepted forms.
        TypeError: ``data`` is neither a sequence nor iterable.
    """
    kind = "iterable"
    if isinstance(data, (tuple, list)):
        kind, arrays = _sequence_kind(data)
    if kind == "arrays":
        x, y = arrays
        total = -(-x.shape[0] // batch_size)
        generator = (
            (x[i : i + batch_size], y[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        )
        return DataSource(generator, total, (x, y))
    if not hasattr(data, "__iter__"):
        raise TypeError(
            f"Argument `data` must be {ACCEPTED}. Received: data of type "
            f"{type(data).__name__}"
        )
    total = len(data) if kind == "batches" else None
    if hasattr(data, "cardinality"):
        cardinality = int(data.cardinality())
        total = cardinality if cardinality >= 0 else None

    def generator():
        for index, element in enumerate(data):
            if not isinstance(element, (tuple, list)) or len(element) < 2:
                raise ValueError(
                    f"Argument `data` must be {ACCEPTED}. Received: batch {index} "
                    f"of type {type(element).__name__}"
                )
            x, y = to_numpy(element[0]), to_numpy(element[1])
            if y.ndim == 0:
                raise ValueError(
                    "Argument `data` must yield batches (call dataset.batch(...)). "
                    f"Received: data yielding single examples, x.shape={x.shape}"
                )
            if x.ndim < 2 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"Argument `data` must be {ACCEPTED}. Received: batch {index} "
                    f"with x.shape={x.shape} and y.shape={y.shape}"
                )
            yield x, y

    return DataSource(generator(), total)


def labels_of(y):
    """Integer labels of integer, one-hot or soft labels ``y``."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # a column of labels, as keras.datasets
        return y[:, 0]
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
