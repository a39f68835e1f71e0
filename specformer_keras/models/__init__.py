"""Models: SpectralViT, its presets, and apply_msvp for existing models."""

from specformer_keras.models.convert import apply_msvp
from specformer_keras.models.presets import PRESETS
from specformer_keras.models.spectral_vit import SpectralViT

__all__ = ["PRESETS", "SpectralViT", "apply_msvp"]
