"""FAB-T: the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020).

FAB is a minimal-norm attack: at each iteration it linearizes the decision
boundary between the true class ``y`` and a target class ``t`` at the current
iterate, projects both the iterate and the clean point onto that hyperplane
(inside the image box ``[0, 1]``), and takes a biased convex combination of the
two projections, with overshoot. When the iterate crosses the boundary, it
records the point if it is the closest found so far and moves back towards the
clean input. AutoAttack "standard" runs the targeted version on the 2nd..10th
most likely classes of the clean input (9 targets, 100 iterations, 1 restart,
``alpha_max=0.1``, ``eta=1.05``, ``beta=0.9``) and keeps a point only if it is
misclassified within the budget ``eps``.

Paper: https://arxiv.org/abs/1907.02044 (FAB), https://arxiv.org/abs/2003.01690
(AutoAttack). Reference implementation: fra31/auto-attack ``fab_base.py``.
"""

import numpy as np
from keras import ops

from specformer_keras.attacks.inputs import prepare_inputs, restore_type
from specformer_keras.attacks.losses import target_margin
from specformer_keras.attacks.norms import (
    expand_to,
    flat_norm,
    random_start,
    within_budget,
)
from specformer_keras.attacks.randomness import AttackDraws
from specformer_keras.attacks.runner import (
    RobustPoints,
    compile_body,
    predict_logits,
    run_padded,
    target_rounds,
)
from specformer_keras.utils.validation import check_int, check_number


def project_onto_boundary(points, w, b, norm="linf"):
    """Minimal-norm displacement onto a hyperplane, staying inside ``[0, 1]``.

    For each row solves ``min ||d||_p`` subject to ``<w, points + d> = b`` and
    ``0 <= points + d <= 1``. With ``h(lam) = sum_i a_i min(lam, q_i)`` the
    amount by which a displacement of "radius" ``lam`` moves ``<w, .>``
    towards the hyperplane (Linf: ``a = |w|``, ``q`` = distance to the box face
    in the useful direction; L2: ``a = w**2``, ``q`` = that distance over
    ``|w|``), the optimum is the ``lam`` with ``h(lam) = |<w, points> - b|``,
    found exactly from the sorted breakpoints ``q``. When the box makes the
    hyperplane unreachable, every coordinate goes to its box face (the point of
    the box closest to the hyperplane), as in the reference implementation.

    Args:
        points: ``(batch, n)`` points in ``[0, 1]``.
        w: ``(batch, n)`` hyperplane normals.
        b: ``(batch,)`` offsets.
        norm: ``"linf"`` or ``"l2"``.

    Returns:
        ``(batch, n)`` displacements ``d``.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.fab import project_onto_boundary

    t = np.array([[0.5, 0.5]], "float32")
    w = np.array([[1.0, 1.0]], "float32")
    d = project_onto_boundary(t, w, np.array([1.5], "float32"), "linf")
    # d == [[0.25, 0.25]]
    ```
    """
    points = ops.convert_to_tensor(points, "float32")
    w = ops.convert_to_tensor(w, "float32")
    b = ops.convert_to_tensor(b, "float32")
    gap = ops.sum(w * points, axis=1) - b
    # Orient w so that the hyperplane lies in the direction of decreasing <w, .>.
    orientation = ops.where(gap >= 0, 1.0, -1.0)
    w = w * orientation[:, None]
    target = ops.abs(gap)
    active = ops.cast(ops.abs(w) > 1e-12, "float32")
    # Distance to the box face in the useful direction.
    room = ops.where(w > 0, points, 1.0 - points)
    room = ops.maximum(room, 0.0) * active
    abs_w = ops.abs(w)
    if norm == "linf":
        weight = abs_w
        breakpoint_ = room
    else:
        weight = ops.square(w)
        breakpoint_ = ops.divide_no_nan(room, abs_w)
    weight = weight * active
    breakpoint_ = breakpoint_ * active

    order = ops.argsort(breakpoint_, axis=1)
    q_sorted = ops.take_along_axis(breakpoint_, order, axis=1)
    a_sorted = ops.take_along_axis(weight, order, axis=1)
    saturated_sum = ops.cumsum(a_sorted * q_sorted, axis=1)
    total_weight = ops.sum(weight, axis=1, keepdims=True)
    free_weight = total_weight - ops.cumsum(a_sorted, axis=1)
    h_at_breakpoints = saturated_sum + q_sorted * free_weight
    n = ops.shape(points)[1]
    below = ops.sum(ops.cast(h_at_breakpoints < target[:, None], "int32"), axis=1)
    reachable = below < n
    index = ops.clip(below - 1, 0, n - 1)[:, None]
    prev_saturated = ops.take_along_axis(saturated_sum, index, axis=1)[:, 0]
    prev_free = ops.take_along_axis(free_weight, index, axis=1)[:, 0]
    prev_saturated = ops.where(below == 0, 0.0, prev_saturated)
    prev_free = ops.where(below == 0, total_weight[:, 0], prev_free)
    lam = ops.divide_no_nan(target - prev_saturated, prev_free)
    lam = ops.maximum(lam, 0.0)[:, None]
    if norm == "linf":
        magnitude = ops.minimum(lam, room)
    else:
        magnitude = ops.minimum(lam * abs_w, room)
    magnitude = ops.where(reachable[:, None], magnitude, room)
    return -ops.sign(w) * magnitude * active


