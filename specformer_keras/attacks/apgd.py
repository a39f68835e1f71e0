"""APGD-CE and APGD-T: Auto-PGD (Croce & Hein, ICML 2020).

Auto-PGD is PGD with momentum and a step size that adapts itself: it starts at
``2 * eps``, and at checkpoints halves the step and restarts from the best
point found whenever the loss stopped improving. Hyperparameters of AutoAttack
"standard" (fra31/auto-attack ``autopgd_base.py``), all kept here:

* 100 iterations, 1 restart, uniform random start in the eps ball;
* momentum ``0.75`` (``1.0`` on the first step);
* checkpoints after ``p0 = 0.22 * steps`` iterations, the interval shrinking by
  ``0.03 * steps`` per checkpoint down to ``0.06 * steps``;
* at a checkpoint the step is halved (and the iterate restarts from the best
  point) if at most ``rho = 0.75`` of the steps since the last checkpoint
  increased the loss, or if the step was not halved at the previous
  checkpoint and the best loss has not improved since;
* APGD-CE maximizes cross-entropy; APGD-T maximizes the targeted DLR loss
  ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)`` against the 2nd..10th most
  likely classes of the clean input (9 targets, 100 iterations each).

One documented deviation: at the first checkpoint the reference counts the
first step as an increase by comparing with an unfilled (zero) history slot;
here it is compared with the loss at the starting point, as in the paper.

Paper: https://arxiv.org/abs/2003.01690
"""

import numpy as np
from keras import ops

from specformer_keras.attacks.inputs import prepare_inputs, restore_type
from specformer_keras.attacks.losses import LOSSES, check_loss
from specformer_keras.attacks.norms import (
    expand_to,
    project,
    random_start,
    steepest_direction,
)
from specformer_keras.attacks.randomness import AttackDraws
from specformer_keras.attacks.runner import (
    RobustPoints,
    compile_body,
    predict_labels,
    predict_logits,
    run_padded,
    target_rounds,
)
from specformer_keras.utils.validation import check_int

# Loss names (see `specformer_keras.attacks.losses.LOSSES`) `apgd` accepts.
ALLOWED_LOSSES = ("ce", "dlr")


def checkpoint_schedule(steps):
    """Iterations (0-based, inclusive) after which APGD checks its step size.

    Args:
        steps: number of iterations.

    Returns:
        Sorted list of iteration indices ``i`` such that the check runs after
        the update of iteration ``i``.

    Example:

    ```python
    from specformer_keras.attacks.apgd import checkpoint_schedule

    checkpoint_schedule(100)  # [21, 40, 56, 69, 79, 86, 92, 98]
    ```
    """
    first = max(int(0.22 * steps), 1)
    minimum = max(int(0.06 * steps), 1)
    decrease = max(int(0.03 * steps), 1)
    points, interval, position = [], first, -1
    while position + interval < steps:
        position += interval
        points.append(position)
        interval = max(interval - decrease, minimum)
    return points


def _project(x_adv, x, eps, norm):
    # Into the ball, then the box (as fra31/auto-attack).
    return project(x_adv, x, eps, norm, box_first=False)


