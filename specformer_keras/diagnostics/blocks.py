"""Where the input sensitivity of a SpectralViT lives: local Lipschitz constants per sub-layer.

`lipschitz_report` estimates each attention layer alone (its input tokens ->
its output). In a pre-norm encoder block that layer sits behind a
LayerNorm and inside a residual connection,

    y = x + A(LN1(x))          (attention sub-layer)
    z = y + M(LN2(y))          (MLP sub-layer, M = Dense-GELU-Dense)

so a less sensitive attention layer need not make the block, or the model,
less sensitive. `block_lipschitz_report` estimates, per example and at the
tokens each block really receives, the local constant (spectral norm of the
Jacobian, Euclidean norm over all tokens and channels) of eight maps of every
`EncoderBlock`:

* ``norm1``: ``x -> LN1(x)``;
* ``attention_branch``: ``x -> A(LN1(x))`` (LayerNorm included);
* ``attention_sublayer``: ``x -> x + A(LN1(x))``;
* ``norm2``: ``y -> LN2(y)`` at ``y = x + A(LN1(x))``;
* ``mlp``: ``t -> M(t)`` at ``t = LN2(y)`` (the MLP's own weights);
* ``mlp_branch``: ``y -> M(LN2(y))``;
* ``mlp_sublayer``: ``y -> y + M(LN2(y))``;
* ``block``: ``x -> z``, the whole block;

and the residual stream's size at the block input (``stream_rms``: the root
mean square of ``x`` over tokens and channels, per example). A LayerNorm is
invariant to the scale of its input, so its Jacobian scales like
``gamma / std(x)``: the ``norm1``/``norm2`` columns show how much a smaller
residual stream raises the gain in front of each branch. The product over
blocks of ``block`` constants, times those of the patch embedding and the
head, bounds the whole model's local constant, so the table shows which factor
moved when the model's constant did not.

Inference mode throughout (``training=False``: dropout and drop path are the
identity). Estimates are by power iteration (`local_lipschitz`), so each is a
lower bound that rises to the true local constant as it converges.

Example:

```python
import numpy as np
from specformer_keras import SpectralViT
from specformer_keras.diagnostics import block_lipschitz_report

vit = SpectralViT(image_size=8, patch_size=4, num_classes=3, hidden_dim=16,
                  depth=2, num_heads=2, mlp_dim=16, penalty=1e-2)
images = np.random.default_rng(1).uniform(size=(2, 8, 8, 3)).astype("float32")
block = block_lipschitz_report(vit, images, iterations=5)["blocks"]["encoder_block_0"]
sorted(block)  # ['attention_branch', 'attention_sublayer', 'block', 'mlp',
               #  'mlp_branch', 'mlp_sublayer', 'norm1', 'norm2', 'stream_rms']
```
"""

import keras
import numpy as np
from keras import ops

from specformer_keras.diagnostics.attention import capture_layer_inputs
from specformer_keras.diagnostics.lipschitz import local_lipschitz, summarize
from specformer_keras.layers.encoder_block import EncoderBlock
from specformer_keras.utils.validation import check_int

# Each map's input: the block input x, the MLP sub-layer's input y, or t = LN2(y).
MAP_INPUTS = {
    "norm1": "x",
    "attention_branch": "x",
    "attention_sublayer": "x",
    "norm2": "y",
    "mlp": "t",
    "mlp_branch": "y",
    "mlp_sublayer": "y",
    "block": "x",
}
MAPS = tuple(MAP_INPUTS)


def encoder_blocks(model):
    """Every `EncoderBlock` in ``model``, in the order of ``model._flatten_layers``.

    Args:
        model: A Keras model.

    Returns:
        List of the `EncoderBlock` layers (empty if there are none).

    Example:

    ```python
    from specformer_keras import SpectralViT
    from specformer_keras.diagnostics import encoder_blocks

    model = SpectralViT(image_size=8, patch_size=4, num_classes=3, hidden_dim=16,
                        depth=2, num_heads=2, mlp_dim=16, seed=0)
    [b.name for b in encoder_blocks(model)]  # ['encoder_block_0', 'encoder_block_1']
    ```
    """
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, EncoderBlock)
    ]


def sublayer_maps(block):
    """The maps of `block_lipschitz_report` for one block, as ``{name: fn}``.

    Each map takes the input named in `MAP_INPUTS` (``x``: the block input;
    ``y``: the MLP sub-layer's input; ``t``: ``LN2(y)``, the MLP's input) and
    maps a batch of token matrices ``(batch, tokens, hidden_dim)`` to a batch
    of the same shape; `sublayer_inputs` computes ``y`` and ``t`` from ``x``.

    Args:
        block: A built `EncoderBlock` (called once, or inside a called model).

    Returns:
        ``{name: fn}`` for the names in `MAPS`.

    Raises:
        ValueError: If ``block`` is not a built `EncoderBlock`.

    Example:

    ```python
    import numpy as np
    from specformer_keras.layers.encoder_block import EncoderBlock
    from specformer_keras.diagnostics import sublayer_inputs, sublayer_maps

    block = EncoderBlock(hidden_dim=8, num_heads=2, mlp_dim=8, seed=0)
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    z = block(x)  # builds the block
    maps, inputs = sublayer_maps(block), sublayer_inputs(block, x)
    np.testing.assert_allclose(maps["mlp_sublayer"](inputs["y"]), z, atol=1e-5)
    ```
    """
    _check_built(block)

    def attention_branch(x):
        h = block.norm1(x)
        return block.attention(h, h, training=False)

    def mlp(t):
        return block.mlp_out(block.mlp_in(t))

    return {
        "norm1": block.norm1,
        "attention_branch": attention_branch,
        "attention_sublayer": lambda x: ops.add(x, attention_branch(x)),
        "norm2": block.norm2,
        "mlp": mlp,
        "mlp_branch": lambda y: mlp(block.norm2(y)),
        "mlp_sublayer": lambda y: ops.add(y, mlp(block.norm2(y))),
        "block": lambda x: block(x, training=False),
    }