def fab_targeted_body(
    logits_fn,
    margin_grad_fn,
    x,
    y,
    y_target,
    x_start,
    steps,
    norm="linf",
    alpha_max=0.1,
    eta=1.05,
    beta=0.9,
):
    """One run of targeted FAB as a pure ``keras.ops`` loop (compilable).

    Args:
        logits_fn: ``x -> logits`` (model in inference mode).
        margin_grad_fn: ``(x, y, y_target) -> (z_t - z_y, d(z_t - z_y)/dx)``.
        x: clean inputs ``(batch, ...)`` in ``[0, 1]``, all correctly classified.
        y: int labels ``(batch,)``.
        y_target: int target classes ``(batch,)``.
        x_start: first iterate (``x``, or a random point for restarts).
        steps: iterations (100 in AutoAttack).
        norm: ``"linf"`` or ``"l2"``.
        alpha_max: largest weight of the clean-point projection (0.1).
        eta: overshoot factor of the projection step (1.05).
        beta: backward step towards x after a success (0.9).

    Returns:
        ``(x_adv, distance)``: the closest misclassified point found per
        example (x itself where none) and its distance (``inf`` where none).
    """
    batch = ops.shape(x)[0]
    x0 = ops.reshape(x, (batch, -1))
    y = ops.cast(y, "int32")

    def body(_, state):
        x1, best, best_dist = state
        diff, grad = margin_grad_fn(x1, y, y_target)
        w = ops.reshape(grad, (batch, -1))
        x1_flat = ops.reshape(x1, (batch, -1))
        b = ops.sum(w * x1_flat, axis=1) - diff
        both = project_onto_boundary(
            ops.concatenate([x1_flat, x0], axis=0),
            ops.concatenate([w, w], axis=0),
            ops.concatenate([b, b], axis=0),
            norm,
        )
        d1, d2 = both[:batch], both[batch:]
        size = ops.maximum(flat_norm(both, norm), 1e-8)
        a1, a2 = size[:batch], size[batch:]
        alpha = ops.clip(a1 / (a1 + a2), 0.0, alpha_max)[:, None]
        moved = (x1_flat + eta * d1) * (1.0 - alpha) + (x0 + eta * d2) * alpha
        moved = ops.clip(moved, 0.0, 1.0)
        new_x1 = ops.reshape(moved, ops.shape(x))
        pred = ops.cast(ops.argmax(logits_fn(new_x1), axis=-1), "int32")
        is_adv = pred != y
        dist = flat_norm(moved - x0, norm)
        better = ops.logical_and(is_adv, dist < best_dist)
        best = ops.where(expand_to(better, x), new_x1, best)
        best_dist = ops.where(better, dist, best_dist)
        pulled = ops.reshape(x0 + (moved - x0) * beta, ops.shape(x))
        new_x1 = ops.where(expand_to(is_adv, x), pulled, new_x1)
        return new_x1, best, best_dist

    init = (x_start, x, ops.full((batch,), np.inf, dtype="float32"))
    _, best, best_dist = ops.fori_loop(0, steps, body, init)
    return best, best_dist


