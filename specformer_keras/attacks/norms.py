"""Threat-model geometry: per-example norms, projections, random starts, budgets.

Tensor functions (``keras.ops``, usable inside compiled loops): `flat_norm`,
`expand_to`, `project`, `steepest_direction`. NumPy functions (the driver
side): `perturbation_norm`, `within_budget`, `uniform_start`,
`random_start`. Argument checks: `check_norm`, `check_eps`.

Example:

```python
import numpy as np
from specformer_keras.attacks.norms import perturbation_norm, within_budget

x = np.zeros((1, 4), "float32")
x_adv = x + 0.1
perturbation_norm(x_adv, x, "l2")           # [0.2]
within_budget(x_adv, x, 8 / 255, "linf")    # [False]
```
"""

import numpy as np
from keras import ops

from specformer_keras.utils.validation import check_choice, check_number

NORMS = ("linf", "l2")

__all__ = [
    "NORMS",
    "check_eps",
    "check_norm",
    "expand_to",
    "flat_norm",
    "perturbation_norm",
    "project",
    "random_start",
    "steepest_direction",
    "uniform_start",
    "within_budget",
]


def check_norm(norm):
    """Raises unless ``norm`` is ``"linf"`` or ``"l2"``; returns it."""
    return check_choice("norm", norm, NORMS)


def check_eps(eps):
    """Raises unless ``eps`` is a finite real number >= 0 (bools refused)."""
    check_number("eps", eps, minimum=0.0)
    return eps


# ----------------------------------------------------------------------------
# Tensors (inside compiled code)
# ----------------------------------------------------------------------------
def expand_to(values, reference):
    """Reshape ``(batch,)`` values to broadcast against ``reference``."""
    rank = len(ops.shape(reference))
    return ops.reshape(values, (-1,) + (1,) * (rank - 1))


def flat_norm(delta, norm):
    """Per-example Linf or L2 norm of ``delta`` (a tensor).

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.norms import flat_norm

    flat_norm(np.array([[3.0, -4.0]], "float32"), "l2")  # [5.0]
    ```
    """
    flat = ops.reshape(delta, (ops.shape(delta)[0], -1))
    if norm == "linf":
        return ops.max(ops.abs(flat), axis=1)
    return ops.sqrt(ops.sum(ops.square(flat), axis=1))


def project(x_adv, x, eps, norm, box_first=True):
    """Projects ``x_adv`` onto the ``eps`` ball around ``x`` and onto ``[0, 1]``.

    Linf: the exact projection onto the intersection. L2 with
    ``box_first=True`` (PGD, the order of cleverhans): clip to ``[0, 1]``, then
    scale the perturbation into the ball, so no budget is spent on clipped
    coordinates; with ``box_first=False`` (APGD, as fra31/auto-attack): scale
    into the ball, then clip to the box.

    Args:
        x_adv: candidate points ``(batch, ...)``.
        x: clean points ``(batch, ...)``.
        eps: budget (scalar).
        norm: ``"linf"`` or ``"l2"``.
        box_first: order of the L2 projection (see above).

    Returns:
        Projected points.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.norms import project

    project(np.full((1, 2), 0.9), np.full((1, 2), 0.5), 0.1, "linf")  # 0.6
    ```
    """
    if norm == "linf":
        x_adv = ops.clip(x_adv, x - eps, x + eps)
    else:
        delta = (ops.clip(x_adv, 0.0, 1.0) if box_first else x_adv) - x
        size = flat_norm(delta, "l2")
        factor = ops.minimum(1.0, ops.divide_no_nan(eps, size))
        x_adv = x + delta * expand_to(factor, x)
    return ops.clip(x_adv, 0.0, 1.0)


def steepest_direction(grad, norm, stabilizer=None):
    """Unit ascent direction: ``sign(grad)`` (Linf) or ``grad / ||grad||_2`` (L2).

    Args:
        grad: gradients ``(batch, ...)``.
        norm: ``"linf"`` or ``"l2"``.
        stabilizer: None (PGD: a zero gradient gives a zero step) or a small
            number added to the L2 norm (APGD: ``1e-12``, as the reference).

    Returns:
        Directions of ``grad``'s shape.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.norms import steepest_direction

    steepest_direction(np.array([[3.0, -4.0]], "float32"), "l2")  # [[0.6, -0.8]]
    ```
    """
    if norm == "linf":
        return ops.sign(grad)
    size = expand_to(flat_norm(grad, "l2"), grad)
    if stabilizer is None:
        return ops.divide_no_nan(grad, size)
    return grad / (size + stabilizer)


