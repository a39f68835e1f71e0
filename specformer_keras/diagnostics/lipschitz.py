"""Local Lipschitz constants of a model and of its attention layers, with the theory bound.

The local Lipschitz constant of ``f`` at ``x`` is the spectral norm of its
Jacobian, ``||J_f(x)||_2 = max_v ||J v|| / ||v||`` (Euclidean norms over all
axes of one example: pixels for images, all tokens and channels for a token
matrix, so ``||.||_F`` of an ``N x D`` token matrix). It is estimated per
example by power iteration on ``J^T J`` with Jacobian-vector and
vector-Jacobian products (``specformer_keras.backend``, one module per
backend): ``v <- J^T J v / ||J^T J v||``, estimate ``||J v||`` for the unit
``v``. Every estimate is a lower bound of the true local constant that rises
to it as the iteration converges (the gap shrinks like
``(sigma_2 / sigma_1)^(2k)``).

Functions are evaluated per example: ``fn`` must map a batch to a batch with
each output row depending only on its own input row (true for a model in
inference mode, ``training=False``).

`lipschitz_report` also estimates each self-attention layer and puts the
bound of `specformer_keras.diagnostics.attention` next to it.

Example:

```python
import numpy as np
from specformer_keras import SpectralViT
from specformer_keras.diagnostics import lipschitz_report

model = SpectralViT(image_size=8, patch_size=4, num_classes=3, hidden_dim=16,
                    depth=2, num_heads=2, mlp_dim=16, seed=0)
x = np.random.default_rng(0).uniform(size=(4, 8, 8, 3)).astype("float32")
report = lipschitz_report(model, x, iterations=10)
report["model"]["median"]                  # whole model: pixels -> logits
layer = report["attention"]["encoder_block_0/attention"]
assert layer["estimate"]["max"] <= layer["bound"]["max"]
```
"""

import weakref

import keras
import numpy as np
from keras import ops

from specformer_keras.backend import backend_module
from specformer_keras.diagnostics.attention import (
    attention_bound,
    attention_layers,
    capture_layer_inputs,
)
from specformer_keras.utils.validation import check_int

_TINY = 1e-30
# One compiled Jacobian step per function, so estimating the same `fn` batch by
# batch compiles it once (entries go with the function).
_GRAM_STEPS = weakref.WeakKeyDictionary()


def _jacobian():
    return backend_module("jacobian")


def _per_example_norm(a):
    a = np.asarray(a, dtype=np.float64)
    return np.sqrt(np.sum(a.reshape(a.shape[0], -1) ** 2, axis=1))


def _normalized(a):
    norms = _per_example_norm(a)
    shape = (-1,) + (1,) * (a.ndim - 1)
    return (a / np.maximum(norms, _TINY).reshape(shape)).astype("float32")


