"""Per-head spectral norms of attention projections, with `keras.ops` only.

A projection kernel of `keras.layers.MultiHeadAttention` has shape
`(d_model, num_heads, head_dim)`; head `h` uses the matrix `W_h = kernel[:, h, :]`
of shape `(d_model, head_dim)`. Power iteration estimates the largest singular
value of every `W_h` at once (heads are a batch axis, no Python loop over heads):

    v_h <- normalize(W_h^T u_h)
    u_h <- normalize(W_h v_h)
    sigma_h = u_h^T W_h v_h

Example:

```python
import numpy as np
from specformer_keras.spectral import (
    exact_spectral_norms,
    power_iteration,
    spectral_norm_estimate,
)

kernel = np.random.default_rng(0).normal(size=(16, 2, 8)).astype("float32")
u = np.ones((2, 16), "float32") / 4.0
for _ in range(50):
    u, v = power_iteration(kernel, u, iterations=1)
sigma = spectral_norm_estimate(kernel, u, v)
np.testing.assert_allclose(sigma, exact_spectral_norms(kernel), rtol=1e-3)
```
"""

import warnings

import numpy as np
from keras import ops

from specformer_keras.utils.validation import check_int

_EPS = 1e-12


def l2_normalize(x):
    """L2-normalizes the last axis of `x` (heads stay a batch axis).

    A small epsilon under the square root keeps an all-zero row finite (zero).

    Args:
        x: Tensor or array of shape `(..., n)`, e.g. `u` of shape
            `(num_heads, d_model)`.

    Returns:
        A tensor of the shape and dtype of `x` whose rows have unit L2 norm.

    Example:

    ```python
    import numpy as np
    from keras import ops
    from specformer_keras.spectral import l2_normalize

    u = l2_normalize(np.array([[3.0, 4.0], [0.0, 2.0]], "float32"))
    np.testing.assert_allclose(ops.convert_to_numpy(u), [[0.6, 0.8], [0.0, 1.0]])
    ```
    """
    # Tensor operators and rsqrt: fewer backend ops than ops.square/ops.sqrt
    # and a division, which eager torch pays for per op (docs/benchmarks.md).
    x = ops.convert_to_tensor(x)
    return x * ops.rsqrt(ops.sum(x * x, axis=-1, keepdims=True) + _EPS)


def _check_kernel(kernel):
    if len(kernel.shape) != 3:
        raise ValueError(
            "Expected an attention projection kernel of shape "
            "(d_model, num_heads, head_dim). "
            f"Received: kernel.shape={tuple(kernel.shape)}"
        )


def _heads_first(kernels):
    """Kernels `(d, num_heads_i, k)` -> one tensor `(sum_i num_heads_i, d, k)`."""
    kernels = [ops.transpose(kernel, (1, 0, 2)) for kernel in kernels]
    return kernels[0] if len(kernels) == 1 else ops.concatenate(kernels, axis=0)


def _transposed_products(w, u):
    """`v_h = W_h^T u_h` for all heads: `w` `(H, d, k)`, `u` `(H, d)` -> `(H, k)`."""
    return (u[:, None, :] @ w)[:, 0, :]


def _products(w, v):
    """`W_h v_h` for all heads: `w` `(H, d, k)`, `v` `(H, k)` -> `(H, d)`.

    Written as `v_h^T W_h^T` (a row vector times a matrix): eager torch's
    batched matrix times column vector was twice as slow on CPU.
    """
    return (v[:, None, :] @ ops.transpose(w, (0, 2, 1)))[:, 0, :]


