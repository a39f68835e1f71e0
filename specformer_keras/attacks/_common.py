"""Shared plumbing of the AutoAttack components (APGD, FAB-T, Square).

Tensor helpers used inside the compiled loops, and the numpy-side driver:
input checks, running a compiled body on the points still robust (padded to a
power-of-two batch so a shrinking set of points retraces only a few times),
reproducible random starts, and the losses the components need beyond
`specformer_keras.attacks.losses`.
"""

import numpy as np
from keras import ops

from specformer_keras.backend import backend_module

NORMS = ("linf", "l2")


# ----------------------------------------------------------------------------
# Tensor helpers (inside compiled code)
# ----------------------------------------------------------------------------
def expand_to(values, reference):
    """Reshape ``(batch,)`` values to broadcast against ``reference``."""
    rank = len(ops.shape(reference))
    return ops.reshape(values, (-1,) + (1,) * (rank - 1))


def flat_norm(delta, norm):
    """Per-example Linf or L2 norm of ``delta``."""
    flat = ops.reshape(delta, (ops.shape(delta)[0], -1))
    if norm == "linf":
        return ops.max(ops.abs(flat), axis=1)
    return ops.sqrt(ops.sum(ops.square(flat), axis=1))


def sorted_logits(logits):
    """Logits sorted in decreasing order along the class axis."""
    return -ops.sort(-logits, axis=-1)


def dlr_loss(logits, y):
    """Untargeted DLR: ``-(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3)``."""
    logits = ops.convert_to_tensor(logits)  # numpy * torch.Tensor fails
    classes = ops.shape(logits)[-1]
    one_hot = ops.one_hot(ops.cast(y, "int32"), classes, dtype=logits.dtype)
    true_logit = ops.sum(logits * one_hot, axis=-1)
    other = ops.max(logits - one_hot * 1e9, axis=-1)
    ranked = sorted_logits(logits)
    return -(true_logit - other) / (ranked[:, 0] - ranked[:, 2] + 1e-12)


def targeted_dlr_loss(logits, y, y_target):
    """Targeted DLR: ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)``."""
    logits = ops.convert_to_tensor(logits)  # numpy * torch.Tensor fails
    classes = ops.shape(logits)[-1]
    true_logit = ops.sum(logits * ops.one_hot(ops.cast(y, "int32"), classes), axis=-1)
    target_logit = ops.sum(
        logits * ops.one_hot(ops.cast(y_target, "int32"), classes), axis=-1
    )
    ranked = sorted_logits(logits)
    scale = ranked[:, 0] - 0.5 * (ranked[:, 2] + ranked[:, 3]) + 1e-12
    return -(true_logit - target_logit) / scale


def cross_entropy_loss(logits, y):
    """Per-example cross-entropy of logits."""
    logits = ops.convert_to_tensor(logits)  # numpy * torch.Tensor fails
    log_probs = logits - ops.logsumexp(logits, axis=-1, keepdims=True)
    classes = ops.shape(logits)[-1]
    return -ops.sum(log_probs * ops.one_hot(ops.cast(y, "int32"), classes), axis=-1)


def target_margin(logits, y, y_target):
    """``z_t - z_y``: positive once the target beats the true class (FAB-T)."""
    logits = ops.convert_to_tensor(logits)  # numpy * torch.Tensor fails
    classes = ops.shape(logits)[-1]
    true_logit = ops.sum(logits * ops.one_hot(ops.cast(y, "int32"), classes), axis=-1)
    target_logit = ops.sum(
        logits * ops.one_hot(ops.cast(y_target, "int32"), classes), axis=-1
    )
    return target_logit - true_logit


