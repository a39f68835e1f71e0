"""Checks of the training data on its first batch, before `fit` starts.

`AdversarialTrainer.fit` peeks at the first batch of its input (NumPy arrays or
tensors, a ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a generator, or any
other iterable of batches such as a torch ``DataLoader`` or a grain dataset)
without consuming it, and refuses data that would train silently wrong:

* pixels outside ``[0, 1]`` (beyond `PIXEL_TOLERANCE`): the eps budgets are in
  pixel units, so images in ``[0, 255]`` (or standardized) make ``eps=8/255``
  a meaningless perturbation;
* labels outside ``[0, classes - 1]`` (on JAX an out-of-range label gives a
  zero cross-entropy instead of an error), non-integer sparse labels, or
  one-hot labels of the wrong width;
* the model faults of `specformer_keras.evaluation.preflight`: non-finite
  logits, probability outputs, an input gradient that is zero on every point.

The checks run on concrete NumPy values outside the compiled train step, so
they are the same on every backend (an in-graph assert is not available on
all of them). Arrays are checked whole (cheap); other inputs on their first
batch only.

Example:

```python
import numpy as np
from specformer_keras.training.input_checks import check_pixels

check_pixels(np.random.rand(2, 4, 4, 3))          # fine
try:
    check_pixels(np.full((2, 4, 4, 3), 255.0))    # 0-255 images
except ValueError as error:
    assert "[0, 1]" in str(error)
```
"""

import types

import keras
import numpy as np

# How far outside [0, 1] pixels may lie (resampling overshoot); [0, 255],
# [-1, 1] or standardized images are far beyond it.
PIXEL_TOLERANCE = 0.05


def _to_numpy(value):
    if isinstance(value, np.ndarray):
        return value
    return np.asarray(keras.ops.convert_to_numpy(value))


