"""Model checks run before any robustness number: `preflight`, `check_finite_logits`.

They refuse (`PreflightError`, a ``ValueError``) what would make every later
number silently wrong: non-finite logits, outputs that look like probabilities
and an input gradient that is zero for every point (gradient masking).
`evaluate_robustness` and the adversarial trainer's input checks call them.
"""

import numpy as np

from specformer_keras.attacks.inputs import prepare_inputs
from specformer_keras.attacks.losses import cross_entropy_loss
from specformer_keras.attacks.runner import predict_logits
from specformer_keras.backend import backend_module

# Non-negative output rows summing to 1 within this are taken for probabilities.
PROBABILITY_TOLERANCE = 1e-3


class PreflightError(ValueError):
    """The model cannot be evaluated (or trained) as given: no number would be right."""


def _preflight_body(evaluate_fn, logits_fn, x, y):
    loss, grad, logits = evaluate_fn(cross_entropy_loss, x, y)
    return loss, grad, logits


def preflight(model, x, y, logits=None, needs_gradient=True, context="evaluation"):
    """Checks ``model`` on one batch before any robustness number is computed.

    Refuses the three faults that make every later number silently wrong:

    * non-finite logits (NaN or inf weights, e.g. after a diverged training);
    * outputs that look like probabilities (every value >= 0 and every row
      summing to 1 within `PROBABILITY_TOLERANCE`): the attacks' losses expect
      logits, and on softmax outputs the cross-entropy saturates, so attacks
      stall and robust accuracy is inflated;
    * an input gradient of the cross-entropy that is zero (or missing) for
      every point of the batch: gradient masking (``stop_gradient``, rounding,
      a NumPy function inside the model). Gradient attacks would return their
      starting point and report the clean accuracy as robust.

    A zero gradient on only some points (a saturated loss) is reported as a
    warning.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits.
        x: one batch of images in ``[0, 1]`` (numpy or tensor).
        y: integer labels of the batch.
        logits: the model's clean logits on ``x`` if already computed.
        needs_gradient: if False (no gradient attack will run) an all-zero
            input gradient is a warning instead of an error.
        context: what is being checked, for the messages.

    Returns:
        ``{"points": n, "zero_gradient_points": k, "warnings": [str, ...]}``.

    Raises:
        PreflightError: (a ``ValueError``) for each fault above.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.evaluation import PreflightError, preflight

    x = np.random.default_rng(0).uniform(size=(4, 4)).astype("float32")
    y = np.arange(4) % 3
    logits_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert preflight(logits_model, x, y)["zero_gradient_points"] == 0
    softmax_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
    )
    try:
        preflight(softmax_model, x, y)
    except PreflightError as error:
        assert "probabilities" in str(error)
    ```
    """
    x_np, y_np, _ = prepare_inputs(model, x, y, 0.0)
    if logits is None:
        logits = predict_logits(model, x_np)
    logits = np.asarray(logits, "float32")
    check_finite_logits(logits, context)
    n = logits.shape[0]
    if (
        logits.shape[1] > 1
        and np.all(logits >= 0)
        and np.allclose(logits.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE)
    ):
        raise PreflightError(
            f"{context}: the model's outputs look like probabilities (all >= 0, "
            "every row sums to 1), but attacks and adversarial training need "
            "logits: on softmax outputs the loss saturates, attacks stall and "
            "robust accuracy is inflated. Remove the final softmax (e.g. "
            "`keras.layers.Dense(classes)` without activation, or rebuild the "
            "model up to the layer before the softmax). Received: outputs with "
            f"row sums in [{logits.sum(1).min():.6f}, {logits.sum(1).max():.6f}] "
            f"on {n} points"
        )
    run = backend_module("attacks").compile_body(
        model, ("preflight_input_gradient",), _preflight_body
    )
    _, grad, _ = run(x_np, y_np.astype("int32"))
    flat = np.asarray(grad, "float64").reshape(n, -1)
    if not np.all(np.isfinite(flat)):
        raise PreflightError(
            f"{context}: the input gradient of the cross-entropy is not finite "
            f"(NaN or inf) on {int((~np.isfinite(flat)).any(1).sum())} of {n} "
            "points of the first batch; attacks cannot follow it. "
            "Received: a model with non-finite input gradients"
        )
    zero = int(np.all(flat == 0.0, axis=1).sum())
    warnings = []
    masking = (
        "gradient masking: the model's output does not depend differentiably on "
        "its input (stop_gradient, rounding or quantization, a NumPy function, "
        "a saturated softmax)"
    )
    if zero == n:
        message = (
            f"{context}: the input gradient of the cross-entropy is exactly zero "
            f"(or missing) for all {n} points of the first batch: {masking}. "
            "Gradient attacks would return their starting point and report the "
            "clean accuracy as robust. Evaluate with a gradient-free attack "
            "(attacks=('clean', 'square')) or fix the model."
        )
        if needs_gradient:
            raise PreflightError(message + " Received: zero input gradient")
        warnings.append(message)
    elif zero:
        warnings.append(
            f"{context}: the input gradient is exactly zero for {zero} of {n} points "
            f"of the first batch (a saturated loss or {masking.split(': ')[0]}); "
            "gradient attacks cannot move those points from their start."
        )
    return {"points": int(n), "zero_gradient_points": zero, "warnings": warnings}


def check_finite_logits(logits, context="evaluation"):
    """Raises `PreflightError` if ``logits`` holds NaN or inf.

    Example:

    ```python
    import numpy as np
    from specformer_keras.evaluation import check_finite_logits

    check_finite_logits(np.zeros((2, 3)))
    ```
    """
    logits = np.asarray(logits)
    bad = ~np.isfinite(logits.reshape(logits.shape[0], -1)).all(axis=1)
    if bad.any():
        raise PreflightError(
            f"{context}: the model returned non-finite logits (NaN or inf) for "
            f"{int(bad.sum())} of {logits.shape[0]} points; its weights may have "
            "diverged (NaN loss in training) or the inputs are not what it was "
            "trained on. No accuracy would be meaningful (argmax of NaN is class 0). "
            "Received: non-finite model outputs"
        )