def apgd_body(evaluate, x, y, x_init, eps, steps, norm="linf", rho=0.75):
    """One APGD run as a pure ``keras.ops`` loop (compilable).

    Args:
        evaluate: ``x_adv -> (loss (batch,), d loss / d x_adv, logits)``.
        x: clean inputs ``(batch, ...)`` in ``[0, 1]``.
        y: int labels ``(batch,)``.
        x_init: starting points (in the eps ball and ``[0, 1]``).
        eps: budget.
        steps: iterations (100 in AutoAttack).
        norm: ``"linf"`` or ``"l2"``.
        rho: fraction of increasing steps below which the step is halved.

    Returns:
        ``(x_adv, fooled, x_best, loss_best)``: the last misclassified point
        found (``x_init`` where none), whether one was found, the point of
        highest loss and that loss.
    """
    y = ops.cast(y, "int32")
    checkpoints = checkpoint_schedule(steps)
    is_checkpoint = np.zeros(steps, "bool")
    is_checkpoint[checkpoints] = True
    interval_len = np.zeros(steps, "float32")
    previous = -1
    for point in checkpoints:
        interval_len[point] = point - previous
        previous = point
    is_checkpoint = ops.convert_to_tensor(is_checkpoint)
    interval_len = ops.convert_to_tensor(interval_len)

    loss, grad, logits = evaluate(x_init)
    fooled = ops.argmax(logits, axis=-1) != y
    batch = ops.shape(x)[0]
    step_size = ops.full((batch,), 2.0 * eps, dtype="float32")
    state = {
        "x_adv": x_init,
        "x_old": x_init,
        "grad": grad,
        "loss_prev": loss,
        "increases": ops.zeros((batch,), "float32"),
        "x_best": x_init,
        "grad_best": grad,
        "loss_best": loss,
        "x_fooled": x_init,
        "fooled": fooled,
        "step_size": step_size,
        "best_at_check": loss,
        "reduced_at_check": ops.ones((batch,), "bool"),
    }

    def body(i, s):
        momentum = ops.where(i > 0, 0.75, 1.0)
        scale = expand_to(s["step_size"], x)
        z = _project(
            s["x_adv"] + scale * steepest_direction(s["grad"], norm, 1e-12),
            x,
            eps,
            norm,
        )
        previous_step = s["x_adv"] - s["x_old"]
        x_new = s["x_adv"] + (z - s["x_adv"]) * momentum
        x_new = _project(x_new + previous_step * (1.0 - momentum), x, eps, norm)

        loss, grad, logits = evaluate(x_new)
        wrong = ops.argmax(logits, axis=-1) != y
        x_fooled = ops.where(expand_to(wrong, x), x_new, s["x_fooled"])
        fooled = ops.logical_or(s["fooled"], wrong)
        increases = s["increases"] + ops.cast(loss > s["loss_prev"], "float32")
        improved = loss > s["loss_best"]
        x_best = ops.where(expand_to(improved, x), x_new, s["x_best"])
        grad_best = ops.where(expand_to(improved, x), grad, s["grad_best"])
        loss_best = ops.where(improved, loss, s["loss_best"])

        # Checkpoint: halve the step and restart from the best point if needed.
        check = ops.take(is_checkpoint, i)
        oscillating = increases <= ops.take(interval_len, i) * rho
        stalled = ops.logical_and(
            ops.logical_not(s["reduced_at_check"]), s["best_at_check"] >= loss_best
        )
        reduce = ops.logical_and(check, ops.logical_or(oscillating, stalled))
        step_size = ops.where(reduce, s["step_size"] / 2.0, s["step_size"])
        reduce_x = expand_to(reduce, x)
        return {
            "x_adv": ops.where(reduce_x, x_best, x_new),
            "x_old": s["x_adv"],
            "grad": ops.where(reduce_x, grad_best, grad),
            "loss_prev": loss,
            "increases": ops.where(check, 0.0, increases),
            "x_best": x_best,
            "grad_best": grad_best,
            "loss_best": loss_best,
            "x_fooled": x_fooled,
            "fooled": fooled,
            "step_size": step_size,
            "best_at_check": ops.where(check, loss_best, s["best_at_check"]),
            "reduced_at_check": ops.where(check, reduce, s["reduced_at_check"]),
        }

    s = ops.fori_loop(0, steps, body, state)
    return s["x_fooled"], s["fooled"], s["x_best"], s["loss_best"]


def _run_apgd_once(model, x, y, eps, norm, loss_name, steps, rng, y_target=None):
    """One compiled APGD run on numpy ``(x, y[, y_target])``; numpy results.

    ``rng`` (an `ExampleRandom` for the points of ``x``) draws the random start.
    """
    arrays = [x, y.astype("int32"), random_start(rng, x, eps, norm)]
    if y_target is not None:
        arrays.append(y_target.astype("int32"))
    loss_fn = LOSSES[loss_name]

    def body(evaluate_fn, logits_fn, x, y, x_init, *target):
        def evaluate(x_adv):
            return evaluate_fn(loss_fn, x_adv, y, *target)

        return apgd_body(evaluate, x, y, x_init, eps, steps, norm)

    key = ("apgd", loss_name, float(eps), norm, int(steps))
    return run_padded(compile_body(model, key, body), arrays)