# ----------------------------------------------------------------------------
# Numpy-side driver
# ----------------------------------------------------------------------------
def bucket_size(n):
    """Batch size a set of ``n`` points is padded to before a compiled call.

    Rounds ``n`` up to a multiple of a quarter of its octave (at most 25%
    padding), so a shrinking set of still-robust points retraces only a few
    times per halving.
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


def random_start(rng, x, eps, norm, scale=1.0):
    """Uniform start on the Linf sphere direction / Gaussian L2 direction.

    As in fra31/auto-attack: Linf ``x + eps * t / max|t|`` with ``t ~ U(-1, 1)``;
    L2 ``x + eps * t / ||t||_2`` with ``t ~ N(0, 1)``; clipped to ``[0, 1]``.
    """
    batch = x.shape[0]
    if norm == "linf":
        t = rng.uniform(-1.0, 1.0, size=x.shape)
        size = np.abs(t.reshape(batch, -1)).max(axis=1)
    else:
        t = rng.standard_normal(size=x.shape)
        size = np.sqrt((t.reshape(batch, -1) ** 2).sum(axis=1))
    size = size.reshape((batch,) + (1,) * (x.ndim - 1)) + 1e-12
    start = x + scale * eps * t / size
    return np.clip(start, 0.0, 1.0).astype("float32")


def perturbation_norm(x_adv, x, norm):
    """Per-example numpy Linf / L2 distance."""
    delta = (np.asarray(x_adv, "float64") - np.asarray(x, "float64")).reshape(
        x.shape[0], -1
    )
    if norm == "linf":
        return np.abs(delta).max(axis=1)
    return np.sqrt((delta**2).sum(axis=1))


def check_eps(eps):
    """Raises unless ``eps`` is a finite real number >= 0 (bools refused)."""
    if (
        isinstance(eps, bool)
        or not isinstance(eps, (int, float, np.floating, np.integer))
        or not np.isfinite(eps)
        or eps < 0
    ):
        raise ValueError(
            f"Argument `eps` must be a finite number >= 0. Received: eps={eps!r}"
        )
    return eps


def check_norm(norm):
    if norm not in NORMS:
        raise ValueError(
            f"Argument `norm` must be one of {NORMS}. Received: norm={norm!r}"
        )
    return norm


def check_positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"Argument `{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    if value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_fraction(name, value, low=0.0, high=1.0, include_low=False):
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok:
        ok = (value >= low if include_low else value > low) and value <= high
    if not ok:
        bracket = "[" if include_low else "("
        raise ValueError(
            f"Argument `{name}` must be a number in {bracket}{low}, {high}]. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_seed(seed):
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(
            f"Argument `seed` must be None or a non-negative integer. "
            f"Received: seed={seed!r}"
        )
    return seed


def to_numpy(value):
    """numpy view of a numpy array, list or backend tensor."""
    if isinstance(value, np.ndarray):
        return value
    return np.asarray(ops.convert_to_numpy(value))


def prepare_inputs(model, x, y, eps):
    """Checks the common arguments; returns float32 x, int labels and x's dtype."""
    if not callable(model):
        raise TypeError(
            "Argument `model` must be a callable Keras model returning logits. "
            f"Received: model={model!r}"
        )
    x_np = to_numpy(x)
    dtype = x_np.dtype
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(
            "Argument `x` must hold floating point images in [0, 1]. "
            f"Received: x.dtype={dtype}"
        )
    x_np = x_np.astype("float32")
    if x_np.ndim < 2 or x_np.shape[0] == 0:
        raise ValueError(
            "Argument `x` must be a non-empty batch (batch, ...). "
            f"Received: x.shape={x_np.shape}"
        )
    if not np.all(np.isfinite(x_np)) or x_np.min() < 0.0 or x_np.max() > 1.0:
        raise ValueError(
            "Argument `x` must lie in [0, 1] (attacks work in pixel units; "
            "normalize inside the model). "
            f"Received: x with min={x_np.min()} and max={x_np.max()}"
        )
    y_np = to_numpy(y)
    if y_np.ndim != 1 or y_np.shape[0] != x_np.shape[0]:
        raise ValueError(
            "Argument `y` must hold one integer label per example of `x` "
            f"(shape ({x_np.shape[0]},)). Received: y.shape={y_np.shape}"
        )
    if not np.issubdtype(y_np.dtype, np.integer):
        if np.issubdtype(y_np.dtype, np.floating) and np.all(y_np == np.round(y_np)):
            y_np = y_np.astype("int64")
        else:
            raise TypeError(
                f"Argument `y` must hold integer class labels. Received: y.dtype={y_np.dtype}"
            )
    check_eps(eps)
    logits = predict_logits(model, x_np[:1])
    if logits.ndim != 2:
        raise ValueError(
            "Argument `model` must return logits of shape (batch, classes). "
            f"Received: model output shape={logits.shape}"
        )
    classes = logits.shape[1]
    if y_np.min() < 0 or y_np.max() >= classes:
        raise ValueError(
            f"Argument `y` must hold labels in [0, {classes - 1}] for a model "
            f"with {classes} classes. Received: y with min={y_np.min()} and "
            f"max={y_np.max()}"
        )
    return x_np, y_np.astype("int64"), dtype


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


def restore_type(result, original, dtype):
    """Returns ``result`` as numpy of ``dtype``, or a tensor if x was one."""
    result = result.astype(dtype)
    if isinstance(original, np.ndarray):
        return result
    return ops.convert_to_tensor(result)


def compile_body(model, key, body):
    """Compiled runner of ``body(evaluate_fn, logits_fn, *tensors)``.

    ``evaluate_fn(loss_fn, x, *loss_args) -> (loss, d sum(loss) / dx, logits)``
    and ``logits_fn(x)`` run the model with ``training=False``; the whole body
    (its loops included) is one compiled program: TF
    ``tf.function(jit_compile=True)``, JAX ``jax.jit`` over
    ``stateless_call``, torch an eager loop with ``torch.autograd.grad`` on the
    input (see ``specformer_keras.backend.torch_attacks``). The backend module
    is chosen by ``specformer_keras.backend.backend_module("attacks")``.
    Returns a callable taking numpy arrays and returning numpy arrays.
    """
    return backend_module("attacks").compile_body(model, key, body)
