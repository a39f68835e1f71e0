"""Classes `apply_msvp` creates on the fly, and how they serialize.

Two cases need a class that does not exist in any module:
* a subclass of MultiHeadAttention (a user's or a library's) becomes
  `class X(SpectralMultiHeadAttention, Subclass)`, keeping its behaviour;
* a model whose custom layers create their `keras.layers.MultiHeadAttention`
  in `build` (KerasHub's ViT) must rebuild them as MSVP layers when it is
  loaded from `.keras`, or loading fails ("Layer 'mha' expected 0 variables,
  but received 6").
Each such class serializes as a registered loader (`MSVPAttentionSubclass`,
`MSVPConvertedModel`) whose config holds the original class's serialized
form and the MSVP settings; the loader rebuilds the class in any process.
"""

import contextlib

import keras

from specformer_keras.layers.spectral_attention import SpectralMultiHeadAttention

_MHA = keras.layers.MultiHeadAttention
PACKAGE = "specformer_keras"
MODEL_LOADER = f"{PACKAGE}>MSVPConvertedModel"
ATTENTION_LOADER = f"{PACKAGE}>MSVPAttentionSubclass"

_COMBINED = {}
_CONVERTED = {}


def _serialized_as(obj, cls):
    """``serialize_keras_object(obj)`` as if ``obj`` were of class ``cls``."""
    actual = obj.__class__
    obj.__class__ = cls
    try:
        config = keras.saving.serialize_keras_object(obj)
    finally:
        obj.__class__ = actual
    config.pop("build_config", None)
    config.pop("compile_config", None)
    return config


def _register_as(cls, key, loader):
    """Makes ``cls`` serialize under ``key`` while ``key`` still loads ``loader``."""
    package, name = key.split(">")
    keras.saving.register_keras_serializable(package=package, name=name)(cls)
    keras.saving.get_custom_objects()[key] = loader


def _class_loaded_by(loader, cache, base, name, bases, get_config):
    """A class ``name(*bases)`` made once per ``base``, serialized via ``loader``.

    Its ``get_config`` is ``get_config`` and its ``from_config`` is
    ``loader.from_config``; it is registered under ``loader.KEY`` (which still
    loads ``loader``) and kept in ``cache[base]``.
    """
    if base not in cache:
        cls = type(
            name,
            bases,
            {
                "__module__": __name__,
                "get_config": get_config,
                "from_config": classmethod(
                    lambda cls, config: loader.from_config(config)
                ),
            },
        )
        _register_as(cls, loader.KEY, loader)
        cache[base] = cls
    return cache[base]


def combined_attention_class(base):
    """``SpectralMultiHeadAttention`` mixed into the MHA subclass ``base``."""

    def get_config(self):
        return {
            "attention_class": keras.saving.get_registered_name(base),
            "config": SpectralMultiHeadAttention.get_config(self),
        }

    return _class_loaded_by(
        MSVPAttentionSubclass,
        _COMBINED,
        base,
        f"Spectral{base.__name__}",
        (SpectralMultiHeadAttention, base),
        get_config,
    )


class MSVPAttentionSubclass:
    """Loader of a `MultiHeadAttention` subclass converted by `apply_msvp`."""

    KEY = ATTENTION_LOADER

    @classmethod
    def from_config(cls, config):
        base = keras.saving.get_registered_object(config["attention_class"])
        if base is None:
            raise ValueError(
                "Cannot rebuild an MSVP attention layer: its original class is not "
                "registered (decorate it with keras.saving.register_keras_serializable "
                "or pass it in custom_objects). "
                f"Received: attention_class={config['attention_class']!r}"
            )
        combined = combined_attention_class(base)
        return base.from_config.__func__(combined, dict(config["config"]))

    def get_config(self):  # pragma: no cover - never instantiated
        return {}


keras.saving.get_custom_objects()[ATTENTION_LOADER] = MSVPAttentionSubclass


def _converted_model_class(base):
    """Subclass of the model class ``base`` that reloads with MSVP attention."""

    def get_config(self):
        return {
            "msvp": dict(self._msvp_settings),
            "base": _serialized_as(self, base),
        }

    return _class_loaded_by(
        MSVPConvertedModel, _CONVERTED, base, base.__name__, (base,), get_config
    )


class MSVPConvertedModel:
    """Loader of a model converted by `apply_msvp` whose layers build attention."""

    KEY = MODEL_LOADER

    @classmethod
    def from_config(cls, config):
        settings = config["msvp"]
        with mha_constructed_as_spectral(
            settings["penalty"], settings["power_iterations"]
        ):
            model = keras.saving.deserialize_keras_object(config["base"])
        return mark_converted(model, settings)

    def get_config(self):  # pragma: no cover - never instantiated
        return {}


keras.saving.get_custom_objects()[MODEL_LOADER] = MSVPConvertedModel


def is_converted_model(model):
    """Whether ``model`` is of a class made by `mark_converted`."""
    return isinstance(model, tuple(_CONVERTED.values()))


def mark_converted(model, settings):
    """Makes ``model`` of a subclass of its class that reloads with MSVP attention.

    Args:
        model: A model converted by `apply_msvp`.
        settings: ``{"penalty": ..., "power_iterations": ...}``.

    Returns:
        ``model`` itself, its class changed.
    """
    base = model.__class__
    if base in _CONVERTED.values():
        base = base.__mro__[1]
    model.__class__ = _converted_model_class(base)
    object.__setattr__(model, "_msvp_settings", dict(settings))
    return model


@contextlib.contextmanager
def mha_constructed_as_spectral(penalty, power_iterations):
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
    _Spectral._msvp_built_in_build = True
    keras.layers.MultiHeadAttention = _Spectral
    try:
        yield _Spectral
    finally:
        keras.layers.MultiHeadAttention = _MHA
