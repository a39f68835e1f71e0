"""The Transformer encoder block of SpectralViT, and its drop path.

`EncoderBlock` is pre-norm MSVP attention plus a GELU MLP, each branch behind
`StochasticDepth`; `check_encoder_arguments` checks the arguments it shares
with `SpectralViT`.
"""

import keras
from keras import ops

from specformer_keras.layers.penalty import normalize_penalty
from specformer_keras.layers.spectral_attention import SpectralMultiHeadAttention
from specformer_keras.utils.validation import (
    check_arguments,
    check_int,
    check_number,
    check_rate,
    reject_unknown_layer_kwargs,
)

ENCODER_ARGUMENT_CHECKS = (
    (check_int, ("hidden_dim", "num_heads", "mlp_dim", "power_iterations")),
    (check_rate, ("dropout_rate", "attention_dropout", "drop_path_rate")),
)


def check_encoder_arguments(values):
    """Checks the arguments that `EncoderBlock` and `SpectralViT` share.

    Args:
        values: ``{name: value}`` holding ``hidden_dim``, ``num_heads``,
            ``mlp_dim``, ``power_iterations`` (integers >= 1), the rates
            ``dropout_rate``, ``attention_dropout``, ``drop_path_rate`` (in
            [0, 1)) and ``penalty``; usually the caller's ``locals()``.

    Returns:
        The penalty as ``(lambda_q, lambda_k, lambda_v)`` (`normalize_penalty`).

    Raises:
        TypeError: Naming the first argument of the wrong type.
        ValueError: Naming the first argument out of range, also when
            ``hidden_dim`` is not divisible by ``num_heads``.

    Example:

    ```python
    from specformer_keras.layers.encoder_block import check_encoder_arguments

    lambdas = check_encoder_arguments(dict(
        hidden_dim=16, num_heads=2, mlp_dim=32, power_iterations=1,
        dropout_rate=0.0, attention_dropout=0.0, drop_path_rate=0.1, penalty=1e-3))
    assert lambdas == (1e-3, 1e-3, 1e-3)
    ```
    """
    check_arguments(ENCODER_ARGUMENT_CHECKS, values)
    hidden_dim, num_heads = values["hidden_dim"], values["num_heads"]
    if hidden_dim % num_heads:
        raise ValueError(
            "`hidden_dim` must be divisible by `num_heads`. "
            f"Received: hidden_dim={hidden_dim}, num_heads={num_heads}"
        )
    return normalize_penalty(values["penalty"])


@keras.saving.register_keras_serializable(package="specformer_keras")
class StochasticDepth(keras.layers.Layer):
    """Drops a residual branch per example with probability `rate` while training.

    Args:
        rate: Drop probability in [0, 1).
        seed: Optional seed.
        **kwargs: Base `keras.layers.Layer` arguments.

    Example:

    ```python
    import keras
    import numpy as np
    from specformer_keras.layers import StochasticDepth

    x = np.ones((4, 3, 2), "float32")
    y = StochasticDepth(0.5)(x, training=False)  # identity at inference
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), x)
    ```
    """

    def __init__(self, rate, seed=None, **kwargs):
        reject_unknown_layer_kwargs(self, kwargs)
        super().__init__(**kwargs)
        check_rate("rate", rate)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.rate else None

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = keras.random.uniform(shape, seed=self.seed_generator) < keep
        return ops.where(mask, x / keep, ops.zeros_like(x))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config


