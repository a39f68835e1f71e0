"""Vision Transformer input blocks: patches and tokens.

`PatchEmbedding` cuts images into patch tokens, `ClassTokenAndPosition` adds
the class token and position embeddings. The encoder block is
`specformer_keras.layers.encoder_block` (re-exported here).
"""

import keras
from keras import ops

from specformer_keras.layers.encoder_block import (
    EncoderBlock,
    StochasticDepth,
    check_encoder_arguments,
)
from specformer_keras.utils.validation import (
    check_bool,
    check_int,
    reject_unknown_layer_kwargs,
)

__all__ = [
    "ClassTokenAndPosition",
    "EncoderBlock",
    "PatchEmbedding",
    "StochasticDepth",
    "check_encoder_arguments",
]


@keras.saving.register_keras_serializable(package="specformer_keras")
class PatchEmbedding(keras.layers.Layer):
    """Splits images into non-overlapping patches and projects each to `hidden_dim`.

    Args:
        patch_size: Side of the square patches, in pixels.
        hidden_dim: Size of each patch embedding.
        **kwargs: Base `keras.layers.Layer` arguments.

    Call arguments:
        images: `(batch, height, width, channels)` tensor.

    Returns:
        `(batch, num_patches, hidden_dim)` tensor.

    Example:

    ```python
    import numpy as np
    from specformer_keras.layers import PatchEmbedding

    tokens = PatchEmbedding(patch_size=4, hidden_dim=8)(np.zeros((2, 16, 16, 3)))
    assert tokens.shape == (2, 16, 8)
    ```
    """

    def __init__(self, patch_size, hidden_dim, **kwargs):
        reject_unknown_layer_kwargs(self, kwargs)
        super().__init__(**kwargs)
        check_int("patch_size", patch_size)
        check_int("hidden_dim", hidden_dim)
        self.patch_size = patch_size
        self.hidden_dim = hidden_dim
        self.projection = keras.layers.Conv2D(
            hidden_dim,
            kernel_size=patch_size,
            strides=patch_size,
            padding="valid",
            dtype=self.dtype_policy,
            name="projection",
        )

    def build(self, input_shape):
        self.projection.build(input_shape)

    def call(self, images):
        x = self.projection(images)
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1] * shape[2], self.hidden_dim))

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        n = (
            None
            if h is None or w is None
            else (h // self.patch_size) * (w // self.patch_size)
        )
        return (input_shape[0], n, self.hidden_dim)

    def get_config(self):
        config = super().get_config()
        config.update({"patch_size": self.patch_size, "hidden_dim": self.hidden_dim})
        return config


@keras.saving.register_keras_serializable(package="specformer_keras")
class ClassTokenAndPosition(keras.layers.Layer):
    """Optionally prepends a learned class token, then adds learned positions.

    Args:
        num_patches: Number of patch tokens.
        use_class_token: Whether to prepend a class token. Defaults to True.
        **kwargs: Base `keras.layers.Layer` arguments.

    Example:

    ```python
    import numpy as np
    from specformer_keras.layers import ClassTokenAndPosition

    out = ClassTokenAndPosition(num_patches=4)(np.zeros((2, 4, 8), "float32"))
    assert out.shape == (2, 5, 8)
    ```
    """

    def __init__(self, num_patches, use_class_token=True, **kwargs):
        reject_unknown_layer_kwargs(self, kwargs)
        super().__init__(**kwargs)
        check_int("num_patches", num_patches)
        self.num_patches = num_patches
        self.use_class_token = check_bool("use_class_token", use_class_token)

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        if self.use_class_token:
            self.class_token = self.add_weight(
                name="class_token", shape=(1, 1, hidden_dim), initializer="zeros"
            )
        num_tokens = self.num_patches + int(self.use_class_token)
        self.position_embedding = self.add_weight(
            name="position_embedding",
            shape=(1, num_tokens, hidden_dim),
            initializer=init,
        )

    def call(self, tokens):
        if self.use_class_token:
            batch = ops.shape(tokens)[0]
            cls = ops.broadcast_to(
                ops.cast(self.class_token, tokens.dtype),
                (batch, 1, ops.shape(tokens)[-1]),
            )
            tokens = ops.concatenate([cls, tokens], axis=1)
        return tokens + ops.cast(self.position_embedding, tokens.dtype)

    def compute_output_shape(self, input_shape):
        return (
            input_shape[0],
            self.num_patches + int(self.use_class_token),
            input_shape[-1],
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {"num_patches": self.num_patches, "use_class_token": self.use_class_token}
        )
        return config
