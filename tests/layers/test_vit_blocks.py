"""ViT building blocks: argument validation and unknown keyword arguments."""

import keras
import numpy as np
import pytest

from specformer_keras import SpectralMultiHeadAttention
from specformer_keras.layers import (
    ClassTokenAndPosition,
    EncoderBlock,
    PatchEmbedding,
    StochasticDepth,
)

BLOCK = dict(hidden_dim=8, num_heads=2, mlp_dim=8)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: PatchEmbedding(4, 8, **kw),
        lambda **kw: ClassTokenAndPosition(4, **kw),
        lambda **kw: StochasticDepth(0.1, **kw),
        lambda **kw: EncoderBlock(**BLOCK, **kw),
    ],
    ids=["PatchEmbedding", "ClassTokenAndPosition", "StochasticDepth", "EncoderBlock"],
)
def test_unknown_keyword_arguments_are_refused(make):
    with pytest.raises(
        TypeError,
        match=r"Unrecognized keyword arguments passed to \w+.*'hidden_dims'.*Received",
    ):
        make(hidden_dims=32)
    layer = make(name="ok", dtype="float32", trainable=False)  # base Layer arguments
    assert (layer.name, layer.trainable) == ("ok", False)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: PatchEmbedding(0, 8), ValueError, "Received: patch_size=0"),
        (lambda: PatchEmbedding(4, 8.0), TypeError, "Received: hidden_dim=8.0"),
        (lambda: ClassTokenAndPosition(-1), ValueError, "Received: num_patches=-1"),
        (
            lambda: ClassTokenAndPosition(4, use_class_token="no"),
            TypeError,
            "Received: use_class_token='no'",
        ),
        (lambda: StochasticDepth(1.0), ValueError, r"\[0, 1\).*Received: rate=1.0"),
        (lambda: StochasticDepth("x"), TypeError, "Received: rate='x'"),
        (
            lambda: EncoderBlock(**{**BLOCK, "hidden_dim": 9}),
            ValueError,
            "hidden_dim=9, num_heads=2",
        ),
        (
            lambda: EncoderBlock(**BLOCK, attention_dropout=-0.1),
            ValueError,
            "Received: attention_dropout=-0.1",
        ),
        (
            lambda: EncoderBlock(**BLOCK, power_iterations=0),
            ValueError,
            "Received: power_iterations=0",
        ),
        (
            lambda: EncoderBlock(**BLOCK, penalty=-1.0),
            ValueError,
            "Received: penalty=-1.0",
        ),
        (
            lambda: EncoderBlock(**BLOCK, attention_cls="no_such>Layer"),
            ValueError,
            "Received: attention_cls='no_such>Layer'",
        ),
        (
            lambda: EncoderBlock(**BLOCK, attention_cls=len),
            TypeError,
            "Received: attention_cls=",
        ),
        (
            # A plain attention class would silently drop the penalty.
            lambda: EncoderBlock(
                **BLOCK, penalty=1e-3, attention_cls=keras.layers.MultiHeadAttention
            ),
            ValueError,
            "would ignore it.*Received: penalty=0.001",
        ),
    ],
)
def test_invalid_arguments_raise_clear_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_attention_class_by_registered_name_and_plain_attention():
    block = EncoderBlock(
        **BLOCK, attention_cls="specformer_keras>SpectralMultiHeadAttention"
    )
    assert isinstance(block.attention, SpectralMultiHeadAttention)
    plain = EncoderBlock(**BLOCK, attention_cls=keras.layers.MultiHeadAttention)
    x = np.zeros((2, 3, 8), "float32")
    assert tuple(plain(x).shape) == (2, 3, 8)
    assert not isinstance(plain.attention, SpectralMultiHeadAttention)
    restored = EncoderBlock.from_config(plain.get_config())
    assert restored.attention_cls is keras.layers.MultiHeadAttention
