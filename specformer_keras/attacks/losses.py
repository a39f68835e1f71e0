"""Per-example attack losses: ``loss(logits, y) -> (batch,)``, to be maximized.

Untargeted attacks maximize ``loss(logits, y)``; targeted attacks maximize
``-loss(logits, y_target)`` (see `targeted`). Cross-entropy comes from the
shared AutoAttack helpers so every attack uses the same definition.

Example:

```python
import numpy as np
from specformer_keras.attacks.losses import cw_margin_loss

cw_margin_loss(np.array([[2.0, 0.5, 1.0]]), np.array([0]))  # [-1.0]
```
"""

from keras import ops

from specformer_keras.attacks._common import cross_entropy_loss

LOSSES = ("ce", "cw")


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
    classes = ops.shape(logits)[-1]
    one_hot = ops.one_hot(ops.cast(y, "int32"), classes, dtype=logits.dtype)
    true_logit = ops.sum(logits * one_hot, axis=-1)
    other = ops.max(ops.where(one_hot > 0, -1e9, logits), axis=-1)
    return other - true_logit


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


def get_loss(name, is_targeted=False):
    """The per-example loss called ``name`` (``"ce"`` or ``"cw"``).

    Args:
        name: ``"ce"`` (cross-entropy) or ``"cw"`` (CW margin).
        is_targeted: return the targeted version (see `targeted`).

    Returns:
        ``loss(logits, y) -> (batch,)`` to maximize.

    Example:

    ```python
    from specformer_keras.attacks.losses import get_loss

    loss_fn = get_loss("cw", is_targeted=True)
    ```
    """
    if name not in LOSSES:
        raise ValueError(
            f"Argument `loss` must be one of {LOSSES}. Received: loss={name!r}"
        )
    loss_fn = cross_entropy_loss if name == "ce" else cw_margin_loss
    return targeted(loss_fn) if is_targeted else loss_fn
