"""The inputs every attack checks, and the type of what it returns.

`prepare_inputs` checks ``model``, ``x``, ``y`` and ``eps`` once (numpy or
backend tensors in; float32 numpy and int64 labels out); `restore_type`
gives the result x's dtype and kind (numpy or tensor) back.

Example:

```python
import keras, numpy as np
from specformer_keras.attacks.inputs import prepare_inputs

model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
x, y, dtype = prepare_inputs(model, np.zeros((2, 3)), np.array([0, 1]), 0.1)
assert x.dtype == np.float32 and dtype == np.float64
```
"""

import numpy as np
from keras import ops

from specformer_keras.attacks.norms import check_eps, check_norm
from specformer_keras.attacks.runner import predict_logits

__all__ = ["prepare_inputs", "restore_type", "to_numpy"]


def to_numpy(value):
    """numpy view of a numpy array, list or backend tensor."""
    if isinstance(value, np.ndarray):
        return value
    return np.asarray(ops.convert_to_numpy(value))


def prepare_inputs(model, x, y, eps, norm=None):
    """Checks the common arguments; returns float32 x, int labels and x's dtype.

    ``norm`` is checked too when given (last).

    Raises:
        TypeError: ``model`` not callable, ``x`` not floating point, ``y``
            not integer labels.
        ValueError: ``x`` empty or outside ``[0, 1]``, ``y`` of the wrong
            shape or range, ``eps`` negative or not finite, model outputs not
            ``(batch, classes)``, ``norm`` not ``"linf"`` or ``"l2"``.
    """
    if not callable(model):
        raise TypeError(
            "Argument `model` must be a callable Keras model returning logits. "
            f"Received: model={model!r}"
        )
    x_np = to_numpy(x)
    dtype = x_np.dtype
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(
            "Argument `x` must hold floating point images in [0, 1]. "
            f"Received: x.dtype={dtype}"
        )
    x_np = x_np.astype("float32")
    if x_np.ndim < 2 or x_np.shape[0] == 0:
        raise ValueError(
            "Argument `x` must be a non-empty batch (batch, ...). "
            f"Received: x.shape={x_np.shape}"
        )
    if not np.all(np.isfinite(x_np)) or x_np.min() < 0.0 or x_np.max() > 1.0:
        raise ValueError(
            "Argument `x` must lie in [0, 1] (attacks work in pixel units; "
            "normalize inside the model). "
            f"Received: x with min={x_np.min()} and max={x_np.max()}"
        )
    y_np = to_numpy(y)
    if y_np.ndim != 1 or y_np.shape[0] != x_np.shape[0]:
        raise ValueError(
            "Argument `y` must hold one integer label per example of `x` "
            f"(shape ({x_np.shape[0]},)). Received: y.shape={y_np.shape}"
        )
    if not np.issubdtype(y_np.dtype, np.integer):
        if np.issubdtype(y_np.dtype, np.floating) and np.all(y_np == np.round(y_np)):
            y_np = y_np.astype("int64")
        else:
            raise TypeError(
                f"Argument `y` must hold integer class labels. Received: y.dtype={y_np.dtype}"
            )
    check_eps(eps)
    logits = predict_logits(model, x_np[:1])
    if logits.ndim != 2:
        raise ValueError(
            "Argument `model` must return logits of shape (batch, classes). "
            f"Received: model output shape={logits.shape}"
        )
    classes = logits.shape[1]
    if y_np.min() < 0 or y_np.max() >= classes:
        raise ValueError(
            f"Argument `y` must hold labels in [0, {classes - 1}] for a model "
            f"with {classes} classes. Received: y with min={y_np.min()} and "
            f"max={y_np.max()}"
        )
    if norm is not None:
        check_norm(norm)
    return x_np, y_np.astype("int64"), dtype


def restore_type(result, original, dtype):
    """Returns ``result`` as numpy of ``dtype``, or a tensor if x was one."""
    result = result.astype(dtype)
    if isinstance(original, np.ndarray):
        return result
    return ops.convert_to_tensor(result)