def sublayer_inputs(block, x):
    """The inputs of `sublayer_maps` at block input ``x``: ``{"x", "y", "t"}`` (NumPy).

    Args:
        block: A built `EncoderBlock`.
        x: Token matrices ``(batch, tokens, hidden_dim)`` the block receives.

    Returns:
        ``{"x": x, "y": x + A(LN1(x)), "t": LN2(y)}`` as float32 arrays.

    Raises:
        ValueError: If ``block`` is not a built `EncoderBlock`.

    Example:

    ```python
    import numpy as np
    from specformer_keras.layers.encoder_block import EncoderBlock
    from specformer_keras.diagnostics import sublayer_inputs

    block = EncoderBlock(hidden_dim=8, num_heads=2, mlp_dim=8, seed=0)
    x = np.ones((1, 3, 8), "float32")
    block(x)
    sorted(sublayer_inputs(block, x))  # ['t', 'x', 'y']
    ```
    """
    maps = sublayer_maps(block)

    def numpy(a):
        return np.asarray(ops.convert_to_numpy(a), dtype="float32")

    x = numpy(x)
    y = numpy(maps["attention_sublayer"](ops.convert_to_tensor(x)))
    t = numpy(block.norm2(ops.convert_to_tensor(y)))
    return {"x": x, "y": y, "t": t}


def _check_built(block):
    if not isinstance(block, EncoderBlock) or not block.built:
        raise ValueError(
            "sublayer_maps needs a built EncoderBlock (call it, or the model holding "
            f"it, once). Received: block={block!r}"
        )


def block_lipschitz_report(model, x, iterations=20, seed=0, batch_size=64):
    """Local Lipschitz constants of each encoder block's sub-layers at ``model``'s inputs ``x``.

    Args:
        model: A model holding `EncoderBlock` layers (e.g. `SpectralViT`).
        x: Model inputs at which to estimate, shape ``(n, ...)``.
        iterations: Power-iteration steps per estimate (int >= 1). Defaults
            to 20.
        seed: Seed of the start directions. Defaults to 0.
        batch_size: Examples per Jacobian product (int >= 1). Defaults to 64.

    Returns:
        JSON-serializable dict: ``n``, ``iterations``, ``backend`` and
        ``blocks``: ``{block path: {map name: summarize(...), "stream_rms":
        summarize(...)}}`` for the map names in `MAPS` (module docstring;
        `MAP_INPUTS` says at which input each map is taken).

    Raises:
        ValueError: bad ``iterations`` or ``batch_size``, or a model without
            `EncoderBlock` layers.

    Example:

    ```python
    import numpy as np
    from specformer_keras import SpectralViT
    from specformer_keras.diagnostics import block_lipschitz_report

    model = SpectralViT(image_size=8, patch_size=4, num_classes=3, hidden_dim=16,
                        depth=1, num_heads=2, mlp_dim=16, penalty=1e-2, seed=0)
    x = np.random.default_rng(0).uniform(size=(3, 8, 8, 3)).astype("float32")
    report = block_lipschitz_report(model, x, iterations=5)
    report["blocks"]["encoder_block_0"]["block"]["median"]
    ```
    """
    check_int("iterations", iterations)
    check_int("batch_size", batch_size)
    x = np.asarray(ops.convert_to_numpy(x), dtype="float32")
    blocks = encoder_blocks(model)
    if not blocks:
        raise ValueError(
            "block_lipschitz_report needs a model with EncoderBlock layers (such as "
            f"SpectralViT). Received: model={model.name!r} with none"
        )
    values = {b.path: {name: [] for name in MAPS + ("stream_rms",)} for b in blocks}
    # The same map objects for every batch: `local_lipschitz` compiles each once.
    maps_of = {b.path: sublayer_maps(b) for b in blocks}
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        batch_seed = seed + start
        captured = capture_layer_inputs(model, batch, blocks)
        for block in blocks:
            maps = maps_of[block.path]
            inputs = sublayer_inputs(block, captured[block.path][0])
            entry = values[block.path]
            x_in = inputs["x"]
            rms = np.sqrt(np.mean(x_in.reshape(len(x_in), -1) ** 2, axis=1))
            entry["stream_rms"].append(rms)
            for name, at in MAP_INPUTS.items():
                entry[name].append(
                    local_lipschitz(
                        maps[name], inputs[at], iterations=iterations, seed=batch_seed
                    )
                )
    return {
        "n": int(len(x)),
        "iterations": int(iterations),
        "backend": keras.backend.backend(),
        "blocks": {
            path: {name: summarize(np.concatenate(v)) for name, v in entry.items()}
            for path, entry in values.items()
        },
    }
