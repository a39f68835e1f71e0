"""Fast gradient sign method (Goodfellow et al., ICLR 2015).

One step of size ``eps`` along the sign of the input gradient (Linf), or along
the normalized gradient (L2, "fast gradient method"), from the clean input, no
random start; i.e. `pgd` with ``steps=1``, ``step_size=eps``,
``random_start=False``. Compiled through the same backend as `pgd`.

Paper: https://arxiv.org/abs/1412.6572
"""

import numpy as np

from specformer_keras.attacks.pgd import pgd


def fgsm(model, x, y, eps, norm="linf", loss="ce", targeted=False):
    """FGSM: ``clip(x + eps * sign(grad_x loss), 0, 1)``.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits ``(batch, classes)``.
        x: images ``(batch, ...)`` in ``[0, 1]`` (numpy or tensor).
        y: integer labels ``(batch,)``; the target classes when ``targeted``.
        eps: budget in pixel units, >= 0.
        norm: ``"linf"`` (sign step) or ``"l2"`` (normalized gradient step).
        loss: ``"ce"`` or ``"cw"``.
        targeted: step towards class ``y`` instead of away from it.

    Returns:
        Adversarial inputs of x's shape and dtype (numpy if x is numpy).

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.attacks import fgsm

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(0).uniform(size=(2, 4, 4, 1)).astype("float32")
    x_adv = fgsm(model, x, np.array([0, 1]), eps=8 / 255)
    ```
    """
    # eps itself is checked by `pgd`; a zero (or invalid) eps gets a dummy step.
    step_size = float(eps) if _is_positive_number(eps) else 1.0
    return pgd(
        model,
        x,
        y,
        eps,
        step_size=step_size,
        steps=1,
        norm=norm,
        loss=loss,
        random_start=False,
        targeted=targeted,
    )


def _is_positive_number(value):
    try:
        return bool(np.isfinite(value) and value > 0) and not isinstance(value, bool)
    except (TypeError, ValueError):
        return False
