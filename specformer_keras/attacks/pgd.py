"""Projected gradient descent (Madry et al., ICLR 2018), Linf and L2.

The whole iteration loop of one restart is a pure ``keras.ops``
``fori_loop`` (`pgd_body`), compiled once per (model, norm, loss, steps,
targeted) through the shared attack backend (TF ``tf.function(jit_compile=True)``
with a ``GradientTape``; JAX ``jax.jit`` over ``stateless_call`` with the
weights passed as arguments). ``eps`` and ``step_size`` are passed as tensors,
so new budgets do not recompile. The model always runs with ``training=False``.
On PyTorch the loop runs eagerly with ``torch.autograd.grad`` on the input.

Random starts are drawn with numpy from ``seed`` (uniform in the Linf ball as
in Madry et al.; uniform in the L2 ball), per example (keyed by ``seed``, the
restart and the point's ``example_ids`` entry, see
`specformer_keras.attacks.randomness`), so a seed gives the same start on
every backend and in any batch.

Paper: https://arxiv.org/abs/1706.06083
"""

import numpy as np
from keras import ops

from specformer_keras.attacks.inputs import prepare_inputs, restore_type
from specformer_keras.attacks.losses import check_loss, get_loss
from specformer_keras.attacks.norms import (
    check_norm,
    project,
    steepest_direction,
    uniform_start,
)
from specformer_keras.attacks.randomness import AttackDraws
from specformer_keras.attacks.runner import RobustPoints, compile_body, run_padded
from specformer_keras.utils.validation import (
    check_bool,
    check_int,
    check_number,
)

# Loss names (see `specformer_keras.attacks.losses.LOSSES`) PGD accepts.
ALLOWED_LOSSES = ("ce", "cw")

__all__ = ["pgd", "pgd_body", "project", "run_pgd_once", "uniform_start"]


def pgd_body(evaluate, x, x_init, eps, step_size, steps, norm="linf"):
    """PGD iterations as a pure ``keras.ops`` loop (compilable, traceable).

    Each step: ``x_adv <- project(x_adv + step_size * direction(grad))``.
    Callable inside another traced function (e.g. a train step) with any
    ``evaluate`` that returns input gradients.

    Args:
        evaluate: ``x_adv -> (loss (batch,), d sum(loss) / d x_adv, logits)``,
            the loss being the one to maximize.
        x: clean inputs ``(batch, ...)`` in ``[0, 1]``.
        x_init: starting points inside the ball and ``[0, 1]``.
        eps: budget (scalar or scalar tensor).
        step_size: step per iteration (scalar or scalar tensor).
        steps: number of iterations (Python int).
        norm: ``"linf"`` or ``"l2"``.

    Returns:
        The last iterate ``x_adv`` (same shape as ``x``).

    Example:

    ```python
    import numpy as np
    from keras import ops
    from specformer_keras.attacks.pgd import pgd_body

    def evaluate(x_adv):  # loss = sum(x_adv): a gradient of ones
        return ops.sum(x_adv, axis=1), ops.ones_like(x_adv), None

    x = np.full((1, 3), 0.5, "float32")
    pgd_body(evaluate, x, x, 0.1, 0.05, 3)  # 0.6 everywhere
    ```
    """

    def step(_, x_adv):
        _, grad, _ = evaluate(x_adv)
        x_new = x_adv + step_size * steepest_direction(grad, norm)
        return project(x_new, x, eps, norm)

    return ops.fori_loop(0, steps, step, x_init)


def check_attack_settings(
    step_size, steps, norm, loss, restarts, random_start, targeted
):
    """Validates the PGD settings; returns ``(step_size, steps, restarts)``."""
    check_norm(norm)
    check_loss(loss, ALLOWED_LOSSES)
    step_size = check_number("step_size", step_size, minimum=0.0, include_minimum=False)
    steps = check_int("steps", steps)
    restarts = check_int("restarts", restarts)
    check_bool("random_start", random_start)
    check_bool("targeted", targeted)
    return step_size, steps, restarts


