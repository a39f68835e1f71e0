"""Running compiled attack loops on the points that are still robust.

Every attack with restarts, targets or components (PGD restarts, APGD,
APGD-T, FAB-T, Square, AutoAttack) follows one loop, written here once:

1. `RobustPoints` holds the points still to break and what was found so far;
2. `RobustPoints.batches` yields, per round (restart, target, ...), the
   indices of the points still robust, and stops once none is left;
3. `run_padded` calls a compiled body (`compile_body`) on those points,
   padded to `bucket_size` rows so that a shrinking set retraces only a few
   times, and trims the outputs;
4. `RobustPoints.record` keeps the points the round broke (and, for attacks
   that return their best point, the highest-loss point of the others).

Example:

```python
import numpy as np
from specformer_keras.attacks.runner import RobustPoints

x = np.zeros((3, 2), "float32")
points = RobustPoints(x, robust=np.array([True, False, True]))
for _, index in points.batches(rounds=range(2)):
    fooled = np.array([True] * index.size)
    points.record(index, fooled, x[index] + 0.1)
assert not points.robust.any() and points.result[1].max() == 0.0
```
"""

import numpy as np
from keras import ops

from specformer_keras.backend import backend_module

__all__ = [
    "RobustPoints",
    "bucket_size",
    "compile_body",
    "pad_rows",
    "predict_labels",
    "predict_logits",
    "run_padded",
    "target_rounds",
]


