"""Loss terms of adversarial training (PGD-AT, TRADES), written with `keras.ops`.

PGD-AT (Madry et al., 2018) minimizes the cross-entropy of the adversarial
examples. TRADES (Zhang et al., 2019) minimizes

    CE(f(x), y) + beta * KL(softmax(f(x)) || softmax(f(x_adv)))

where `x_adv` maximizes the same KL term inside the eps-ball. Both add the
model's own `add_loss` terms (for a `SpectralViT`, the MSVP penalty).

Example:

```python
import numpy as np
from specformer_keras.training.objectives import trades_kl_divergence

logits = np.array([[2.0, 0.0, -1.0]], "float32")
kl = trades_kl_divergence(logits, logits)      # identical predictions: KL = 0
np.testing.assert_allclose(kl, [0.0], atol=1e-6)
```
"""

import keras
from keras import ops


def trades_kl_divergence(logits_clean, logits_adv):
    """Per-example `KL(softmax(logits_clean) || softmax(logits_adv))`.

    Args:
        logits_clean: Logits on the clean inputs, shape `(batch, classes)`.
        logits_adv: Logits on the adversarial inputs, same shape.

    Returns:
        A float tensor of shape `(batch,)`, summed over classes (TRADES'
        `KLDivLoss(reduction="sum") / batch_size` is the mean of this).

    Example:

    ```python
    import numpy as np
    from specformer_keras.training.objectives import trades_kl_divergence

    a = np.array([[1.0, 0.0]], "float32")
    b = np.array([[0.0, 1.0]], "float32")
    p = np.exp(a) / np.exp(a).sum()
    q = np.exp(b) / np.exp(b).sum()
    np.testing.assert_allclose(
        trades_kl_divergence(a, b), [(p * np.log(p / q)).sum()], rtol=1e-5
    )
    ```
    """
    logits_clean = ops.cast(logits_clean, "float32")
    logits_adv = ops.cast(logits_adv, "float32")
    log_p = ops.log_softmax(logits_clean, axis=-1)
    log_q = ops.log_softmax(logits_adv, axis=-1)
    return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)


def kl_from_probabilities(probabilities_clean, logits_adv):
    """Per-example `KL(p_clean || softmax(logits_adv))` with a fixed `p_clean`.

    The objective of TRADES' inner maximization: `p_clean` comes from the
    model in inference mode and is a constant while `x_adv` moves.

    Args:
        probabilities_clean: Clean class probabilities, `(batch, classes)`.
        logits_adv: Logits on the current adversarial inputs.

    Returns:
        A float tensor of shape `(batch,)`.

    Example:

    ```python
    import numpy as np
    from specformer_keras.training.objectives import kl_from_probabilities

    p = np.array([[0.5, 0.5]], "float32")
    np.testing.assert_allclose(kl_from_probabilities(p, np.zeros((1, 2))), [0.0],
                               atol=1e-6)
    ```
    """
    p = ops.cast(probabilities_clean, "float32")
    log_q = ops.log_softmax(ops.cast(logits_adv, "float32"), axis=-1)
    log_p = ops.log(ops.maximum(p, 1e-12))
    return ops.sum(p * (log_p - log_q), axis=-1)


def sparse_labels(y, num_classes=None):
    """Integer class labels from sparse or one-hot/soft targets.

    The attack of PGD-AT needs a class index per example: one-hot or soft
    targets (label smoothing, MixUp) are reduced with `argmax`.

    Args:
        y: Integer labels `(batch,)` / `(batch, 1)` or targets `(batch, classes)`.
        num_classes: Number of classes; when given, a `(batch, k)` target is
            treated as one-hot/soft only if `k == num_classes`.

    Returns:
        An `int32` tensor of shape `(batch,)`.

    Example:

    ```python
    import numpy as np
    from specformer_keras.training.objectives import sparse_labels

    from keras import ops

    assert ops.convert_to_numpy(sparse_labels(np.array([[0.1, 0.9]]), 2)) == [1]
    assert ops.convert_to_numpy(sparse_labels(np.array([[3]]), 10)) == [3]
    ```
    """
    y = ops.convert_to_tensor(y)
    if len(y.shape) == 2 and y.shape[-1] is not None and y.shape[-1] > 1:
        if num_classes is None or y.shape[-1] == num_classes:
            return ops.cast(ops.argmax(y, axis=-1), "int32")
    return ops.cast(ops.reshape(y, (-1,)), "int32")


@keras.saving.register_keras_serializable(package="specformer_keras")
class TradesKLDivergence(keras.losses.Loss):
    """TRADES' robust term `KL(softmax(clean) || softmax(adv))` as a Keras loss.

    Being a `keras.losses.Loss`, it gets Keras' reduction, sample weighting and
    the per-replica scaling under `tf.distribute` for free.

    Args:
        reduction: Keras loss reduction. Defaults to `"sum_over_batch_size"`
            (the mean over examples, as in TRADES).
        name: Loss name. Defaults to `"trades_kl_divergence"`.

    Call arguments:
        y_true: Clean logits (treated as the target distribution).
        y_pred: Adversarial logits.
        sample_weight: Optional per-example weights.

    Example:

    ```python
    import numpy as np
    from specformer_keras.training.objectives import TradesKLDivergence

    logits = np.random.rand(4, 3).astype("float32")
    assert float(TradesKLDivergence()(logits, logits)) < 1e-6
    ```
    """

    def __init__(self, reduction="sum_over_batch_size", name="trades_kl_divergence"):
        super().__init__(reduction=reduction, name=name, dtype="float32")

    def call(self, y_true, y_pred):
        return trades_kl_divergence(y_true, y_pred)