# ----------------------------------------------------------------------------
# NumPy (driver side)
# ----------------------------------------------------------------------------
def perturbation_norm(x_adv, x, norm):
    """Per-example numpy Linf / L2 distance (computed in float64)."""
    delta = (np.asarray(x_adv, "float64") - np.asarray(x, "float64")).reshape(
        x.shape[0], -1
    )
    if norm == "linf":
        return np.abs(delta).max(axis=1)
    return np.sqrt((delta**2).sum(axis=1))


def within_budget(x_adv, x, eps, norm, rtol=1e-5, atol=1e-6):
    """Per example: ``x_adv`` inside ``[0, 1]`` and within ``eps`` of ``x``.

    The budget test is ``distance <= eps * (1 + rtol) + atol`` (float32
    rounding of a projected point must not disqualify it); pass
    ``rtol=atol=0`` for the strict test.

    Args:
        x_adv: candidate points (numpy).
        x: clean points (numpy).
        eps: budget.
        norm: ``"linf"`` or ``"l2"``.
        rtol: relative slack on ``eps``.
        atol: absolute slack on ``eps``.

    Returns:
        ``(batch,)`` booleans.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.norms import within_budget

    x = np.full((2, 3), 0.5, "float32")
    within_budget(x + np.array([[0.1], [0.2]], "float32"), x, 0.1, "linf")
    # [True, False]
    ```
    """
    distance = perturbation_norm(x_adv, x, norm)
    flat = np.asarray(x_adv, "float64").reshape(x.shape[0], -1)
    return (
        (distance <= eps * (1 + rtol) + atol) & (flat.min(1) >= 0) & (flat.max(1) <= 1)
    )


def uniform_start(rng, x, eps, norm):
    """Random start uniform in the ``eps`` ball (numpy), clipped to ``[0, 1]``.

    Args:
        rng: ``numpy.random.Generator``.
        x: clean inputs (numpy float32).
        eps: budget.
        norm: ``"linf"`` (uniform per coordinate) or ``"l2"`` (uniform in the ball).

    Returns:
        float32 numpy starting points.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.norms import uniform_start

    start = uniform_start(np.random.default_rng(0), np.zeros((2, 4), "float32"), 0.1, "l2")
    ```
    """
    if norm == "linf":
        delta = rng.uniform(-eps, eps, size=x.shape)
    else:
        batch = x.shape[0]
        dims = int(np.prod(x.shape[1:]))
        direction = rng.standard_normal(size=(batch, dims))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True) + 1e-12
        radius = eps * rng.uniform(size=(batch, 1)) ** (1.0 / dims)
        delta = (direction * radius).reshape(x.shape)
    return np.clip(x + delta, 0.0, 1.0).astype("float32")


def random_start(rng, x, eps, norm, scale=1.0):
    """Random start on the ``scale * eps`` sphere (numpy), clipped to ``[0, 1]``.

    As in fra31/auto-attack (APGD, FAB restarts): Linf
    ``x + eps * t / max|t|`` with ``t ~ U(-1, 1)``; L2 ``x + eps * t / ||t||_2``
    with ``t ~ N(0, 1)``.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.norms import random_start

    start = random_start(np.random.default_rng(0), np.full((2, 4), 0.5, "float32"),
                         0.1, "linf")
    ```
    """
    batch = x.shape[0]
    if norm == "linf":
        t = rng.uniform(-1.0, 1.0, size=x.shape)
        size = np.abs(t.reshape(batch, -1)).max(axis=1)
    else:
        t = rng.standard_normal(size=x.shape)
        size = np.sqrt((t.reshape(batch, -1) ** 2).sum(axis=1))
    size = size.reshape((batch,) + (1,) * (x.ndim - 1)) + 1e-12
    start = x + scale * eps * t / size
    return np.clip(start, 0.0, 1.0).astype("float32")
