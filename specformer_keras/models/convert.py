"""`apply_msvp`: put MSVP into an existing Keras model (e.g. a pretrained ViT)."""

import keras

from specformer_keras.layers.penalty import normalize_penalty
from specformer_keras.layers.spectral_attention import SpectralMultiHeadAttention
from specformer_keras.models.converted_classes import (
    ATTENTION_LOADER,
    MODEL_LOADER,
    PACKAGE,
    combined_attention_class,
    is_converted_model,
    mark_converted,
    mha_constructed_as_spectral,
)
from specformer_keras.models.spectral_vit import spectral_attention_layers
from specformer_keras.utils.validation import check_int

_MHA = keras.layers.MultiHeadAttention


# === Config rewriting ===


def _attention_class_of(node):
    """The MultiHeadAttention (sub)class a serialized layer config names, or None."""
    registered = node.get("registered_name")
    if registered == ATTENTION_LOADER:
        return ATTENTION_LOADER
    cls = keras.saving.get_registered_object(registered) if registered else None
    if cls is None and node.get("class_name") == "MultiHeadAttention":
        if str(node.get("module", "")).startswith("keras"):
            cls = _MHA
    if isinstance(cls, type) and issubclass(cls, _MHA):
        return cls
    return None


def _with_settings(config, penalty, power_iterations):
    config = dict(config)
    config.update({"penalty": penalty, "power_iterations": power_iterations})
    return config


