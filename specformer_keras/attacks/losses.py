"""Per-example attack losses and the one table of their names.

Every loss maps logits ``(batch, classes)`` and integer labels to a
``(batch,)`` value that the attack maximizes:

| name | function | used by |
| --- | --- | --- |
| ``"ce"`` | `cross_entropy_loss` | FGSM, PGD, APGD-CE |
| ``"cw"`` | `cw_margin_loss` ``max_{j!=y} z_j - z_y`` | FGSM, PGD (CW-N) |
| ``"dlr"`` | `dlr_loss` | APGD-DLR |
| ``"dlr-targeted"`` | `targeted_dlr_loss` | APGD-T |
| ``"target-margin"`` | `target_margin` ``z_t - z_y`` | FAB-T |

Each attack declares the names it accepts (e.g. ``pgd.ALLOWED_LOSSES``) and
checks its ``loss`` argument with `check_loss`. Targeted PGD maximizes
``-loss(logits, y_target)`` (see `targeted`).

Example:

```python
import numpy as np
from specformer_keras.attacks.losses import cw_margin_loss, get_loss

cw_margin_loss(np.array([[2.0, 0.5, 1.0]]), np.array([0]))  # [-1.0]
dlr = get_loss("dlr", allowed=("ce", "dlr"))
```
"""

from keras import ops

from specformer_keras.utils.validation import check_choice


def _one_hot(logits, y):
    classes = ops.shape(logits)[-1]
    return ops.one_hot(ops.cast(y, "int32"), classes, dtype=logits.dtype)


def _logit_of(logits, y):
    """``z_y`` per example."""
    return ops.sum(logits * _one_hot(logits, y), axis=-1)


def _best_other_logit(logits, y):
    """``max_{j != y} z_j`` per example."""
    return ops.max(ops.where(_one_hot(logits, y) > 0, -1e9, logits), axis=-1)


def sorted_logits(logits):
    """Logits sorted in decreasing order along the class axis."""
    return -ops.sort(-logits, axis=-1)


def cross_entropy_loss(logits, y):
    """Per-example cross-entropy ``-log softmax(logits)_y``, shape ``(batch,)``.

    ``logits`` are ``(batch, classes)``, ``y`` integer labels ``(batch,)`` (as
    for every loss of the table above).

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.losses import cross_entropy_loss

    cross_entropy_loss(np.zeros((1, 4), "float32"), np.array([1]))  # [log 4]
    ```
    """
    # -log p_y = log(1 + sum_{j != y} exp(z_j - z_y)), with the y term left out of
    # the sum instead of subtracted: its gradient with respect to z_y is then
    # -sum_{j != y} p_j, computed as a sum of small numbers. The textbook
    # ``z - logsumexp(z)`` gives it as ``p_y - 1``, which float32 rounds to a
    # few multiples of 6e-8: on a confident point (1 - p_y ~ 1e-6) that flips the
    # signs of many input-gradient coordinates (on torch: tens per point) and
    # weakens FGSM/PGD/APGD-CE there. Correctly classified points (every margin
    # <= 0) use log1p, so a loss of 1e-9 is not rounded to 0; misclassified ones
    # shift by the largest margin (a constant of the function, stop_gradient) so
    # that exp cannot overflow. The unselected branch of `where` stays finite.
    logits = ops.cast(ops.convert_to_tensor(logits), "float32")
    mask = _one_hot(logits, y)
    others = 1.0 - mask
    margins = logits - ops.sum(logits * mask, axis=-1, keepdims=True)
    shift = ops.stop_gradient(ops.max(margins * others, axis=-1))  # >= 0
    below = ops.sum(others * ops.exp(ops.minimum(margins, 0.0)), axis=-1)
    above = ops.sum(others * ops.exp(margins - shift[:, None]), axis=-1)
    return ops.where(
        shift > 0,
        shift + ops.log(ops.exp(-shift) + above),
        ops.log1p(below),
    )


def cw_margin_loss(logits, y):
    """Carlini-Wagner margin ``max_{j != y} z_j - z_y`` per example.

    Positive exactly when the example is misclassified. No confidence clamp.

    Args:
        logits: ``(batch, classes)`` logits.
        y: integer labels ``(batch,)``.

    Returns:
        ``(batch,)`` margins.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.losses import cw_margin_loss

    cw_margin_loss(np.array([[2.0, 0.5, 1.0]]), np.array([2]))  # [1.0]
    ```
    """
    logits = ops.convert_to_tensor(logits)
    return _best_other_logit(logits, y) - _logit_of(logits, y)


