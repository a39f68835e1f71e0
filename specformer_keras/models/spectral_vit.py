"""`SpectralViT`: a Vision Transformer whose attention layers carry MSVP."""

import keras
from keras import ops

from specformer_keras.layers.encoder_block import (
    EncoderBlock,
    check_encoder_arguments,
)
from specformer_keras.layers.spectral_attention import SpectralMultiHeadAttention
from specformer_keras.layers.vit_blocks import ClassTokenAndPosition, PatchEmbedding
from specformer_keras.models.presets import PRESETS, get_preset
from specformer_keras.utils.validation import (
    check_arguments,
    check_int,
    reject_unknown_kwargs,
)

# `keras.Model` arguments a functional `SpectralViT` honours (Keras's
# functional constructor ignores any other keyword silently).
MODEL_KWARGS = ("name", "trainable")
# The integer arguments only SpectralViT has; the encoder's are checked by
# `check_encoder_arguments`.
MODEL_ARGUMENT_CHECKS = (
    (check_int, ("image_size", "patch_size", "num_classes", "depth", "channels")),
)

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


def spectral_attention_layers(model):
    """Returns every `SpectralMultiHeadAttention` inside `model`, nested ones included.

    Args:
        model: A Keras model or layer.

    Returns:
        A list of the layers, in the order Keras tracks them.

    Example:

    ```python
    from specformer_keras import SpectralViT
    from specformer_keras.models.spectral_vit import spectral_attention_layers

    model = SpectralViT(image_size=8, patch_size=4, num_classes=2, hidden_dim=8,
                        depth=2, num_heads=2, mlp_dim=8)
    assert len(spectral_attention_layers(model)) == 2
    ```
    """
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, SpectralMultiHeadAttention)
    ]


def collect_spectral_norms(model, exact=False):
    """`{layer.path: layer.spectral_norms(exact)}` for every MSVP attention layer.

    Works on any Keras model (for example one returned by `apply_msvp`).

    Args:
        model: A Keras model or layer.
        exact: Passed to `SpectralMultiHeadAttention.spectral_norms`.

    Returns:
        `{layer_path: {"query": np.ndarray(num_heads), ...}}`.

    Example:

    ```python
    from specformer_keras import SpectralViT
    from specformer_keras.models.spectral_vit import collect_spectral_norms

    model = SpectralViT(image_size=8, patch_size=4, num_classes=2, hidden_dim=8,
                        depth=1, num_heads=2, mlp_dim=8, penalty=1e-3)
    norms = collect_spectral_norms(model, exact=True)
    assert set(norms["encoder_block_0/attention"]) == {"query", "key", "value"}
    ```
    """
    return {
        layer.path: layer.spectral_norms(exact=exact)
        for layer in spectral_attention_layers(model)
    }