@keras.saving.register_keras_serializable(package="specformer_keras")
class EncoderBlock(keras.layers.Layer):
    """Pre-norm Transformer encoder block with a swappable attention class.

    `x + DropPath(Attention(LN(x)))`, then `x + DropPath(MLP(LN(x)))` with a GELU
    MLP. The attention layer is `attention_cls(num_heads=..., key_dim=...,
    dropout=..., **attention_kwargs)`; by default `SpectralMultiHeadAttention`
    with `penalty` and `power_iterations`.

    Args:
        hidden_dim: Token size.
        num_heads: Attention heads; must divide `hidden_dim`.
        mlp_dim: Hidden size of the MLP.
        penalty: MSVP lambda (float or 3-tuple); 0 gives plain attention.
        power_iterations: Power-iteration steps per training call.
        dropout_rate: Dropout after the MLP layers and the attention output.
        attention_dropout: Dropout on the attention probabilities.
        drop_path_rate: Stochastic-depth rate for both residual branches.
        layer_norm_epsilon: LayerNorm epsilon.
        attention_cls: Attention layer class with the
            `keras.layers.MultiHeadAttention` interface. Defaults to
            `SpectralMultiHeadAttention`.
        seed: Optional seed for u/v initialization, dropout and drop path.
        **kwargs: Base `keras.layers.Layer` arguments.

    Raises:
        TypeError: On an unknown keyword argument, a non-integer size or an
            `attention_cls` that is not a Keras layer class.
        ValueError: If `num_heads` does not divide `hidden_dim`, a rate is
            outside [0, 1), `power_iterations < 1`, `penalty` is negative,
            `attention_cls` names no registered class, or a non-zero
            `penalty` is given to a non-MSVP attention class.

    Example:

    ```python
    import numpy as np
    from specformer_keras.layers import EncoderBlock

    block = EncoderBlock(hidden_dim=16, num_heads=2, mlp_dim=32, penalty=1e-3)
    y = block(np.zeros((2, 5, 16), "float32"), training=True)
    assert y.shape == (2, 5, 16) and len(block.losses) == 1
    ```
    """

    def __init__(
        self,
        hidden_dim,
        num_heads,
        mlp_dim,
        penalty=0.0,
        power_iterations=1,
        dropout_rate=0.0,
        attention_dropout=0.0,
        drop_path_rate=0.0,
        layer_norm_epsilon=1e-6,
        attention_cls=None,
        seed=None,
        **kwargs,
    ):
        reject_unknown_layer_kwargs(self, kwargs)
        super().__init__(**kwargs)
        lambdas = check_encoder_arguments(locals())
        check_number("layer_norm_epsilon", layer_norm_epsilon, minimum=0.0)
        if isinstance(attention_cls, str):
            name = attention_cls
            # Registered classes ("package>Name") or Keras's own layers by name
            # (get_config writes "MultiHeadAttention" for the plain class).
            attention_cls = keras.saving.get_registered_object(
                name, module_objects=vars(keras.layers)
            )
            if attention_cls is None:
                raise ValueError(
                    "Argument `attention_cls` names no registered Keras class "
                    "(register it with keras.saving.register_keras_serializable). "
                    f"Received: attention_cls={name!r}"
                )
        if attention_cls is not None and not (
            isinstance(attention_cls, type)
            and issubclass(attention_cls, keras.layers.Layer)
        ):
            raise TypeError(
                "Argument `attention_cls` must be a Keras layer class with the "
                "keras.layers.MultiHeadAttention interface. "
                f"Received: attention_cls={attention_cls!r}"
            )
        self.attention_cls = attention_cls or SpectralMultiHeadAttention
        if any(lambdas) and not issubclass(
            self.attention_cls, SpectralMultiHeadAttention
        ):
            raise ValueError(
                f"Argument `penalty` needs an MSVP attention class; "
                f"{self.attention_cls.__name__} would ignore it. Use "
                "attention_cls=SpectralMultiHeadAttention (the default) or "
                f"penalty=0. Received: penalty={penalty!r}"
            )
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.penalty = penalty
        self.power_iterations = power_iterations
        self.dropout_rate = dropout_rate
        self.attention_dropout = attention_dropout
        self.drop_path_rate = drop_path_rate
        self.layer_norm_epsilon = layer_norm_epsilon
        self.seed = seed

        policy = self.dtype_policy
        attention_kwargs = {}
        if issubclass(self.attention_cls, SpectralMultiHeadAttention):
            attention_kwargs = {
                "penalty": penalty,
                "power_iterations": power_iterations,
            }
        self.norm1 = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="norm1"
        )
        self.attention = self.attention_cls(
            num_heads=num_heads,
            key_dim=hidden_dim // num_heads,
            dropout=attention_dropout,
            seed=seed,
            dtype=policy,
            name="attention",
            **attention_kwargs,
        )
        self.norm2 = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=policy, name="norm2"
        )
        self.mlp_in = keras.layers.Dense(
            mlp_dim, activation="gelu", dtype=policy, name="mlp_in"
        )
        self.mlp_out = keras.layers.Dense(hidden_dim, dtype=policy, name="mlp_out")
        self.dropout = keras.layers.Dropout(dropout_rate, seed=seed, dtype=policy)
        self.drop_path = StochasticDepth(drop_path_rate, seed=seed, dtype=policy)

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.norm2.build(input_shape)
        self.mlp_in.build(input_shape)
        self.mlp_out.build(tuple(input_shape[:-1]) + (self.mlp_dim,))

    def call(self, x, training=None):
        h = self.norm1(x)
        h = self.attention(h, h, training=training)
        x = x + self.drop_path(self.dropout(h, training=training), training=training)
        h = self.mlp_in(self.norm2(x))
        h = self.dropout(h, training=training)
        h = self.dropout(self.mlp_out(h), training=training)
        return x + self.drop_path(h, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        penalty = self.penalty
        if penalty is not None and not isinstance(penalty, (int, float)):
            penalty = [float(p) for p in penalty]
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "penalty": penalty,
                "power_iterations": self.power_iterations,
                "dropout_rate": self.dropout_rate,
                "attention_dropout": self.attention_dropout,
                "drop_path_rate": self.drop_path_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "attention_cls": keras.saving.get_registered_name(self.attention_cls),
                "seed": self.seed,
            }
        )
        return config
