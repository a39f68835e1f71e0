"""Square Attack (Andriushchenko et al., ECCV 2020), the gradient-free part of AutoAttack.

A random search that only queries the model's logits: start from vertical
stripes of ``+-eps`` and, at each query, change one random square window of the
current best perturbation to a random ``+-2 eps`` colour per channel (then clip
to the eps ball and ``[0, 1]``); keep the change when it lowers the margin
``z_y - max_{j != y} z_j`` or misclassifies the point. The window covers a
fraction ``p`` of the image, starting at ``p_init = 0.8`` and halved after
queries 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000. AutoAttack
"standard" uses 5000 queries, ``p_init=0.8``, 1 restart, the margin loss and
no rescaling of that schedule (``rescale_schedule=False``; with ``True`` the
query index is mapped to ``i * 10000 / n_queries`` first, the default of the
standalone Square Attack).

Points already misclassified stop changing. All random numbers are drawn up
front with numpy, per example (from ``seed``, the restart and the point's
``example_ids`` entry; see `specformer_keras.attacks.randomness`), so TF, JAX
and torch see the same ones and a point gets the same windows and colours in
any batch. fra31/auto-attack ``square.py`` draws one window position and colour
per query for the whole batch instead; the distribution of each point's search
is the same, but there a point's result depends on its batch.

Paper: https://arxiv.org/abs/1912.00049
"""

import numpy as np
from keras import ops

from specformer_keras.attacks.inputs import prepare_inputs, restore_type
from specformer_keras.attacks.losses import cw_margin_loss
from specformer_keras.attacks.norms import expand_to
from specformer_keras.attacks.randomness import AttackDraws
from specformer_keras.attacks.runner import (
    RobustPoints,
    compile_body,
    predict_labels,
    run_padded,
)
from specformer_keras.utils.validation import check_int, check_number

SCHEDULE_POINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def window_fraction(iteration, p_init=0.8, n_queries=5000, rescale_schedule=False):
    """The Square Attack's ``p`` (fraction of pixels changed) at a query.

    Args:
        iteration: 0-based query index.
        p_init: initial fraction (0.8).
        n_queries: total queries, used only when ``rescale_schedule``.
        rescale_schedule: map the index to ``iteration * 10000 / n_queries``.

    Returns:
        ``p_init / 2**k`` with ``k`` the number of schedule points
        (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000) below the index.

    Example:

    ```python
    from specformer_keras.attacks.square import window_fraction

    window_fraction(0), window_fraction(11), window_fraction(4999)  # 0.8, 0.4, 0.0125
    ```
    """
    if rescale_schedule:
        iteration = int(iteration / n_queries * 10000)
    halvings = sum(iteration > point for point in SCHEDULE_POINTS)
    return p_init / 2**halvings


def draw_square_randomness(rng, batch, shape, n_queries, p_init, rescale_schedule):
    """Random numbers of a Linf Square run (numpy), one set per example.

    Args:
        rng: `specformer_keras.attacks.randomness.ExampleRandom` of the batch
            (or a ``numpy.random.Generator``).
        batch: number of examples.
        shape: ``(height, width, channels)``.
        n_queries: number of queries.
        p_init: initial window fraction.
        rescale_schedule: see `window_fraction`.

    Returns:
        dict of arrays: ``stripes (batch, 1, width, channels)`` of ``+-1``,
        ``sizes (n_queries,)`` window side lengths (the same for every
        example), ``offsets (batch, n_queries, 2)`` window corners and
        ``colours (batch, n_queries, channels)`` of ``+-1``.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.randomness import ExampleRandom
    from specformer_keras.attacks.square import draw_square_randomness

    draws = draw_square_randomness(ExampleRandom(0, (5, 0), np.arange(2)), 2,
                                   (8, 8, 3), 10, 0.8, False)
    assert draws["offsets"].shape == (2, 10, 2)
    ```
    """
    height, width, channels = shape
    sizes = np.array(
        [
            max(
                int(
                    round(
                        np.sqrt(
                            window_fraction(i, p_init, n_queries, rescale_schedule)
                            * height
                            * width
                        )
                    )
                ),
                1,
            )
            for i in range(n_queries)
        ],
        "int32",
    )
    sizes = np.minimum(sizes, min(height, width))
    stripes = rng.choice([-1.0, 1.0], size=(batch, 1, width, channels))
    uniform = rng.uniform(size=(batch, n_queries, 2))
    offsets = np.stack(
        [
            np.floor(uniform[..., 0] * (height - sizes)),
            np.floor(uniform[..., 1] * (width - sizes)),
        ],
        axis=-1,
    ).astype("int32")
    colours = rng.choice([-1.0, 1.0], size=(batch, n_queries, channels))
    return {
        "stripes": stripes.astype("float32"),
        "sizes": sizes,
        "offsets": offsets,
        "colours": colours.astype("float32"),
    }


def margin(logits, y):
    """``z_y - max_{j != y} z_j`` per example (negative iff misclassified)."""
    return -cw_margin_loss(logits, y)


