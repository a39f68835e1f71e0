"""Keras layers: the MSVP attention layer and the ViT building blocks."""

from specformer_keras.layers.encoder_block import EncoderBlock, StochasticDepth
from specformer_keras.layers.spectral_attention import SpectralMultiHeadAttention
from specformer_keras.layers.vit_blocks import ClassTokenAndPosition, PatchEmbedding

__all__ = [
    "ClassTokenAndPosition",
    "EncoderBlock",
    "PatchEmbedding",
    "SpectralMultiHeadAttention",
    "StochasticDepth",
]
