"""Projected gradient descent (Madry et al., ICLR 2018), Linf and L2.

The whole iteration loop of one restart is a pure ``keras.ops``
``fori_loop`` (`pgd_body`), compiled once per (model, norm, loss, steps,
targeted) through the shared attack backend (TF ``tf.function(jit_compile=True)``
with a ``GradientTape``; JAX ``jax.jit`` over ``stateless_call`` with the
weights passed as arguments). ``eps`` and ``step_size`` are passed as tensors,
so new budgets do not recompile. The model always runs with ``training=False``.
The PyTorch backend is not supported yet.

Random starts are drawn with numpy from ``seed`` (uniform in the Linf ball as
in Madry et al.; uniform in the L2 ball), so a seed gives the same start on
TensorFlow and JAX.

Paper: https://arxiv.org/abs/1706.06083
"""

import numpy as np
from keras import ops

from specformer_keras.attacks import _common as common
from specformer_keras.attacks.losses import LOSSES, get_loss


def project(x_adv, x, eps, norm):
    """Projects ``x_adv`` onto the ``eps`` ball around ``x`` and onto ``[0, 1]``.

    Linf: the exact projection onto the intersection. L2: clip to ``[0, 1]``,
    then scale the perturbation into the ball (the order of cleverhans).

    Args:
        x_adv: candidate points ``(batch, ...)``.
        x: clean points ``(batch, ...)``.
        eps: budget (scalar).
        norm: ``"linf"`` or ``"l2"``.

    Returns:
        Projected points.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.pgd import project

    project(np.full((1, 2), 0.9), np.full((1, 2), 0.5), 0.1, "linf")  # 0.6
    ```
    """
    if norm == "linf":
        x_adv = ops.clip(x_adv, x - eps, x + eps)
    else:
        # Box first, then the ball (as cleverhans): the radial scaling keeps
        # the point in the box, and no budget is spent on clipped coordinates.
        delta = ops.clip(x_adv, 0.0, 1.0) - x
        size = common.flat_norm(delta, "l2")
        factor = ops.minimum(1.0, ops.divide_no_nan(eps, size))
        x_adv = x + delta * common.expand_to(factor, x)
    return ops.clip(x_adv, 0.0, 1.0)


def steepest_ascent_step(grad, norm):
    """Unit step direction: ``sign(grad)`` (Linf) or ``grad / ||grad||_2`` (L2)."""
    if norm == "linf":
        return ops.sign(grad)
    size = common.flat_norm(grad, "l2")
    return ops.divide_no_nan(grad, common.expand_to(size, grad))


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
        x_new = x_adv + step_size * steepest_ascent_step(grad, norm)
        return project(x_new, x, eps, norm)

    return ops.fori_loop(0, steps, step, x_init)


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
    from specformer_keras.attacks.pgd import uniform_start

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


def check_attack_settings(
    step_size, steps, norm, loss, restarts, random_start, targeted
):
    """Validates the PGD settings; returns ``(step_size, steps, restarts)``."""
    common.check_norm(norm)
    if loss not in LOSSES:
        raise ValueError(
            f"Argument `loss` must be one of {LOSSES}. Received: loss={loss!r}"
        )
    if (
        isinstance(step_size, bool)
        or not isinstance(step_size, (int, float, np.floating, np.integer))
        or not np.isfinite(step_size)
        or step_size <= 0
    ):
        raise ValueError(
            f"Argument `step_size` must be a finite number > 0. Received: step_size={step_size!r}"
        )
    steps = common.check_positive_int("steps", steps)
    restarts = common.check_positive_int("restarts", restarts)
    for name, value in (("random_start", random_start), ("targeted", targeted)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(
                f"Argument `{name}` must be True or False. Received: {name}={value!r}"
            )
    return float(step_size), steps, restarts


def run_pgd_once(model, x, y, x_init, eps, step_size, steps, norm, loss, targeted):
    """One compiled PGD run on numpy arrays.

    Returns:
        ``(x_adv, loss, success)`` as numpy: the last iterate, its loss (to
        maximize) and whether it is misclassified (untargeted) or classified
        as ``y`` (targeted).
    """
    n = x.shape[0]
    size = common.bucket_size(n)
    arrays = [common.pad_rows(a, size) for a in (x, y.astype("int32"), x_init)]
    arrays += [np.float32(eps), np.float32(step_size)]
    loss_fn = get_loss(loss, targeted)

    def body(evaluate_fn, logits_fn, x, y, x_init, eps, step_size):
        def evaluate(x_adv):
            return evaluate_fn(loss_fn, x_adv, y)

        x_adv = pgd_body(evaluate, x, x_init, eps, step_size, steps, norm)
        logits = logits_fn(x_adv)
        predicted = ops.cast(ops.argmax(logits, axis=-1), "int32")
        success = predicted == y if targeted else predicted != y
        return x_adv, loss_fn(logits, y), success

    key = ("pgd", norm, loss, int(steps), bool(targeted))
    x_adv, loss_value, success = common.compile_body(model, key, body)(*arrays)
    return x_adv[:n], loss_value[:n], success[:n]


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
    common.check_seed(seed)
    x_np, y_np, dtype = common.prepare_inputs(model, x, y, eps)
    rng = np.random.default_rng(seed)

    result = x_np.copy()
    best_loss = np.full(x_np.shape[0], -np.inf)
    pending = np.ones(x_np.shape[0], bool)
    for _ in range(restarts):
        index = np.flatnonzero(pending)
        if index.size == 0:
            break
        x_run = x_np[index]
        start = uniform_start(rng, x_run, eps, norm) if random_start else x_run
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
        better = success | (loss_value > best_loss[index])
        result[index[better]] = x_adv[better]
        best_loss[index[better]] = loss_value[better]
        pending[index[success]] = False
    return common.restore_type(result, x, dtype)