def summarize(values):
    """``{"per_example": [...], "mean", "median", "max"}`` of per-example values.

    Args:
        values: Array-like of per-example numbers (flattened).

    Returns:
        A dict with the values as a list of floats under ``"per_example"`` and
        their ``"mean"``, ``"median"`` and ``"max"`` as floats.

    Raises:
        ValueError: If ``values`` is empty.

    Example:

    ```python
    from specformer_keras.diagnostics import summarize

    assert summarize([1.0, 2.0, 6.0])["median"] == 2.0
    ```
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("Cannot summarize an empty set of values. Received: values=[]")
    return {
        "per_example": [float(v) for v in values],
        "mean": float(np.mean(values)),
        "median": float(np.median(values)),
        "max": float(np.max(values)),
    }


def local_lipschitz(fn, x, iterations=20, seed=0, return_direction=False):
    """Per-example local Lipschitz constant ``||J_fn(x_i)||_2`` by power iteration.

    Args:
        fn: Callable mapping a batch (tensor of shape ``(batch, ...)``) to a
            batch, each output row depending only on its own input row, e.g.
            ``lambda x: model(x, training=False)``. Written in `keras.ops`
            (or any code the active backend can differentiate).
        x: Array of shape ``(batch, ...)``: the points at which to estimate.
        iterations: Power-iteration steps (int >= 1). Defaults to 20.
        seed: Seed of the random start directions. Defaults to 0.
        return_direction: Also return the unit input directions ``v`` (the
            estimated top right singular vectors, shape of ``x``).

    Returns:
        NumPy array ``(batch,)`` of estimates (each a lower bound of the true
        constant, tight at convergence), or ``(estimates, directions)``.

    Raises:
        ValueError: ``iterations`` is not a positive int, or ``x`` has no
            batch axis.

    Example:

    ```python
    import numpy as np
    from keras import ops
    from specformer_keras.diagnostics import local_lipschitz

    w = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    x = np.zeros((2, 5), "float32")
    sigma = local_lipschitz(lambda x: ops.matmul(x, w), x, iterations=100)
    np.testing.assert_allclose(sigma, np.linalg.svd(w)[1][0], rtol=1e-4)
    ```
    """
    check_int("iterations", iterations)
    x = np.asarray(ops.convert_to_numpy(x), dtype="float32")
    if x.ndim < 2:
        raise ValueError(
            "`x` must have a batch axis, shape (batch, ...). "
            f"Received: x.shape={x.shape}"
        )
    jac = _jacobian()
    step = _GRAM_STEPS.get(fn)
    if step is None:
        step = _GRAM_STEPS[fn] = jac.gram_fn(fn)
    return _power_iteration(step, jac, fn, x, iterations, seed, return_direction)


def _power_iteration(step, jac, fn, x, iterations, seed, return_direction):
    v = _normalized(np.random.default_rng(seed).normal(size=x.shape))
    xt = ops.convert_to_tensor(x)
    for _ in range(iterations):
        _, jtjv = step(xt, ops.convert_to_tensor(v))
        jtjv = ops.convert_to_numpy(jtjv)
        stuck = _per_example_norm(jtjv) <= _TINY
        v = np.where(stuck.reshape((-1,) + (1,) * (x.ndim - 1)), v, _normalized(jtjv))
    jv, _ = step(xt, ops.convert_to_tensor(v))
    sigma = _per_example_norm(ops.convert_to_numpy(jv))
    return (sigma, v) if return_direction else sigma


def _self_attention_fn(layer):
    def fn(tokens):
        return layer(tokens, tokens, training=False)

    return fn


def lipschitz_report(model, x, iterations=20, seed=0, batch_size=64, layers=None):
    """Local Lipschitz estimates of the whole model and of each attention layer, with bounds.

    Args:
        model: Keras model mapping inputs (e.g. images in [0, 1]) to logits.
        x: Points at which to estimate, shape ``(n, ...)``.
        iterations: Power-iteration steps per estimate. Defaults to 20.
        seed: Seed of the start directions. Defaults to 0.
        batch_size: Examples per Jacobian product. Defaults to 64.
        layers: Attention layers to diagnose (default: every
            `keras.layers.MultiHeadAttention` in ``model``); each must be used as
            self-attention (query = value = key).

    Returns:
        JSON-serializable dict: ``n``, ``iterations``, ``backend``, ``model``
        (``summarize`` of the per-example estimates of input -> logits) and
        ``attention`` ``{layer path: {"estimate": ..., "bound": ...,
        "tokens": N, "ratio_median": median(bound / estimate)}}``, the estimate
        for the layer's own input -> output map at the input it receives in
        the model.

    Raises:
        ValueError: bad ``iterations``/``batch_size``, or a layer not used as
            self-attention.

    Example:

    ```python
    import numpy as np
    from specformer_keras import SpectralViT
    from specformer_keras.diagnostics import lipschitz_report

    model = SpectralViT(image_size=8, patch_size=4, num_classes=3, hidden_dim=16,
                        depth=1, num_heads=2, mlp_dim=16, penalty=1e-2, seed=0)
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype("float32")
    report = lipschitz_report(model, x, iterations=5)
    sorted(report["attention"])   # ['encoder_block_0/attention']
    ```
    """
    check_int("iterations", iterations)
    check_int("batch_size", batch_size)
    x = np.asarray(ops.convert_to_numpy(x), dtype="float32")
    layers = attention_layers(model) if layers is None else list(layers)
    jac = _jacobian()

    def model_fn(inputs):
        return model(inputs, training=False)

    model_step = jac.gram_fn(model_fn)
    layer_steps = {
        layer.path: jac.gram_fn(_self_attention_fn(layer)) for layer in layers
    }
    model_values = []
    per_layer = {layer.path: {"estimate": [], "bound": []} for layer in layers}
    tokens = {}
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        batch_seed = seed + start
        model_values.append(
            _power_iteration(
                model_step, jac, model_fn, batch, iterations, batch_seed, False
            )
        )
        captured = capture_layer_inputs(model, batch, layers)
        for layer in layers:
            *args, same = captured[layer.path]
            if not same:
                raise ValueError(
                    "lipschitz_report diagnoses self-attention layers (query = value "
                    f"= key). Received: a layer called with distinct inputs: {layer.path}"
                )
            inputs = args[0].astype("float32")
            tokens[layer.path] = int(inputs.shape[1])
            fn = _self_attention_fn(layer)
            per_layer[layer.path]["estimate"].append(
                _power_iteration(
                    layer_steps[layer.path],
                    jac,
                    fn,
                    inputs,
                    iterations,
                    batch_seed,
                    False,
                )
            )
            per_layer[layer.path]["bound"].append(attention_bound(layer, inputs))
    attention = {}
    for path, values in per_layer.items():
        estimate = np.concatenate(values["estimate"])
        bound = np.concatenate(values["bound"])
        attention[path] = {
            "estimate": summarize(estimate),
            "bound": summarize(bound),
            "tokens": tokens[path],
            "ratio_median": float(np.median(bound / np.maximum(estimate, _TINY))),
        }
    return {
        "n": int(len(x)),
        "iterations": int(iterations),
        "seed": int(seed),
        "backend": keras.config.backend(),
        "model": summarize(np.concatenate(model_values)),
        "attention": attention,
    }
