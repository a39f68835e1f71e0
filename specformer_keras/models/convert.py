"""`apply_msvp`: put MSVP into an existing Keras model (e.g. a pretrained ViT)."""

import contextlib

import keras

from specformer_keras.layers.spectral_attention import (
    SpectralMultiHeadAttention,
    normalize_penalty,
)
from specformer_keras.models.spectral_vit import spectral_attention_layers

_MHA = keras.layers.MultiHeadAttention


def _spectral_config(layer_config, penalty, power_iterations):
    config = dict(layer_config)
    config["config"] = dict(config["config"])
    config["config"].update({"penalty": penalty, "power_iterations": power_iterations})
    config["module"] = SpectralMultiHeadAttention.__module__
    config["class_name"] = SpectralMultiHeadAttention.__name__
    config["registered_name"] = keras.saving.get_registered_name(
        SpectralMultiHeadAttention
    )
    return config


def _swap_in_config(node, penalty, power_iterations):
    """Recursively replaces serialized `MultiHeadAttention` layers in a config."""
    if isinstance(node, dict):
        if node.get("class_name") == "MultiHeadAttention" and str(
            node.get("module", "")
        ).startswith("keras"):
            return _spectral_config(node, penalty, power_iterations)
        return {
            k: _swap_in_config(v, penalty, power_iterations) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_swap_in_config(v, penalty, power_iterations) for v in node]
    return node


@contextlib.contextmanager
def _mha_constructed_as_spectral(penalty, power_iterations):
    """Makes `keras.layers.MultiHeadAttention(...)` build MSVP layers meanwhile.

    Custom layers (KerasHub's `ViTEncoderBlock`, for example) create their
    attention layer in `build`, so it never appears in the model config.
    """

    class _Spectral(SpectralMultiHeadAttention):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("penalty", penalty)
            kwargs.setdefault("power_iterations", power_iterations)
            super().__init__(*args, **kwargs)

    _Spectral.__name__ = SpectralMultiHeadAttention.__name__
    keras.layers.MultiHeadAttention = _Spectral
    try:
        yield
    finally:
        keras.layers.MultiHeadAttention = _MHA


def apply_msvp(model, penalty, power_iterations=1, warmup_iterations=20):
    """Returns a copy of `model` whose `MultiHeadAttention` layers carry MSVP.

    Every `keras.layers.MultiHeadAttention` (top-level, nested in the config, or
    created by a custom layer's `build` through `keras.layers.MultiHeadAttention`)
    becomes a `SpectralMultiHeadAttention` with the same configuration and the
    same weights. The original model is left untouched. After the weights are
    copied, `warmup_iterations` power-iteration steps initialize `u`/`v` so the
    first penalty is already close to the exact spectral norms.

    Args:
        model: A Keras model that can be rebuilt from its config (functional,
            Sequential, or a registered subclass with `get_config`).
        penalty: MSVP lambda, a float or `(lambda_q, lambda_k, lambda_v)`.
        power_iterations: Power-iteration steps per training call.
        warmup_iterations: Steps run once after copying the weights (0 to skip).

    Returns:
        A new `keras.Model` with the same outputs as `model` on any input.

    Raises:
        ValueError: if the model has no `MultiHeadAttention` layer, or a weight
            of the original cannot be matched in the copy.

    Example:

    ```python
    import keras
    import numpy as np
    from specformer_keras import apply_msvp

    inputs = keras.Input((5, 8))
    h = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(h))
    spectral = apply_msvp(model, penalty=1e-3)
    x = np.random.rand(2, 5, 8).astype("float32")
    np.testing.assert_allclose(model(x), spectral(x), atol=1e-5)
    ```
    """
    normalize_penalty(penalty)
    if not any(
        isinstance(layer, _MHA) for layer in model._flatten_layers(include_self=False)
    ):
        raise ValueError(
            "apply_msvp found no keras.layers.MultiHeadAttention in the model. "
            f"Received: model={model.name!r}"
        )
    serialized = keras.saving.serialize_keras_object(model)
    serialized = _swap_in_config(serialized, penalty, power_iterations)
    with _mha_constructed_as_spectral(penalty, power_iterations):
        new_model = keras.saving.deserialize_keras_object(serialized)
        if not new_model.built and model.built:
            new_model.build(model.input_shape)

    source = {w.path: w for w in model.weights}
    target = {w.path: w for w in new_model.weights}
    missing = sorted(set(source) - set(target))
    if missing:
        raise ValueError(
            "apply_msvp could not match these weights of the original model in "
            f"the converted copy: {missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    for path, weight in source.items():
        target[path].assign(weight.value)
    if warmup_iterations:
        for layer in spectral_attention_layers(new_model):
            layer.warmup_power_iteration(warmup_iterations)
    return new_model
