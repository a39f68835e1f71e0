"""Argument validation with one message style for the whole package.

Every check raises with the Keras convention: what the argument must be, then
``Received: name=value``. Each ``check_*(name, value, ...)`` takes the
argument's name (for the message) and the value received, and returns the
(normalized) value so callers can write ``self.steps = check_int("steps", steps)``.

Example:

```python
from specformer_keras.utils.validation import check_int, reject_unknown_kwargs

check_int("steps", 10)                       # -> 10
try:
    check_int("steps", 0)
except ValueError as error:
    assert "Received: steps=0" in str(error)
try:
    reject_unknown_kwargs("SpectralViT", {"penalti": 1.0})
except TypeError as error:
    assert "penalti" in str(error)
```
"""

import math
import numbers

import numpy as np


def _received(name, value):
    return f"Received: {name}={value!r}"


def reject_unknown_kwargs(owner, kwargs, allowed=()):
    """Raises `TypeError` if ``kwargs`` holds a key not in ``allowed``.

    Args:
        owner: Name of the function or class, for the message.
        kwargs: The keyword arguments received.
        allowed: Names that are accepted.

    Raises:
        TypeError: If ``kwargs`` holds a name not in ``allowed`` (the message
            lists the unknown and the allowed names).
    """
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(
            f"Unrecognized keyword arguments passed to {owner}: {unknown}. "
            + (f"Allowed: {sorted(allowed)}. " if allowed else "")
            + f"Received: kwargs={kwargs!r}"
        )


def reject_unknown_layer_kwargs(layer, kwargs):
    """`reject_unknown_kwargs` for a layer's ``__init__``, before ``super().__init__``.

    Args:
        layer: The layer being constructed (its class names it in the message).
        kwargs: The keyword arguments left after the layer's own; only the
            base `keras.layers.Layer` arguments (`layer_arguments`) are allowed.

    Raises:
        TypeError: On an argument that is not a base layer argument.
    """
    reject_unknown_kwargs(type(layer).__name__, kwargs, allowed=layer_arguments())


def check_bool(name, value):
    """`value` must be exactly True or False; returns it as a Python bool.

    Raises:
        TypeError: If `value` is not a bool (``1`` and ``"yes"`` are refused).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"Argument `{name}` must be True or False. {_received(name, value)}"
        )
    return bool(value)


def check_int(name, value, minimum=1, maximum=None):
    """`value` must be an integer (not a bool) in ``[minimum, maximum]``; returns an int.

    Args:
        minimum: The smallest value allowed. Defaults to 1.
        maximum: The largest value allowed, or None for no bound.

    Raises:
        TypeError: If `value` is not an integer (``2.0`` is refused).
        ValueError: If `value` is out of bounds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"Argument `{name}` must be an integer >= {minimum}. {_received(name, value)}"
        )
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(
            f"Argument `{name}` must be an integer {bound}. {_received(name, value)}"
        )
    return int(value)


def check_number(name, value, minimum=None, maximum=None, include_minimum=True):
    """`value` must be a finite real number (not a bool) within the bounds; returns a float.

    Args:
        minimum: The lower bound, or None.
        maximum: The upper bound (included), or None.
        include_minimum: Whether `minimum` itself is allowed. Defaults to True.

    Raises:
        TypeError: If `value` is not a real number.
        ValueError: If `value` is NaN, infinite or out of bounds.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument `{name}` must be a number. {_received(name, value)}")
    value = float(value)
    ok = math.isfinite(value)
    if ok and minimum is not None:
        ok = value >= minimum if include_minimum else value > minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        low = "-inf" if minimum is None else minimum
        high = "inf" if maximum is None else maximum
        bracket = "[" if include_minimum and minimum is not None else "("
        closing = "]" if maximum is not None else ")"
        raise ValueError(
            f"Argument `{name}` must be a finite number in {bracket}{low}, {high}{closing}. "
            f"{_received(name, value)}"
        )
    return value


def check_choice(name, value, choices):
    """`value` must be one of ``choices``; returns it unchanged.

    Args:
        choices: The allowed values.

    Raises:
        ValueError: If `value` is not in `choices` (the message lists them).
    """
    if value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {tuple(choices)}. {_received(name, value)}"
        )
    return value


def check_seed(name, value):
    """`value` must be None or an integer >= 0; returns None or an int.

    Raises:
        TypeError: If `value` is neither None nor an integer.
        ValueError: If `value` is negative.
    """
    if value is None:
        return None
    return check_int(name, value, minimum=0)


def check_rate(name, value):
    """`value` must be a number in ``[0, 1)`` (a dropout or drop-path rate); returns a float.

    Raises:
        TypeError: If `value` is not a real number.
        ValueError: If `value` is outside ``[0, 1)``.
    """
    number = check_number(name, value)
    if not 0.0 <= number < 1.0:
        raise ValueError(
            f"Argument `{name}` must be a number in [0, 1). {_received(name, value)}"
        )
    return number


def layer_arguments(*classes):
    """Keyword arguments the constructors of Keras ``classes`` accept.

    The explicit arguments of each class's ``__init__`` plus those of the base
    ``keras.layers.Layer`` (``name``, ``dtype``, ``trainable``, ...), which
    Keras also accepts as ``input_shape``/``input_dim``. Pass the result as
    ``allowed`` to `reject_unknown_kwargs` before ``super().__init__``.

    Args:
        *classes: Keras layer classes whose constructor arguments are accepted.

    Returns:
        A sorted tuple of argument names.
    """
    import inspect

    import keras

    names = {"input_shape", "input_dim"}
    for cls in classes + (keras.layers.Layer,):
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name != "self" and parameter.kind not in (
                parameter.VAR_KEYWORD,
                parameter.VAR_POSITIONAL,
            ):
                names.add(name)
    return tuple(sorted(names))


def check_arguments(table, values):
    """Runs a table of checks over a function's arguments, in the table's order.

    For argument lists where many names share one check (the integer sizes of
    a model, its dropout rates, a loader's True/False switches): the table
    says once which check each name gets, instead of one call per name.

    Args:
        table: Rows ``(check, names)``: ``check(name, value)`` is one of this
            module's checks (or a ``functools.partial`` of one with its bounds),
            ``names`` a tuple of argument names.
        values: ``{name: value}`` holding every name of the table, usually the
            caller's ``locals()``.

    Returns:
        ``{name: checked value}`` for every name of the table.

    Raises:
        TypeError: From the first check that fails with one, naming the
            argument and the value received.
        ValueError: Likewise.

    Example:

    ```python
    from specformer_keras.utils.validation import check_arguments, check_bool, check_int

    def resize(size, batch_size, flip=False):
        checked = check_arguments(
            ((check_int, ("size", "batch_size")), (check_bool, ("flip",))), locals()
        )
        return checked["size"]

    assert resize(8, 2) == 8
    try:
        resize(8, 0)
    except ValueError as error:
        assert "Received: batch_size=0" in str(error)
    ```
    """
    return {name: check(name, values[name]) for check, names in table for name in names}