def square_linf_body(logits_fn, x, y, eps, stripes, sizes, offsets, colours):
    """One Linf Square Attack run as a pure ``keras.ops`` while loop.

    Args:
        logits_fn: ``x -> logits``.
        x: clean images ``(batch, height, width, channels)`` in ``[0, 1]``.
        y: int labels ``(batch,)``.
        eps: Linf budget.
        stripes, sizes, offsets, colours: from `draw_square_randomness`.

    Returns:
        ``(x_best, margin_best, queries_used)``.
    """
    y = ops.cast(y, "int32")
    height, width = ops.shape(x)[1], ops.shape(x)[2]
    rows = ops.reshape(ops.arange(height, dtype="int32"), (1, -1, 1, 1))
    cols = ops.reshape(ops.arange(width, dtype="int32"), (1, 1, -1, 1))
    n_queries = ops.shape(sizes)[0]
    x_best = ops.clip(x + eps * stripes, 0.0, 1.0)
    margin_best = margin(logits_fn(x_best), y)

    def cond(i, x_best, margin_best):
        return ops.logical_and(i < n_queries, ops.any(margin_best > 0))

    def body(i, x_best, margin_best):
        size = ops.take(sizes, i)
        corner = ops.take(offsets, i, axis=1)  # (batch, 2)
        top = ops.reshape(corner[:, 0], (-1, 1, 1, 1))
        left = ops.reshape(corner[:, 1], (-1, 1, 1, 1))
        window = ops.logical_and(
            ops.logical_and(rows >= top, rows < top + size),
            ops.logical_and(cols >= left, cols < left + size),
        )
        colour = ops.take(colours, i, axis=1)  # (batch, channels)
        colour = ops.reshape(colour, (-1, 1, 1, ops.shape(x)[3]))
        change = 2.0 * eps * ops.cast(window, x.dtype) * colour
        x_new = ops.clip(ops.clip(x_best + change, x - eps, x + eps), 0.0, 1.0)
        new_margin = margin(logits_fn(x_new), y)
        # Margin loss: the loss is the margin itself; accept lower or fooled.
        accept = ops.logical_and(
            margin_best > 0,
            ops.logical_or(new_margin < margin_best, new_margin <= 0),
        )
        x_best = ops.where(expand_to(accept, x), x_new, x_best)
        margin_best = ops.where(accept, new_margin, margin_best)
        return i + 1, x_best, margin_best

    i, x_best, margin_best = ops.while_loop(
        cond, body, (ops.convert_to_tensor(0, "int32"), x_best, margin_best)
    )
    return x_best, margin_best, i


def square(
    model,
    x,
    y,
    eps,
    norm="linf",
    n_queries=5000,
    p_init=0.8,
    restarts=1,
    seed=None,
    rescale_schedule=False,
    example_ids=None,
):
    """Square Attack: gradient-free random search on the margin loss.

    AutoAttack "standard": ``n_queries=5000``, ``p_init=0.8``, ``restarts=1``,
    margin loss, ``rescale_schedule=False`` (see the module docstring). Each
    restart runs only on the points not yet misclassified, as one compiled
    while loop that stops early when every point is misclassified. Only the
    logits are used (no gradients). Only ``norm="linf"`` is implemented; the L2
    version raises `NotImplementedError`.

    Args:
        model: Keras model mapping images ``(batch, height, width, channels)``
            in ``[0, 1]`` to logits.
        x: images in ``[0, 1]``.
        y: integer labels ``(batch,)``.
        eps: Linf budget.
        norm: ``"linf"`` (``"l2"`` is not implemented).
        n_queries: queries per restart.
        p_init: initial fraction of pixels in the square window.
        restarts: restarts.
        seed: seed of all random draws (None: fresh randomness).
        rescale_schedule: rescale the ``p`` schedule to ``n_queries``.
        example_ids: the points' indices in the evaluated set (None:
            ``0 .. batch - 1``); a point's draws depend only on ``seed``, the
            restart and its id.

    Returns:
        Inputs of x's shape and dtype: the misclassified point found, else x.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.attacks import square

    model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D()])
    x = np.full((3, 6, 6, 3), 0.5, "float32")
    x_adv = square(model, x, np.array([0, 1, 2]), eps=8 / 255, n_queries=20, seed=0)
    ```
    """
    x_np, y_np, dtype = prepare_inputs(model, x, y, eps, norm)
    if norm != "linf":
        raise NotImplementedError(
            "Square Attack is implemented for norm='linf' only; the L2 version "
            f"(windows of eta(s) patterns) is not written yet. Received: norm={norm!r}"
        )
    if x_np.ndim != 4:
        raise ValueError(
            "Square Attack needs images of shape (batch, height, width, channels). "
            f"Received: x.shape={x_np.shape}"
        )
    n_queries = check_int("n_queries", n_queries)
    restarts = check_int("restarts", restarts)
    p_init = check_number(
        "p_init", p_init, minimum=0.0, maximum=1.0, include_minimum=False
    )
    attack_draws = AttackDraws("square", seed, example_ids, x_np.shape[0])

    def body(evaluate_fn, logits_fn, x, y, stripes, offsets, colours, sizes):
        return square_linf_body(logits_fn, x, y, eps, stripes, sizes, offsets, colours)

    run = compile_body(model, ("square", "per-example", float(eps)), body)
    points = RobustPoints(x_np, predict_labels(model, x_np) == y_np)
    for restart, index in points.batches(rounds=range(restarts)):
        draws = draw_square_randomness(
            attack_draws.rng(index, restart),
            index.size,
            x_np.shape[1:],
            n_queries,
            p_init,
            rescale_schedule,
        )
        batched = [x_np[index], y_np[index].astype("int32"), draws["stripes"]]
        batched += [draws["offsets"], draws["colours"]]
        best, best_margin, _ = run_padded(run, batched, [draws["sizes"]])
        fooled = best_margin <= 0
        fooled &= predict_labels(model, best) != y_np[index]
        points.record(index, fooled, best)
    return restore_type(points.result, x, dtype)