@keras.saving.register_keras_serializable(package="specformer_keras")
class SpectralViT(keras.Model):
    """Vision Transformer with SpecFormer's MSVP penalty in every attention layer.

    Takes images with pixel values in [0, 1] (normalized inside the model with
    `mean`/`std`) and returns logits. Architecture: patch embedding, class
    token (or global average pooling), learned position embedding, `depth`
    pre-norm encoder blocks with `SpectralMultiHeadAttention` and a GELU MLP,
    final LayerNorm, linear head. `penalty=0` builds the plain ViT with the
    same trainable weights (the baseline for every comparison). During `fit`,
    the summed penalty is reported as the metric `msvp_loss`.

    Args:
        image_size: Side of the square input images.
        patch_size: Side of the square patches; must divide `image_size`.
        num_classes: Number of output logits.
        hidden_dim: Token size; must be divisible by `num_heads`.
        depth: Number of encoder blocks.
        num_heads: Attention heads per block.
        mlp_dim: Hidden size of the MLPs.
        penalty: MSVP lambda: a float for query/key/value or a 3-tuple
            `(lambda_q, lambda_k, lambda_v)`. Defaults to `0.0` (plain ViT).
        power_iterations: Power-iteration steps per training call. Defaults to 1.
        channels: Image channels. Defaults to 3.
        pooling: `"cls"` (class token) or `"gap"` (mean over tokens).
        dropout_rate: Dropout in the MLPs, after attention and on embeddings.
        attention_dropout: Dropout on attention probabilities.
        drop_path_rate: Stochastic-depth rate of the last block (linearly
            increasing from 0 over the blocks).
        mean: Per-channel mean used to normalize [0, 1] pixels. Defaults to
            CIFAR-10's.
        std: Per-channel standard deviation. Defaults to CIFAR-10's.
        seed: Optional seed for u/v initialization, dropout and drop path.
        **kwargs: `keras.Model` arguments `name` and `trainable`. Any other
            keyword (a misspelled argument, or `dtype`: set a mixed-precision
            policy with `keras.config.set_dtype_policy` before building) is a
            `TypeError`.

    Raises:
        TypeError: for an unknown keyword argument or an argument of the
            wrong type.
        ValueError: for an argument out of range.

    Example:

    ```python
    import keras
    import numpy as np
    from specformer_keras import SpectralViT

    model = SpectralViT.from_preset(
        "vit_micro_patch4_32", image_size=16, depth=2, penalty=1e-3
    )
    model.compile(
        optimizer="adamw",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    x = np.random.rand(8, 16, 16, 3).astype("float32")
    y = np.random.randint(0, 10, size=(8,))
    history = model.fit(x, y, epochs=1, verbose=0)
    assert "msvp_loss" in history.history
    norms = model.spectral_norms()   # {layer path: {"query": ..., ...}}
    ```
    """

    def __init__(
        self,
        image_size=32,
        patch_size=4,
        num_classes=10,
        hidden_dim=192,
        depth=6,
        num_heads=3,
        mlp_dim=384,
        penalty=0.0,
        power_iterations=1,
        channels=3,
        pooling="cls",
        dropout_rate=0.0,
        attention_dropout=0.0,
        drop_path_rate=0.0,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        seed=None,
        **kwargs,
    ):
        if "dtype" in kwargs:
            raise TypeError(
                "SpectralViT does not take `dtype` (a functional model would "
                "ignore it): call keras.config.set_dtype_policy(...) before "
                f"building the model. Received: dtype={kwargs['dtype']!r}"
            )
        reject_unknown_kwargs("SpectralViT", kwargs, allowed=MODEL_KWARGS)
        check_arguments(MODEL_ARGUMENT_CHECKS, locals())
        if image_size % patch_size:
            raise ValueError(
                "`image_size` must be divisible by `patch_size`. "
                f"Received: image_size={image_size}, patch_size={patch_size}"
            )
        if pooling not in ("cls", "gap"):
            raise ValueError(
                f"`pooling` must be 'cls' or 'gap'. Received: pooling={pooling!r}"
            )
        # hidden_dim, num_heads, mlp_dim, the rates, power_iterations, penalty:
        check_encoder_arguments(locals())  # validates early, naming the argument
        mean = _per_channel("mean", mean, channels)
        std = _per_channel("std", std, channels)
        if any(s <= 0 for s in std):
            raise ValueError(f"`std` values must be > 0. Received: std={std}")

        # === Functional graph ===
        images = keras.Input((image_size, image_size, channels), name="images")
        x = keras.layers.Normalization(
            mean=list(mean), variance=[s * s for s in std], name="normalize"
        )(images)
        x = PatchEmbedding(patch_size, hidden_dim, name="patch_embedding")(x)
        num_patches = (image_size // patch_size) ** 2
        x = ClassTokenAndPosition(
            num_patches, use_class_token=pooling == "cls", name="tokens"
        )(x)
        x = keras.layers.Dropout(dropout_rate, seed=seed, name="embedding_dropout")(x)
        for i in range(depth):
            rate = drop_path_rate * i / max(depth - 1, 1)
            x = EncoderBlock(
                hidden_dim=hidden_dim,
                num_heads=num_heads,
                mlp_dim=mlp_dim,
                penalty=penalty,
                power_iterations=power_iterations,
                dropout_rate=dropout_rate,
                attention_dropout=attention_dropout,
                drop_path_rate=rate,
                seed=None if seed is None else seed + i,
                name=f"encoder_block_{i}",
            )(x)
        x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
        if pooling == "cls":
            x = x[:, 0]
        else:
            x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
        logits = keras.layers.Dense(num_classes, dtype="float32", name="head")(x)
        kwargs.setdefault("name", "spectral_vit")
        super().__init__(inputs=images, outputs=logits, **kwargs)

        # === Config ===
        self.image_size = image_size
        self.patch_size = patch_size
        self.num_classes = num_classes
        self.hidden_dim = hidden_dim
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.penalty = penalty
        self.power_iterations = power_iterations
        self.channels = channels
        self.pooling = pooling
        self.dropout_rate = dropout_rate
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.mean = mean
        self.std = std
        self.seed = seed
        self.msvp_loss_tracker = keras.metrics.Mean(name="msvp_loss")

    @classmethod
    def from_preset(cls, name, **overrides):
        """Builds a named architecture, e.g. `"vit_tiny_patch4_32"`.

        Args:
            name: One of `SpectralViT.presets`.
            **overrides: Constructor arguments replacing the preset's
                (e.g. `num_classes=100, penalty=1e-3`).

        Returns:
            A new `SpectralViT`.

        Raises:
            ValueError: For an unknown preset name.
            TypeError: For an override that is not a `SpectralViT` argument
                (e.g. `hidden_dims=32`).

        Example:

        ```python
        from specformer_keras import SpectralViT

        model = SpectralViT.from_preset("vit_micro_patch4_32", num_classes=100)
        assert model.num_classes == 100
        ```
        """
        config = get_preset(name)
        reject_unknown_kwargs(
            f"{cls.__name__}.from_preset",
            overrides,
            allowed=_constructor_arguments(cls) + MODEL_KWARGS,
        )
        config.update(overrides)
        return cls(**config)

    presets = tuple(sorted(PRESETS))

    def call(self, inputs, training=None, mask=None):
        shape = tuple(inputs.shape)
        expected = (self.image_size, self.image_size, self.channels)
        if len(shape) != 4 or any(
            got is not None and got != want for got, want in zip(shape[1:], expected)
        ):
            raise ValueError(
                "SpectralViT expects images of shape (batch, "
                f"{self.image_size}, {self.image_size}, {self.channels}) with "
                f"pixel values in [0, 1]. Received: inputs.shape={shape}"
            )
        return super().call(inputs, training=training, mask=mask)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        loss = super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        if training:
            self.msvp_loss_tracker.update_state(self.msvp_loss())
        return loss

    def msvp_loss(self):
        """Sum of the penalties added by the last training call.

        Returns:
            A float32 scalar tensor (0.0 if no penalty was added).
        """
        losses = [ops.cast(loss, "float32") for loss in self.losses]
        if not losses:
            return ops.zeros((), "float32")
        return ops.sum(ops.stack(losses))

    def spectral_norms(self, exact=False):
        """Per-layer, per-head largest singular values.

        Args:
            exact: False for the power-iteration estimates of the penalized
                projections; True for exact SVD values of query/key/value.

        Returns:
            `{layer_path: {"query": np.ndarray(num_heads), ...}}`.
        """
        return collect_spectral_norms(self, exact=exact)

    def get_config(self):
        penalty = self.penalty
        if penalty is not None and not isinstance(penalty, (int, float)):
            penalty = [float(p) for p in penalty]
        return {
            "name": self.name,
            "trainable": self.trainable,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "num_classes": self.num_classes,
            "hidden_dim": self.hidden_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "penalty": penalty,
            "power_iterations": self.power_iterations,
            "channels": self.channels,
            "pooling": self.pooling,
            "dropout_rate": self.dropout_rate,
            "attention_dropout": self.attention_dropout,
            "drop_path_rate": self.drop_path_rate,
            "mean": list(self.mean),
            "std": list(self.std),
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _constructor_arguments(cls):
    """Names of the explicit arguments of ``cls.__init__``."""
    import inspect

    return tuple(
        name
        for name, parameter in inspect.signature(cls.__init__).parameters.items()
        if name != "self"
        and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
    )


def _per_channel(name, value, channels):
    if isinstance(value, (int, float)):
        return (float(value),) * channels
    try:
        value = tuple(float(v) for v in value)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a number or a sequence of {channels} numbers. "
            f"Received: {name}={value!r}"
        ) from None
    if len(value) != channels:
        raise ValueError(
            f"`{name}` must have one value per channel ({channels}). "
            f"Received: {name}={value}"
        )
    return value