def apgd(
    model,
    x,
    y,
    eps,
    norm="linf",
    loss="ce",
    steps=100,
    restarts=1,
    seed=None,
    example_ids=None,
):
    """APGD-CE / APGD-DLR: untargeted Auto-PGD (AutoAttack's first component).

    Hyperparameters as in AutoAttack "standard" (see the module docstring):
    ``steps=100``, ``restarts=1``, initial step ``2 * eps``, momentum 0.75,
    checkpoints ``p0=0.22`` shrinking by 0.03 to at least 0.06, ``rho=0.75``,
    restart from the best point. Each restart runs only on the points not yet
    misclassified, from a fresh random start. The model runs with
    ``training=False``; the whole loop of a restart is one compiled call.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits.
        x: images ``(batch, ...)`` in ``[0, 1]``.
        y: integer labels ``(batch,)``.
        eps: budget (pixel units, e.g. ``8/255``).
        norm: ``"linf"`` or ``"l2"``.
        loss: ``"ce"`` (cross-entropy) or ``"dlr"`` (difference of logits ratio).
        steps: iterations per restart.
        restarts: random restarts.
        seed: seed of the random starts (None: fresh randomness).
        example_ids: the points' indices in the evaluated set (None:
            ``0 .. batch - 1``); a point's random starts depend only on
            ``seed``, the restart and its id.

    Returns:
        Inputs of x's shape and dtype: per example the misclassified point
        found, else the point of highest loss over all restarts (both inside the
        eps ball and ``[0, 1]``).

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.attacks import apgd

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(0).uniform(size=(2, 4, 4, 1)).astype("float32")
    x_adv = apgd(model, x, np.array([0, 1]), eps=8 / 255, steps=5, seed=0)
    ```
    """
    x_np, y_np, dtype = prepare_inputs(model, x, y, eps, norm)
    check_loss(loss, ALLOWED_LOSSES)
    steps = check_int("steps", steps)
    restarts = check_int("restarts", restarts)
    draws = AttackDraws("apgd", seed, example_ids, x_np.shape[0])

    points = RobustPoints(x_np, predict_labels(model, x_np) == y_np)
    for restart, index in points.batches(rounds=range(restarts)):
        rng = draws.rng(index, restart)
        x_fooled, fooled, x_best, loss_best = _run_apgd_once(
            model, x_np[index], y_np[index], eps, norm, loss, steps, rng
        )
        points.record(index, fooled, x_fooled, loss=loss_best, x_best=x_best)
    return restore_type(points.result, x, dtype)


def apgd_targeted(
    model,
    x,
    y,
    eps,
    norm="linf",
    steps=100,
    n_target_classes=9,
    restarts=1,
    seed=None,
    example_ids=None,
):
    """APGD-T: Auto-PGD on the targeted DLR loss over the top classes.

    For ``k = 2 .. n_target_classes + 1`` the target is the k-th most likely
    class of the clean input; each target runs ``steps`` APGD iterations (and
    ``restarts`` restarts) on the points not yet misclassified, maximizing
    ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``. AutoAttack "standard":
    9 targets, 100 iterations, 1 restart, the APGD schedule of `apgd`. Needs at
    least 4 classes; the number of targets is capped at ``classes - 1``.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits.
        x: images ``(batch, ...)`` in ``[0, 1]``.
        y: integer labels ``(batch,)``.
        eps: budget.
        norm: ``"linf"`` or ``"l2"``.
        steps: iterations per target and restart.
        n_target_classes: number of targets (9).
        restarts: restarts per target.
        seed: seed of the random starts.
        example_ids: the points' indices in the evaluated set (None:
            ``0 .. batch - 1``); a point's random starts depend only on
            ``seed``, the target, the restart and its id.

    Returns:
        Inputs of x's shape and dtype: the misclassified point found, else x.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.attacks import apgd_targeted

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(5)])
    x = np.random.default_rng(0).uniform(size=(2, 4, 4, 1)).astype("float32")
    x_adv = apgd_targeted(model, x, np.array([0, 1]), eps=8 / 255, steps=5,
                          n_target_classes=2, seed=0)
    ```
    """
    x_np, y_np, dtype = prepare_inputs(model, x, y, eps, norm)
    steps = check_int("steps", steps)
    restarts = check_int("restarts", restarts)
    n_target_classes = check_int("n_target_classes", n_target_classes)
    draws = AttackDraws("apgd-t", seed, example_ids, x_np.shape[0])
    logits = predict_logits(model, x_np)
    classes = logits.shape[-1]
    if classes < 4:
        raise ValueError(
            "APGD-T's targeted DLR loss needs a model with at least 4 classes. "
            f"Received: model output with classes={classes}"
        )
    ranking, rounds = target_rounds(logits, n_target_classes, restarts)
    points = RobustPoints(x_np, logits.argmax(-1) == y_np)
    for (k, restart), index in points.batches(rounds=rounds):
        rng = draws.rng(index, k, restart)
        x_fooled, fooled, _, _ = _run_apgd_once(
            model,
            x_np[index],
            y_np[index],
            eps,
            norm,
            "dlr-targeted",
            steps,
            rng,
            y_target=ranking[index, k],
        )
        points.record(index, fooled, x_fooled)
    return restore_type(points.result, x, dtype)
