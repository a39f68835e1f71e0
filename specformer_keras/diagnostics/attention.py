"""Attention layers of a model, the inputs they receive, and their theory bound.

For an attention layer (`keras.layers.MultiHeadAttention`, so also
`SpectralMultiHeadAttention`) used as self-attention, `attention_bound` is the
bound of its local Lipschitz constant derived in ``docs/theory.md``, computed
from the exact per-head singular values (SVD) and the actual inputs of the
layer (``N`` tokens of norm at most ``R``, key size ``d``, biases included):

    c_h = sqrt(N) s_V + N (R s_V + |b_V|) (s_Q (R s_K + |b_K|) + (R s_Q + |b_Q|) s_K)
          / (2 sqrt(d))
    bound = s(W_O) * sqrt(sum_h c_h^2)

which reduces to ``s_V (sqrt(N) + N R^2 s_Q s_K / sqrt(d))`` per head without
biases. ``s_Q, s_K, s_V`` are the largest singular values of head ``h``'s query,
key and value matrices, ``b`` their biases, ``s(W_O)`` the spectral norm of the
output projection. The bound holds at every input (a test checks it against
the estimates); it is loose by design, since it takes the worst case over
directions and over the attention pattern.
"""

import math

import keras
import numpy as np
from keras import ops

from specformer_keras.spectral import exact_spectral_norms


def attention_layers(model):
    """Every `keras.layers.MultiHeadAttention` inside ``model`` (nested ones too), in order.

    Args:
        model: A Keras model or layer.

    Returns:
        A list of the attention layers (subclasses such as
        `SpectralMultiHeadAttention` included), in the order Keras tracks them.

    Example:

    ```python
    from specformer_keras import SpectralViT
    from specformer_keras.diagnostics import attention_layers

    model = SpectralViT(image_size=8, patch_size=4, num_classes=2, hidden_dim=8,
                        depth=2, num_heads=2, mlp_dim=8)
    assert [l.path for l in attention_layers(model)] == [
        "encoder_block_0/attention", "encoder_block_1/attention"]
    ```
    """
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.MultiHeadAttention)
    ]


def capture_layer_inputs(model, x, layers):
    """The positional inputs each layer in ``layers`` receives in ``model(x, training=False)``.

    Records the arguments of each layer's ``call`` during one inference pass
    (the layers' ``call`` is wrapped for that pass only and restored after).

    Args:
        model: A Keras model.
        x: Input batch.
        layers: Layers inside ``model``.

    Returns:
        ``{layer.path: (array, ..., same)}``: the positional tensor arguments
        as NumPy arrays, then a bool, True when every one of them is the first
        (self-attention called as ``layer(X, X)``).

    Raises:
        ValueError: If a layer was not called during the forward pass.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.diagnostics import capture_layer_inputs

    dense = keras.layers.Dense(2, name="head")
    model = keras.Sequential([keras.Input((3,)), dense])
    x = np.ones((4, 3), "float32")
    (inputs, same) = capture_layer_inputs(model, x, [dense])[dense.path]
    np.testing.assert_array_equal(inputs, x)
    assert same
    ```
    """
    captured = {}
    for layer in layers:

        def recording(*args, _layer=layer, _call=layer.call, **kwargs):
            captured[_layer.path] = tuple(
                np.asarray(ops.convert_to_numpy(a))
                for a in args
                if a is not None and hasattr(a, "shape")
            ) + (all(a is args[0] for a in args[1:] if a is not None),)
            return _call(*args, **kwargs)

        object.__setattr__(layer, "call", recording)
    try:
        model(ops.convert_to_tensor(x), training=False)
    finally:
        for layer in layers:
            layer.__dict__.pop("call", None)
    missing = [layer.path for layer in layers if layer.path not in captured]
    if missing:
        raise ValueError(
            "These layers were not called in the model's forward pass, so their "
            f"inputs cannot be captured. Received: layers={missing}"
        )
    return captured


def attention_bound(layer, inputs):
    """Per-example upper bound (docs/theory.md) of a self-attention layer's local constant.

    Args:
        layer: A built `keras.layers.MultiHeadAttention` used as
            self-attention (``layer(X, X)``).
        inputs: Its input tokens, shape ``(batch, N, D)``.

    Returns:
        NumPy array ``(batch,)`` with the bound at each example (tokens of norm
        at most ``R`` = the largest token norm of that example).

    Raises:
        ValueError: If ``inputs`` is not of rank 3.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.diagnostics import attention_bound

    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    x = np.random.default_rng(0).normal(size=(3, 5, 8)).astype("float32")
    layer(x, x)
    assert attention_bound(layer, x).shape == (3,)
    ```
    """
    inputs = np.asarray(ops.convert_to_numpy(inputs), dtype=np.float64)
    if inputs.ndim != 3:
        raise ValueError(
            "`inputs` must be tokens of shape (batch, N, D). "
            f"Received: inputs.shape={inputs.shape}"
        )
    n_tokens = inputs.shape[1]
    radius = np.max(np.linalg.norm(inputs, axis=-1), axis=-1)  # (batch,)
    sigma, bias = {}, {}
    for name in ("query", "key", "value"):
        dense = getattr(layer, f"_{name}_dense")
        sigma[name] = exact_spectral_norms(dense.kernel)  # (heads,)
        if dense.bias is not None:
            b = np.asarray(ops.convert_to_numpy(dense.bias), dtype=np.float64)
            bias[name] = np.linalg.norm(b.reshape(b.shape[0], -1), axis=-1)
        else:
            bias[name] = np.zeros_like(sigma[name])
    out_kernel = np.asarray(
        ops.convert_to_numpy(layer._output_dense.kernel), dtype=np.float64
    )
    sigma_out = np.linalg.svd(
        out_kernel.reshape(-1, out_kernel.shape[-1]), compute_uv=False
    )[0]
    d = layer._key_dim
    r = radius[:, None]  # (batch, 1) against heads on the last axis
    s_q, s_k, s_v = sigma["query"], sigma["key"], sigma["value"]
    b_q, b_k, b_v = bias["query"], bias["key"], bias["value"]
    per_head = math.sqrt(n_tokens) * s_v + n_tokens * (r * s_v + b_v) * (
        s_q * (r * s_k + b_k) + (r * s_q + b_q) * s_k
    ) / (2.0 * math.sqrt(d))
    return sigma_out * np.sqrt(np.sum(per_head**2, axis=-1))
