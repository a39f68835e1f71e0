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
        x: Images (NumPy array or tensor).
        context: What is being checked, for the message.

    Raises:
        TypeError: If ``x`` does not hold numbers.
        ValueError: If a pixel is not finite or lies outside ``[0, 1]`` (the
            message says when the images look like 0-255 values).

    Example:

    ```python
    import numpy as np
    from specformer_keras.training.input_checks import check_pixels

    check_pixels(np.full((2, 8, 8, 3), 0.5, "float32"))
    try:
        check_pixels(np.full((2, 8, 8, 3), 255.0, "float32"))
    except ValueError as error:
        assert "divide by 255" in str(error)
    else:
        raise AssertionError("0-255 images were accepted")
    ```
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
        y: Labels (NumPy array or tensor).
        classes: Number of model outputs.
        context: What is being checked, for the message.

    Returns:
        Integer labels ``(batch,)`` (the argmax of one-hot labels).

    Raises:
        TypeError: If sparse labels are not integer class indices.
        ValueError: If a label is out of range, one-hot labels have the wrong
            width or negative values, or ``y`` has another rank.

    Example:

    ```python
    import numpy as np
    from specformer_keras.training.input_checks import check_labels

    labels = check_labels(np.array([[0.0, 1.0], [1.0, 0.0]]), classes=2)
    np.testing.assert_array_equal(labels, [1, 0])
    ```
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
        x: The input of `fit`: arrays, a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a generator or another iterable.
        y: The labels of `fit` when ``x`` is an array, else None.
        batch_size: The batch size of `fit` (arrays only).
        rows: Rows of array inputs used for the model checks.

    Returns:
        ``(x_all, y_all, x_batch, y_batch, fit_input)``; ``x_all``/``y_all`` are
        the whole arrays (or the first batch) for the range checks,
        ``x_batch``/``y_batch`` at most ``rows`` examples for the model checks.
        Entries are None when the input is of a kind with no labels or no
        images to check (e.g. dict inputs).

    Example:

    ```python
    import numpy as np
    from specformer_keras.training.input_checks import peek_first_batch

    def batches():
        for i in range(3):
            yield np.full((2, 4), i, "float32"), np.array([i, i])

    _, _, x_batch, y_batch, fit_input = peek_first_batch(batches())
    assert y_batch.tolist() == [0, 0]
    assert len(list(fit_input)) == 3  # the peeked batch is replayed first
    ```
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
        model: The classifier (images in [0, 1] -> logits).
        x: The input of `fit` (see `peek_first_batch`).
        y: The labels of `fit` when ``x`` is an array, else None.
        batch_size: The batch size of `fit` (arrays only).
        needs_gradient: Whether the attack follows the input gradient (an
            all-zero gradient is then an error, else a warning).
        context: What is being checked, for the messages.

    Returns:
        The input to pass on to `fit` (a replaying generator if ``x`` was one).

    Raises:
        ValueError: For pixels outside ``[0, 1]``, out-of-range labels or a
            model output that is not ``(batch, classes)`` logits.
        TypeError: For non-numeric images or non-integer sparse labels.
        specformer_keras.evaluation.PreflightError: For the model faults of
            `specformer_keras.evaluation.preflight`.

    Example:

    ```python
    import keras
    import numpy as np
    from specformer_keras.training.input_checks import check_first_batch

    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    x = np.random.default_rng(0).random((8, 4, 4, 1)).astype("float32")
    y = np.arange(8) % 2
    fit_input = check_first_batch(model, x, y, batch_size=4)
    assert fit_input is x
    ```
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