def _swap_in_config(node, penalty, power_iterations):
    """Recursively turns serialized attention layers into MSVP ones."""
    if isinstance(node, list):
        return [_swap_in_config(v, penalty, power_iterations) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("registered_name") == MODEL_LOADER:  # converted before
        config = dict(node["config"])
        config["msvp"] = {"penalty": penalty, "power_iterations": power_iterations}
        config["base"] = _swap_in_config(config["base"], penalty, power_iterations)
        return {**node, "config": config}
    if "class_name" in node and isinstance(node.get("config"), dict):
        if str(node.get("registered_name")).startswith(f"{PACKAGE}>") and (
            "penalty" in node["config"]
        ):
            # SpectralViT, EncoderBlock: they build their MSVP attention from
            # their own penalty arguments.
            config = _with_settings(node["config"], penalty, power_iterations)
            return {
                **node,
                "config": _swap_in_config(config, penalty, power_iterations),
            }
        cls = _attention_class_of(node)
        if cls == ATTENTION_LOADER:  # a converted subclass, converted again
            inner = dict(node["config"])
            inner["config"] = _with_settings(inner["config"], penalty, power_iterations)
            return {**node, "config": inner}
        if cls is not None:
            if issubclass(cls, SpectralMultiHeadAttention):
                # Already MSVP (e.g. penalty 0): only the settings change.
                return {
                    **node,
                    "config": _with_settings(node["config"], penalty, power_iterations),
                }
            target = (
                SpectralMultiHeadAttention
                if cls is _MHA
                else combined_attention_class(cls)
            )
            config = _with_settings(node["config"], penalty, power_iterations)
            if target is not SpectralMultiHeadAttention:
                config = {
                    "attention_class": keras.saving.get_registered_name(cls),
                    "config": config,
                }
            return {
                **node,
                "module": target.__module__,
                "class_name": target.__name__,
                "registered_name": keras.saving.get_registered_name(target),
                "config": config,
            }
    return {k: _swap_in_config(v, penalty, power_iterations) for k, v in node.items()}


def _is_attention(layer):
    return isinstance(layer, _MHA)


def _convert_layer(layer, penalty, power_iterations, warmup_iterations):
    """A bare attention layer: an MSVP copy with the same config and weights."""
    config = _swap_in_config(
        keras.saving.serialize_keras_object(layer), penalty, power_iterations
    )
    new_layer = keras.saving.deserialize_keras_object(config)  # built like layer
    if layer.built:
        _copy_weights(layer, new_layer)
        if warmup_iterations:
            new_layer.warmup_power_iteration(warmup_iterations)
    return new_layer


def _copy_weights(source_model, target_model):
    """Assigns every weight of the source to the same path in the target.

    Power-iteration state (u/v) of the source may be absent in the target (a
    projection whose lambda became 0) and is then dropped; any other weight
    must be matched.
    """
    state = {
        id(w)
        for layer in _flatten(source_model)
        if isinstance(layer, SpectralMultiHeadAttention) and layer.built
        for name in layer.penalized_projections
        for w in layer.power_iteration_state(name)
    }
    source = {w.path: w for w in source_model.weights}
    target = {w.path: w for w in target_model.weights}
    missing = sorted(
        path for path, w in source.items() if path not in target and id(w) not in state
    )
    if missing:
        raise ValueError(
            "apply_msvp could not match these weights of the original model in "
            f"the converted copy: {missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    for path, weight in source.items():
        if path in target:
            target[path].assign(weight.value)


def _flatten(layer):
    return list(layer._flatten_layers(include_self=True, recursive=True))


def apply_msvp(model, penalty, power_iterations=1, warmup_iterations=20):
    """Returns a copy of `model` whose attention layers carry MSVP.

    Every `keras.layers.MultiHeadAttention` (top-level, nested in the config, or
    created by a custom layer's `build` through `keras.layers.MultiHeadAttention`)
    becomes a `SpectralMultiHeadAttention` with the same configuration and the
    same weights. A registered subclass of `MultiHeadAttention` keeps its own
    behaviour: it becomes `SpectralMultiHeadAttention` mixed into that subclass.
    Layers that are already `SpectralMultiHeadAttention` (for example with
    `penalty=0`) get the new `penalty` and `power_iterations`. The original
    model is left untouched. After the weights are copied,
    `warmup_iterations` power-iteration steps initialize `u`/`v` so the first
    penalty is already close to the exact spectral norms.

    The copy saves to and loads from `.keras` and continues training, also when
    its attention layers are created in a custom layer's `build` (KerasHub's
    ViT): such a model is then of a subclass of its original class (still an
    instance of it) that rebuilds MSVP attention when loaded.

    Args:
        model: A Keras model that can be rebuilt from its config (functional,
            Sequential, or a registered subclass with `get_config`), or a bare
            attention layer (then the converted layer is returned).
        penalty: MSVP lambda, a float or `(lambda_q, lambda_k, lambda_v)`.
        power_iterations: Power-iteration steps per training call (>= 1).
        warmup_iterations: Steps run once after copying the weights (0 to skip).

    Returns:
        A new `keras.Model` (or layer) with the same outputs as `model` on any
        input.

    Raises:
        TypeError: if `model` is not a Keras model or layer.
        ValueError: if the model has no `MultiHeadAttention` layer, if an
            attention layer could not be converted (a custom layer that builds
            an attention class other than `keras.layers.MultiHeadAttention`),
            or if a weight of the original cannot be matched in the copy.

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
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(
            "Argument `model` must be a Keras model (or a MultiHeadAttention "
            f"layer) to convert. Received: model={model!r} of type "
            f"{type(model).__name__}"
        )
    normalize_penalty(penalty)
    if not isinstance(penalty, (int, float)) and penalty is not None:
        penalty = [float(p) for p in penalty]
    power_iterations = check_int("power_iterations", power_iterations)
    warmup_iterations = check_int("warmup_iterations", warmup_iterations, minimum=0)
    if _is_attention(model):
        return _convert_layer(model, penalty, power_iterations, warmup_iterations)
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a keras.Model (or a MultiHeadAttention "
            f"layer). Received: model={model.name!r} of type {type(model).__name__}"
        )
    if not any(_is_attention(layer) for layer in _flatten(model)):
        raise ValueError(
            "apply_msvp found no keras.layers.MultiHeadAttention (or subclass) in "
            f"the model. Received: model={model.name!r}"
        )
    serialized = keras.saving.serialize_keras_object(model)
    serialized = _swap_in_config(serialized, penalty, power_iterations)
    with mha_constructed_as_spectral(penalty, power_iterations):
        new_model = keras.saving.deserialize_keras_object(serialized)
        if not new_model.built and model.built:
            new_model.build(model.input_shape)

    plain = [
        f"{layer.path or layer.name} ({type(layer).__name__})"
        for layer in _flatten(new_model)
        if _is_attention(layer) and not isinstance(layer, SpectralMultiHeadAttention)
    ]
    if plain:
        raise ValueError(
            "apply_msvp could not convert these attention layers (a custom layer "
            "creates them from a class other than keras.layers.MultiHeadAttention "
            "in its build; construct them with SpectralMultiHeadAttention "
            f"instead): {plain}"
        )
    built_in_build = any(
        getattr(type(layer), "_msvp_built_in_build", False)
        for layer in _flatten(new_model)
    )
    if built_in_build or is_converted_model(new_model):
        new_model = mark_converted(
            new_model, {"penalty": penalty, "power_iterations": power_iterations}
        )
    _copy_weights(model, new_model)
    if warmup_iterations:
        for layer in spectral_attention_layers(new_model):
            layer.warmup_power_iteration(warmup_iterations)
    return new_model