def power_iteration(kernel, u, iterations=1):
    """Runs power-iteration steps for every head of `kernel` at once.

    Args:
        kernel: Tensor of shape `(d_model, num_heads, head_dim)`.
        u: Left singular vector estimates, shape `(num_heads, d_model)`.
        iterations: Number of steps (Python int >= 1).

    Returns:
        A tuple `(u, v)` with shapes `(num_heads, d_model)` and
        `(num_heads, head_dim)`, detached from the graph (`stop_gradient`),
        in the dtype of `kernel`.

    Example:

    ```python
    import numpy as np
    from specformer_keras.spectral import power_iteration

    kernel = np.ones((4, 2, 3), "float32")
    u, v = power_iteration(kernel, np.ones((2, 4), "float32"))
    assert u.shape == (2, 4) and v.shape == (2, 3)
    ```
    """
    _check_kernel(kernel)
    w = ops.stop_gradient(_heads_first([ops.convert_to_tensor(kernel)]))
    u = ops.convert_to_tensor(u, dtype=w.dtype)
    v = None
    for _ in range(int(iterations)):
        v = l2_normalize(_transposed_products(w, u))  # W_h^T u_h: sum over d_model.
        u = l2_normalize(_products(w, v))  # W_h v_h: sum over head_dim.
    return ops.stop_gradient(u), ops.stop_gradient(v)


def stacked_power_iteration(kernels, us, iterations=1):
    """Power iteration and `sigma` for several kernels in one batched matmul.

    The kernels (e.g. the query, key and value projections of one attention
    layer) must share `d_model` and `head_dim`; their heads are stacked into
    one batch axis, so each step is one batched matrix-vector product each
    way for all of them instead of one per kernel (eager backends such as
    torch pay per op, not per flop). The result equals `power_iteration`
    followed by `spectral_norm_estimate` on each kernel separately. The last
    product `W_h v_h` is computed once with gradient and gives both the new
    `u_h` (normalized, detached) and `sigma_h = u_h^T W_h v_h`.

    Args:
        kernels: Non-empty sequence of tensors of shapes
            `(d_model, num_heads_i, head_dim)`.
        us: Sequence of the same length with the current `u` of each kernel,
            shapes `(num_heads_i, d_model)`.
        iterations: Number of steps (Python int >= 1).

    Returns:
        A tuple `(sigma, us, vs)`: `sigma` of shape `(sum_i num_heads_i,)`
        (kernel after kernel), differentiable in the kernels with gradient
        `u_h v_h^T`; `us` and `vs` lists of the new estimates per kernel,
        shapes `(num_heads_i, d_model)` and `(num_heads_i, head_dim)`, detached
        (`stop_gradient`).

    Raises:
        ValueError: If `kernels` is empty, the lengths differ, a kernel is not
            3-D, the kernels disagree in `d_model` or `head_dim`, or
            `iterations < 1`.
        TypeError: If `iterations` is not an integer.

    Example:

    ```python
    import numpy as np
    from specformer_keras.spectral import (
        power_iteration,
        spectral_norm_estimate,
        stacked_power_iteration,
    )

    rng = np.random.default_rng(0)
    kernels = [rng.normal(size=(8, h, 4)).astype("float32") for h in (2, 3)]
    us = [np.ones((h, 8), "float32") for h in (2, 3)]
    sigma, new_us, new_vs = stacked_power_iteration(kernels, us)
    u, v = power_iteration(kernels[1], us[1])
    np.testing.assert_allclose(new_us[1], u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        sigma[2:], spectral_norm_estimate(kernels[1], u, v), rtol=1e-5
    )
    ```
    """
    iterations = check_int("iterations", iterations)
    if len(kernels) == 0 or len(kernels) != len(us):
        raise ValueError(
            "`kernels` must be a non-empty sequence with one `u` per kernel. "
            f"Received: len(kernels)={len(kernels)}, len(us)={len(us)}"
        )
    for kernel in kernels:
        _check_kernel(kernel)
    shapes = [(k.shape[0], k.shape[2]) for k in kernels]
    if len(set(shapes)) != 1:
        raise ValueError(
            "Stacked kernels must share d_model and head_dim (shape[0] and "
            f"shape[2]). Received: kernel shapes {[tuple(k.shape) for k in kernels]}"
        )
    heads = [int(k.shape[1]) for k in kernels]
    # (sum of heads, d_model, head_dim); gradient flows back into each kernel.
    w = _heads_first([ops.convert_to_tensor(k) for k in kernels])
    fixed = ops.stop_gradient(w)
    us = [ops.convert_to_tensor(u, dtype=w.dtype) for u in us]
    u = us[0] if len(us) == 1 else ops.concatenate(us, axis=0)
    for _ in range(iterations - 1):
        u = l2_normalize(_products(fixed, l2_normalize(_transposed_products(fixed, u))))
    v = ops.stop_gradient(l2_normalize(_transposed_products(fixed, u)))
    w_v = _products(w, v)  # W_h v_h, differentiable in the kernels.
    u = ops.stop_gradient(l2_normalize(w_v))
    sigma = ops.sum(u * w_v, axis=-1)
    if len(heads) == 1:
        return sigma, [u], [v]
    ends = [int(end) for end in np.cumsum(heads)]
    starts = [0] + ends[:-1]
    # Slices, not ops.split: Keras's torch split with indices runs ~10 ops.
    return (
        sigma,
        [u[start:end] for start, end in zip(starts, ends)],
        [v[start:end] for start, end in zip(starts, ends)],
    )