def fab_targeted(
    model,
    x,
    y,
    eps,
    norm="linf",
    steps=100,
    n_target_classes=9,
    alpha_max=0.1,
    eta=1.05,
    beta=0.9,
    restarts=1,
    seed=None,
    example_ids=None,
):
    """FAB-T: targeted Fast Adaptive Boundary attack within a budget.

    For each target (the 2nd, 3rd, ... most likely class of the clean input,
    ``n_target_classes`` of them) runs ``steps`` FAB iterations on the points
    not yet broken, and keeps a point only if it is misclassified and within
    ``eps`` of ``x``; otherwise ``x`` is returned for it. AutoAttack
    "standard": ``steps=100``, ``n_target_classes=9``, ``restarts=1`` (no random
    start), ``alpha_max=0.1``, ``eta=1.05``, ``beta=0.9``. The model runs with
    ``training=False``; the whole iteration loop of each target is one compiled
    call.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits.
        x: images ``(batch, ...)`` in ``[0, 1]`` (numpy or tensor).
        y: integer labels ``(batch,)``.
        eps: budget (pixel units, e.g. ``8/255``).
        norm: ``"linf"`` or ``"l2"``.
        steps: FAB iterations per target (100).
        n_target_classes: targets tried (9; capped at ``classes - 1``).
        alpha_max: largest step towards the clean-point projection (0.1).
        eta: overshoot (1.05).
        beta: backward step after a success (0.9).
        restarts: runs per target; runs after the first start from a random
            point at half of ``min(eps, best distance)``, as in the reference.
        seed: seed of the random restarts.
        example_ids: the points' indices in the evaluated set (None:
            ``0 .. batch - 1``); a point's restart draws depend only on
            ``seed``, the target, the restart and its id.

    Returns:
        Adversarial inputs with the shape and dtype of ``x``.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.attacks import fab_targeted

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(0).uniform(size=(2, 4, 4, 1)).astype("float32")
    x_adv = fab_targeted(model, x, np.array([0, 1]), eps=0.1, steps=5,
                         n_target_classes=2)
    ```
    """
    x_np, y_np, dtype = prepare_inputs(model, x, y, eps, norm)
    steps = check_int("steps", steps)
    n_target_classes = check_int("n_target_classes", n_target_classes)
    restarts = check_int("restarts", restarts)
    alpha_max = check_number(
        "alpha_max", alpha_max, minimum=0.0, maximum=1.0, include_minimum=False
    )
    beta = check_number("beta", beta, minimum=0.0, maximum=1.0, include_minimum=False)
    eta = check_number("eta", eta, minimum=1.0)
    draws = AttackDraws("fab-t", seed, example_ids, x_np.shape[0])
    logits = predict_logits(model, x_np)
    ranking, rounds = target_rounds(logits, n_target_classes, restarts)

    def body(evaluate_fn, logits_fn, x, y, y_target, x_start):
        def margin_grad(x_adv, y, y_target):
            value, grad, _ = evaluate_fn(target_margin, x_adv, y, y_target)
            return value, grad

        return fab_targeted_body(
            logits_fn,
            margin_grad,
            x,
            y,
            y_target,
            x_start,
            steps,
            norm,
            alpha_max,
            eta,
            beta,
        )

    key = ("fab-t", norm, int(steps), float(alpha_max), float(eta), float(beta))
    run = compile_body(model, key, body)
    points = RobustPoints(x_np, logits.argmax(-1) == y_np)
    for (k, restart), index in points.batches(rounds=rounds):
        x_sub = x_np[index]
        if restart == 0:
            x_start = x_sub
        else:
            rng = draws.rng(index, k, restart)
            x_start = random_start(rng, x_sub, eps, norm, scale=0.5)
        arrays = [
            x_sub,
            y_np[index].astype("int32"),
            ranking[index, k].astype("int32"),
            x_start,
        ]
        best, _ = run_padded(run, arrays)
        wrong = predict_logits(model, best).argmax(-1) != y_np[index]
        # Strictly within eps (the box holds by construction).
        fooled = wrong & within_budget(best, x_sub, eps, norm, rtol=0.0, atol=0.0)
        points.record(index, fooled, best)
    return restore_type(points.result, x, dtype)