def run_pgd_once(model, x, y, x_init, eps, step_size, steps, norm, loss, targeted):
    """One compiled PGD run on numpy arrays.

    Returns:
        ``(x_adv, loss, success)`` as numpy: the last iterate, its loss (to
        maximize) and whether it is misclassified (untargeted) or classified
        as ``y`` (targeted).
    """
    loss_fn = get_loss(loss, targeted, allowed=ALLOWED_LOSSES)

    def body(evaluate_fn, logits_fn, x, y, x_init, eps, step_size):
        def evaluate(x_adv):
            return evaluate_fn(loss_fn, x_adv, y)

        x_adv = pgd_body(evaluate, x, x_init, eps, step_size, steps, norm)
        logits = logits_fn(x_adv)
        predicted = ops.cast(ops.argmax(logits, axis=-1), "int32")
        success = predicted == y if targeted else predicted != y
        return x_adv, loss_fn(logits, y), success

    key = ("pgd", norm, loss, int(steps), bool(targeted))
    run = compile_body(model, key, body)
    return run_padded(
        run,
        [x, y.astype("int32"), x_init],
        [np.float32(eps), np.float32(step_size)],
    )


def pgd(
    model,
    x,
    y,
    eps,
    step_size,
    steps,
    norm="linf",
    loss="ce",
    random_start=True,
    restarts=1,
    targeted=False,
    seed=None,
    example_ids=None,
):
    """PGD attack (Madry et al.): ``steps`` projected steepest-ascent steps.

    With ``restarts > 1``, each further restart (from a fresh random start)
    runs on the points not yet successfully attacked, and per point the result
    is a successful point if one was found, else the point of highest loss.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits ``(batch, classes)``.
        x: images ``(batch, ...)`` in ``[0, 1]`` (numpy or tensor).
        y: integer labels ``(batch,)``; the target classes when ``targeted``.
        eps: budget in pixel units (e.g. ``8/255``), >= 0.
        step_size: step per iteration (e.g. ``2/255``), > 0.
        steps: iterations, >= 1.
        norm: ``"linf"`` or ``"l2"``.
        loss: ``"ce"`` (cross-entropy) or ``"cw"`` (CW margin ``max_{j!=y} z_j - z_y``).
        random_start: start uniformly in the eps ball (else at ``x``).
        restarts: number of runs, >= 1.
        targeted: push towards class ``y`` instead of away from it.
        seed: non-negative int seed of the random starts; None for fresh randomness.
        example_ids: the points' indices in the evaluated set (distinct ints
            >= 0; None: ``0 .. batch - 1``). A point's random starts depend
            only on ``seed``, the restart and its id, not on its batch.

    Returns:
        Adversarial inputs of x's shape and dtype (numpy if x is numpy),
        inside the eps ball around x and inside ``[0, 1]``.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.attacks import pgd

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(0).uniform(size=(2, 4, 4, 1)).astype("float32")
    x_adv = pgd(model, x, np.array([0, 1]), eps=8 / 255, step_size=2 / 255,
                steps=5, seed=0)
    ```
    """
    step_size, steps, restarts = check_attack_settings(
        step_size, steps, norm, loss, restarts, random_start, targeted
    )
    x_np, y_np, dtype = prepare_inputs(model, x, y, eps)
    draws = AttackDraws("pgd", seed, example_ids, x_np.shape[0])

    points = RobustPoints(x_np)
    for restart, index in points.batches(rounds=range(restarts)):
        x_run = x_np[index]
        if random_start:
            rng = draws.rng(index, restart)
            start = uniform_start(rng, x_run, eps, norm)
        else:
            start = x_run
        x_adv, loss_value, success = run_pgd_once(
            model,
            x_run,
            y_np[index],
            start,
            eps,
            step_size,
            steps,
            norm,
            loss,
            targeted,
        )
        points.record(index, success, x_adv, loss=loss_value, x_best=x_adv)
    return restore_type(points.result, x, dtype)