def check_pixels(x, context="AdversarialTrainer.fit"):
    """Raises `ValueError` unless ``x`` holds finite pixels in ``[0, 1]``.

    Args:
        x: images (NumPy array or tensor).
        context: what is being checked, for the message.
    """
    x = _to_numpy(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(
            f"{context}: images must be numbers with pixel values in [0, 1]. "
            f"Received: x.dtype={x.dtype}"
        )
    if x.size == 0:
        return
    if not np.all(np.isfinite(x)):
        raise ValueError(
            f"{context}: images must be finite (NaN or inf found). "
            "Received: x with non-finite values"
        )
    low, high = float(x.min()), float(x.max())
    if low < -PIXEL_TOLERANCE or high > 1.0 + PIXEL_TOLERANCE:
        hint = (
            " Images look like 0-255 values: divide by 255 (models normalize "
            "inside, with a Normalization or Rescaling layer)."
            if high > 2.0
            else " Pass raw [0, 1] pixels; normalize inside the model."
        )
        raise ValueError(
            f"{context}: images must have pixel values in [0, 1] (the attack "
            f"budgets eps and step_size are in pixel units).{hint} "
            f"Received: x with min={low:.6g} and max={high:.6g}"
        )


def check_labels(y, classes, context="AdversarialTrainer.fit"):
    """Raises unless ``y`` holds valid labels for ``classes`` outputs.

    Sparse labels (shape ``(batch,)`` or ``(batch, 1)``) must be integers in
    ``[0, classes - 1]``; one-hot or soft labels (``(batch, classes)``) must be
    finite and non-negative.

    Args:
        y: labels (NumPy array or tensor).
        classes: number of model outputs.
        context: what is being checked, for the message.

    Returns:
        Integer labels ``(batch,)`` (the argmax of one-hot labels).
    """
    y = _to_numpy(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        if y.shape[1] != classes:
            raise ValueError(
                f"{context}: one-hot labels must have one column per model output "
                f"({classes}). Received: y.shape={y.shape}"
            )
        if not np.all(np.isfinite(y)) or y.min() < 0:
            raise ValueError(
                f"{context}: one-hot or soft labels must be finite and >= 0. "
                f"Received: y with min={y.min()}"
            )
        return y.argmax(axis=-1)
    if y.ndim != 1:
        raise ValueError(
            f"{context}: labels must be integers (batch,) or one-hot "
            f"(batch, {classes}). Received: y.shape={y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if not (
            np.issubdtype(y.dtype, np.floating)
            and np.all(np.isfinite(y))
            and np.all(y == np.round(y))
        ):
            raise TypeError(
                f"{context}: sparse labels must be integer class indices. "
                f"Received: y.dtype={y.dtype}"
            )
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ValueError(
            f"{context}: labels must lie in [0, {classes - 1}] for a model with "
            f"{classes} outputs (an out-of-range label trains with a wrong or "
            f"zero loss on some backends). Received: y with min={y.min()} and "
            f"max={y.max()}"
        )
    return y.astype("int64")


def _is_tf_dataset(x):
    module = type(x).__module__
    return module.startswith("tensorflow") and hasattr(x, "take")


def peek_first_batch(x, y=None, batch_size=None, rows=32):
    """The first ``(x, y)`` of fit's input, and the input to pass on to fit.

    Arrays are returned whole (their checks are cheap). A generator is
    consumed by one batch, so the returned input is a new generator that yields
    that batch first; every other input is returned as is.

    Args:
        x, y, batch_size: as given to `fit`.
        rows: rows of array inputs used for the model checks.

    Returns:
        ``(x_all, y_all, x_batch, y_batch, fit_input)``; ``x_all``/``y_all`` are
        the whole arrays (or the first batch) for the range checks,
        ``x_batch``/``y_batch`` at most ``rows`` examples for the model checks.
        Entries are None when the input is of a kind with no labels or no
        images to check (e.g. dict inputs).
    """
    from keras.src.trainers.data_adapters import array_data_adapter

    if y is not None or array_data_adapter.can_convert_arrays((x, y, None)):
        if not hasattr(x, "shape"):
            return None, None, None, None, x
        n = min(rows, batch_size or rows)
        return x, y, x[:n], None if y is None else y[:n], x
    first, fit_input = None, x
    if _is_tf_dataset(x):
        first = next(iter(x.take(1)), None)
    elif isinstance(x, keras.utils.PyDataset):
        first = x[0]
    elif isinstance(x, types.GeneratorType):
        try:
            first = next(x)
        except StopIteration:
            return None, None, None, None, x

        def replay(first=first, rest=x):
            yield first
            yield from rest

        fit_input = replay()
    elif hasattr(x, "__iter__") and not isinstance(x, (dict, str, bytes)):
        iterator = iter(x)
        if iterator is x:  # a one-shot iterator: cannot peek without consuming
            return None, None, None, None, x
        first = next(iterator, None)
    if first is None:
        return None, None, None, None, fit_input
    batch_x, batch_y, _ = keras.utils.unpack_x_y_sample_weight(
        tuple(first) if isinstance(first, list) else first
    )
    if not hasattr(batch_x, "shape"):
        return None, None, None, None, fit_input
    return (
        batch_x,
        batch_y,
        batch_x[:rows],
        (None if batch_y is None else batch_y[:rows]),
        fit_input,
    )


def check_first_batch(
    model,
    x,
    y=None,
    batch_size=None,
    needs_gradient=True,
    context="AdversarialTrainer.fit",
):
    """Checks fit's input and ``model`` on the first batch; returns fit's input.

    Args:
        model: the classifier (images in [0, 1] -> logits).
        x, y, batch_size: as given to `fit`.
        needs_gradient: whether the attack follows the input gradient (an
            all-zero gradient is then an error, else a warning).
        context: for the messages.

    Returns:
        The input to pass on to `fit` (a replaying generator if ``x`` was one).

    Raises:
        ValueError, TypeError: for bad pixels or labels (see module docstring).
        specformer_keras.evaluation.PreflightError: for the model faults of
            `specformer_keras.evaluation.preflight`.
    """
    import warnings

    from specformer_keras.evaluation import preflight

    x_all, y_all, x_batch, y_batch, fit_input = peek_first_batch(x, y, batch_size)
    if x_all is None:
        return fit_input
    check_pixels(x_all, context)
    x_batch = np.clip(_to_numpy(x_batch).astype("float32"), 0.0, 1.0)
    logits = _to_numpy(model(keras.ops.convert_to_tensor(x_batch), training=False))
    if logits.ndim != 2:
        raise ValueError(
            f"{context}: the model must return logits of shape (batch, classes). "
            f"Received: model output shape={logits.shape}"
        )
    if y_all is None:
        return fit_input
    check_labels(y_all, logits.shape[1], context)
    labels = check_labels(y_batch, logits.shape[1], context)
    result = preflight(
        model,
        x_batch,
        labels,
        logits=logits,
        needs_gradient=needs_gradient,
        context=context,
    )
    for line in result["warnings"]:
        warnings.warn(line, stacklevel=3)
    return fit_input