def spectral_norm_estimate(kernel, u, v):
    """Returns `sigma_h = u_h^T W_h v_h` for every head, differentiable in `kernel`.

    Args:
        kernel: Tensor of shape `(d_model, num_heads, head_dim)`.
        u: Tensor of shape `(num_heads, d_model)` (treated as a constant).
        v: Tensor of shape `(num_heads, head_dim)` (treated as a constant).

    Returns:
        Tensor of shape `(num_heads,)`. Its gradient with respect to
        `kernel[:, h, :]` is `u_h v_h^T`.

    Example:

    ```python
    import numpy as np
    from specformer_keras.spectral import spectral_norm_estimate

    kernel = np.zeros((3, 1, 2), "float32")
    kernel[0, 0, 1] = 5.0
    u = np.array([[1.0, 0.0, 0.0]], "float32")
    v = np.array([[0.0, 1.0]], "float32")
    assert float(spectral_norm_estimate(kernel, u, v)[0]) == 5.0
    ```
    """
    _check_kernel(kernel)
    u = ops.stop_gradient(ops.convert_to_tensor(u, dtype=kernel.dtype))
    v = ops.stop_gradient(ops.convert_to_tensor(v, dtype=kernel.dtype))
    return ops.einsum("hd,dhk,hk->h", u, kernel, v)


def exact_spectral_norms(kernel):
    """Exact largest singular value of every head, by SVD (NumPy, float64).

    A head whose weights are not finite (a diverged run) gets NaN, with a
    `RuntimeWarning` saying that training diverged, instead of an error.

    Args:
        kernel: Array-like of shape `(d_model, num_heads, head_dim)`.

    Returns:
        NumPy array of shape `(num_heads,)`.

    Example:

    ```python
    import numpy as np
    from specformer_keras.spectral import exact_spectral_norms

    kernel = np.zeros((4, 2, 3), "float32")
    kernel[0, 0, 0], kernel[1, 1, 2] = 2.0, -3.0
    np.testing.assert_allclose(exact_spectral_norms(kernel), [2.0, 3.0])
    ```
    """
    kernel = np.asarray(ops.convert_to_numpy(kernel), dtype=np.float64)
    _check_kernel(kernel)
    per_head = np.transpose(kernel, (1, 0, 2))  # (num_heads, d_model, head_dim)
    # NaN/inf weights (a diverged run) give NaN for that head, never NumPy's
    # "SVD did not converge": callers report it and stop cleanly.
    finite = np.isfinite(per_head).all(axis=(1, 2))
    sigma = np.full(per_head.shape[0], np.nan)
    if finite.any():
        try:
            sigma[finite] = np.linalg.svd(per_head[finite], compute_uv=False)[:, 0]
        except np.linalg.LinAlgError:
            for h in np.flatnonzero(finite):
                try:
                    sigma[h] = np.linalg.svd(per_head[h], compute_uv=False)[0]
                except np.linalg.LinAlgError:
                    pass
    if not finite.all() or np.isnan(sigma).any():
        warnings.warn(
            "exact_spectral_norms: non-finite weights (NaN or inf) in "
            f"{int(np.isnan(sigma).sum())} of {len(sigma)} heads; their sigma is "
            "NaN. Training diverged: stop and restart from the last good "
            "checkpoint (e.g. with a lower learning rate).",
            RuntimeWarning,
            stacklevel=2,
        )
    return sigma
