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
    return x / ops.sqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + _EPS)


def _check_kernel(kernel):
    if len(kernel.shape) != 3:
        raise ValueError(
            "Expected an attention projection kernel of shape "
            "(d_model, num_heads, head_dim). "
            f"Received: kernel.shape={tuple(kernel.shape)}"
        )


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
    w = ops.stop_gradient(ops.convert_to_tensor(kernel))
    u = ops.convert_to_tensor(u, dtype=w.dtype)
    v = None
    for _ in range(int(iterations)):
        # v_h = W_h^T u_h: sum over d_model.
        v = l2_normalize(ops.einsum("dhk,hd->hk", w, u))
        # u_h = W_h v_h: sum over head_dim.
        u = l2_normalize(ops.einsum("dhk,hk->hd", w, v))
    return ops.stop_gradient(u), ops.stop_gradient(v)


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