def bucket_size(n):
    """Batch size a set of ``n`` points is padded to before a compiled call.

    Rounds ``n`` up to a multiple of a quarter of its octave (at most 25%
    padding), so a shrinking set of still-robust points retraces only a few
    times per halving.

    Example:

    ```python
    from specformer_keras.attacks.runner import bucket_size

    [bucket_size(n) for n in (3, 9, 17, 100)]  # [3, 10, 20, 112]
    ```
    """
    if n <= 4:
        return n
    quantum = max(1, (1 << (n.bit_length() - 1)) // 4)
    return -(-n // quantum) * quantum


def pad_rows(array, size):
    """Repeat rows of ``array`` cyclically up to ``size`` rows."""
    n = array.shape[0]
    if n == size:
        return array
    index = np.arange(size) % n
    return array[index]


def compile_body(model, key, body):
    """Compiled runner of ``body(evaluate_fn, logits_fn, *tensors)``.

    ``evaluate_fn(loss_fn, x, *loss_args) -> (loss, d sum(loss) / dx, logits)``
    and ``logits_fn(x)`` run the model with ``training=False``; the whole body
    (its loops included) is one compiled program: TF
    ``tf.function(jit_compile=True)``, JAX ``jax.jit`` over
    ``stateless_call``, torch an eager loop with ``torch.autograd.grad`` on the
    input (see ``specformer_keras.backend.torch_attacks``). The backend module
    is chosen by ``specformer_keras.backend.backend_module("attacks")``.

    Args:
        model: Keras model returning logits.
        key: hashable description of the static settings ``body`` closes
            over (the cache key, per model).
        body: pure ``keras.ops`` function returning a tuple of tensors.

    Returns:
        A callable taking numpy arrays and returning a tuple of numpy arrays.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.attacks.runner import compile_body

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    run = compile_body(model, ("logits",), lambda evaluate_fn, logits_fn, x: (logits_fn(x),))
    (logits,) = run(np.zeros((1, 3), "float32"))
    ```
    """
    return backend_module("attacks").compile_body(model, key, body)


def run_padded(run, batched, unbatched=()):
    """``run(*padded batched, *unbatched)`` with outputs trimmed to the batch.

    Args:
        run: a compiled body from `compile_body`.
        batched: arrays with one row per point (the first one sets the batch
            ``n``); each is padded to ``bucket_size(n)`` rows, rounded up to a
            multiple of ``run.batch_multiple()`` where ``run`` has it (the
            devices a JAX runner splits the batch over); an array that already
            has that many rows is passed as is.
        unbatched: further arguments passed unchanged (scalars, schedules).

    Returns:
        Tuple of numpy outputs, each cut to its first ``n`` rows (0-d outputs
        as they are).
    """
    n = batched[0].shape[0]
    multiple = run.batch_multiple() if hasattr(run, "batch_multiple") else 1
    size = -(-bucket_size(n) // multiple) * multiple
    outputs = run(*[pad_rows(a, size) for a in batched], *unbatched)
    outputs = [np.asarray(o) for o in outputs]
    return tuple(o if o.ndim == 0 else o[:n] for o in outputs)


def predict_logits(model, x, batch_size=256):
    """Logits of the model in inference mode, as float32 numpy."""
    outputs = []
    for start in range(0, x.shape[0], batch_size):
        chunk = ops.convert_to_tensor(x[start : start + batch_size])
        outputs.append(np.asarray(ops.convert_to_numpy(model(chunk, training=False))))
    return np.concatenate(outputs, axis=0).astype("float32")


def predict_labels(model, x):
    """Predicted classes (numpy int64)."""
    return predict_logits(model, np.asarray(x, "float32")).argmax(axis=-1)


def target_rounds(logits, n_target_classes, restarts=1):
    """Targets of the targeted attacks (APGD-T, FAB-T) and their rounds.

    Args:
        logits: clean logits ``(batch, classes)`` (numpy).
        n_target_classes: number of targets, capped at ``classes - 1``.
        restarts: runs per target.

    Returns:
        ``(ranking, rounds)``: the classes of each point from most to least
        likely (``ranking[:, k]`` is the k-th target), and the list of
        ``(k, restart)`` for ``k = 1 .. n_target_classes``.

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.runner import target_rounds

    ranking, rounds = target_rounds(np.array([[0.1, 0.7, 0.2]]), 9)
    # ranking == [[1, 2, 0]], rounds == [(1, 0), (2, 0)]
    ```
    """
    ranking = np.argsort(-logits, axis=-1, kind="stable")
    targets = range(1, min(n_target_classes, logits.shape[-1] - 1) + 1)
    return ranking, [(k, restart) for k in targets for restart in range(restarts)]


class RobustPoints:
    """The points an attack has still to break, and the result so far.

    Args:
        x: clean points (numpy); ``result`` starts as a copy.
        robust: booleans, the points to attack (default: all).

    Attributes:
        result: per point the misclassified point found, else the point of
            highest loss recorded (else the clean point).
        robust: booleans, the points not yet broken.
    """

    def __init__(self, x, robust=None):
        self.result = x.copy()
        n = x.shape[0]
        self.robust = np.ones(n, bool) if robust is None else np.array(robust, bool)
        self._best_loss = np.full(n, -np.inf)

    def batches(self, rounds=(None,), batch_size=None):
        """Yields ``(round, index)``: the points still robust, round by round.

        The index set is taken at the start of each round (and cut into
        pieces of ``batch_size`` if given); iteration stops as soon as a round
        starts with no robust point.
        """
        for round_ in rounds:
            index = np.flatnonzero(self.robust)
            if index.size == 0:
                return
            step = index.size if batch_size is None else batch_size
            for first in range(0, index.size, step):
                yield round_, index[first : first + step]

    def record(self, index, fooled, x_fooled, loss=None, x_best=None):
        """Keeps what an attack found on the points ``index``.

        Args:
            index: indices of the points attacked.
            fooled: booleans per attacked point: broken.
            x_fooled: the points that broke them (rows of ``index``).
            loss: optional loss per attacked point; where the point was not
                broken and the loss beats every loss recorded so far, the
                result becomes ``x_best``.
            x_best: the highest-loss points (with ``loss``).

        Returns:
            The number of points broken.
        """
        if loss is not None:
            better = ~fooled & (loss > self._best_loss[index])
            self.result[index[better]] = x_best[better]
            self._best_loss[index[better]] = loss[better]
        self.result[index[fooled]] = x_fooled[fooled]
        self.robust[index[fooled]] = False
        return int(fooled.sum())