def dlr_loss(logits, y):
    """Untargeted DLR: ``-(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3)``.

    Args:
        logits: ``(batch, classes)`` logits (at least 3 classes).
        y: integer labels ``(batch,)``.

    Returns:
        ``(batch,)`` losses, positive once the example is misclassified.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.losses import dlr_loss

    dlr_loss(np.array([[3.0, 1.0, 0.0]], "float32"), np.array([0]))  # [-2/3]
    ```
    """
    logits = ops.convert_to_tensor(logits)  # numpy * torch.Tensor fails
    ranked = sorted_logits(logits)
    margin = _logit_of(logits, y) - _best_other_logit(logits, y)
    return -margin / (ranked[:, 0] - ranked[:, 2] + 1e-12)


def targeted_dlr_loss(logits, y, y_target):
    """Targeted DLR: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``.

    Args:
        logits: ``(batch, classes)`` logits (at least 4 classes).
        y: integer labels ``(batch,)``.
        y_target: integer target classes ``(batch,)``.

    Returns:
        ``(batch,)`` losses, positive once the target beats the true class.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.losses import targeted_dlr_loss

    logits = np.array([[3.0, 2.0, 1.0, 0.0]], "float32")
    targeted_dlr_loss(logits, np.array([0]), np.array([1]))  # [-1/2.5]
    ```
    """
    logits = ops.convert_to_tensor(logits)  # numpy * torch.Tensor fails
    ranked = sorted_logits(logits)
    scale = ranked[:, 0] - 0.5 * (ranked[:, 2] + ranked[:, 3]) + 1e-12
    return -(_logit_of(logits, y) - _logit_of(logits, y_target)) / scale


def target_margin(logits, y, y_target):
    """``z_t - z_y``: positive once the target beats the true class (FAB-T).

    Args:
        logits: ``(batch, classes)`` logits.
        y: integer labels ``(batch,)``.
        y_target: integer target classes ``(batch,)``.

    Returns:
        ``(batch,)`` margins.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.losses import target_margin

    target_margin(np.array([[2.0, 0.5]], "float32"), np.array([0]), np.array([1]))
    # [-1.5]
    ```
    """
    logits = ops.convert_to_tensor(logits)  # numpy * torch.Tensor fails
    return _logit_of(logits, y_target) - _logit_of(logits, y)


__all__ = [
    "LOSSES",
    "check_loss",
    "cross_entropy_loss",
    "cw_margin_loss",
    "dlr_loss",
    "get_loss",
    "target_margin",
    "targeted",
    "targeted_dlr_loss",
]

# The one name table of the package's attack losses.
LOSSES = {
    "ce": cross_entropy_loss,
    "cw": cw_margin_loss,
    "dlr": dlr_loss,
    "dlr-targeted": targeted_dlr_loss,
    "target-margin": target_margin,
}


def targeted(loss_fn):
    """Targeted version of ``loss_fn``: ``-loss_fn(logits, y_target)``.

    Args:
        loss_fn: per-example untargeted loss ``(logits, y) -> (batch,)``.

    Returns:
        ``(logits, y_target) -> (batch,)``, largest when the target wins.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.losses import cw_margin_loss, targeted

    targeted(cw_margin_loss)(np.array([[2.0, 0.5, 1.0]]), np.array([0]))  # [1.0]
    ```
    """

    def targeted_loss(logits, y_target):
        return -loss_fn(logits, y_target)

    return targeted_loss


def check_loss(name, allowed):
    """Raises unless ``name`` is among the loss names an attack ``allowed``.

    Args:
        name: the ``loss`` argument received.
        allowed: tuple of names in `LOSSES` the attack accepts.

    Returns:
        ``name``.

    Raises:
        ValueError: "Argument `loss` must be one of (...). Received: loss=...".

    Example:

    ```python
    from specformer_keras.attacks.losses import check_loss

    check_loss("cw", ("ce", "cw"))  # "cw"
    ```
    """
    return check_choice("loss", name, allowed)


def get_loss(name, is_targeted=False, allowed=("ce", "cw")):
    """The per-example loss called ``name`` (see the module's table).

    Args:
        name: a name in ``allowed``.
        is_targeted: return the targeted version (see `targeted`).
        allowed: the names the caller accepts (PGD's ``("ce", "cw")`` by
            default).

    Returns:
        ``loss(logits, y, ...) -> (batch,)`` to maximize.

    Raises:
        ValueError: ``name`` is not in ``allowed``.

    Example:

    ```python
    from specformer_keras.attacks.losses import get_loss

    loss_fn = get_loss("cw", is_targeted=True)
    ```
    """
    loss_fn = LOSSES[check_loss(name, allowed)]
    return targeted(loss_fn) if is_targeted else loss_fn
