"""The MSVP penalty argument: which projections, and one lambda for each."""

import numbers

import numpy as np

# The attention projections MSVP can penalize, in the order of a 3-tuple penalty.
PROJECTIONS = ("query", "key", "value")


def normalize_penalty(penalty):
    """Returns `penalty` as a `(lambda_q, lambda_k, lambda_v)` tuple of floats.

    Args:
        penalty: `None`, a non-negative number (the same lambda for query, key
            and value) or a sequence of three non-negative numbers.

    Returns:
        A tuple of three Python floats.

    Raises:
        TypeError: If `penalty` is a bool, or neither a number nor a sequence
            of numbers.
        ValueError: If a sequence does not have 3 values, or a value is
            negative or not finite.

    Example:

    ```python
    from specformer_keras.layers.penalty import normalize_penalty

    assert normalize_penalty(1e-3) == (1e-3, 1e-3, 1e-3)
    assert normalize_penalty((0.0, 1.0, 2)) == (0.0, 1.0, 2.0)
    ```
    """
    if penalty is None:
        return (0.0, 0.0, 0.0)
    if isinstance(penalty, bool):
        raise TypeError(
            "`penalty` must be a non-negative number or a sequence of three "
            f"non-negative numbers (lambda_q, lambda_k, lambda_v). Received: "
            f"penalty={penalty!r}"
        )
    if isinstance(penalty, numbers.Real):
        values = (float(penalty),) * 3
    else:
        try:
            values = tuple(float(p) for p in penalty)
        except (TypeError, ValueError):
            raise TypeError(
                "`penalty` must be a non-negative number or a sequence of three "
                "non-negative numbers (lambda_q, lambda_k, lambda_v). Received: "
                f"penalty={penalty!r}"
            ) from None
        if len(values) != 3:
            raise ValueError(
                "`penalty` as a sequence must have exactly 3 values "
                "(lambda_q, lambda_k, lambda_v). "
                f"Received: penalty={penalty!r} with {len(values)} values"
            )
    if any(not np.isfinite(v) or v < 0 for v in values):
        raise ValueError(
            "`penalty` values must be finite and >= 0 (0 disables a projection's "
            f"penalty). Received: penalty={penalty!r}"
        )
    return values
