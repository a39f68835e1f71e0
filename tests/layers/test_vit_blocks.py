"""ViT building blocks: the layer harness, argument validation, unknown keyword arguments."""

import keras
import numpy as np
import pytest
from testing import run_layer_test

from specformer_keras import SpectralMultiHeadAttention
from specformer_keras.layers import (
    ClassTokenAndPosition,
    EncoderBlock,
    PatchEmbedding,
    StochasticDepth,
)

BLOCK = dict(hidden_dim=8, num_heads=2, mlp_dim=8)


@pytest.mark.parametrize(
    "layer_cls, init_kwargs, input_shape, output_shape, trainable, state",
    [
        # Conv kernel and bias.
        (
            PatchEmbedding,
            dict(patch_size=4, hidden_dim=8),
            (2, 8, 8, 3),
            (2, 4, 8),
            2,
            0,
        ),
        # Class token and positions; positions only.
        (ClassTokenAndPosition, dict(num_patches=4), (2, 4, 8), (2, 5, 8), 2, 0),
        (
            ClassTokenAndPosition,
            dict(num_patches=4, use_class_token=False),
            (2, 4, 8),
            (2, 4, 8),
            1,
            0,
        ),
        (StochasticDepth, dict(rate=0.5, seed=0), (4, 3, 2), (4, 3, 2), 0, 0),
        # 2 LayerNorms, attention (q, k, v, o), 2 Dense: 16; u and v of q, k, v.
        (
            EncoderBlock,
            dict(**BLOCK, penalty=1e-2, seed=0),
            (2, 3, 8),
            (2, 3, 8),
            16,
            6,
        ),
        (
            EncoderBlock,
            dict(**BLOCK, penalty=(0.0, 0.0, 1e-2), drop_path_rate=0.1, seed=0),
            (2, 3, 8),
            (2, 3, 8),
            16,
            2,
        ),
        (
            EncoderBlock,
            dict(**BLOCK, attention_cls=keras.layers.MultiHeadAttention),
            (2, 3, 8),
            (2, 3, 8),
            16,
            0,
        ),
    ],
    ids=[
        "PatchEmbedding",
        "ClassTokenAndPosition",
        "ClassTokenAndPosition-no-token",
        "StochasticDepth",
        "EncoderBlock-msvp",
        "EncoderBlock-value-only",
        "EncoderBlock-plain",
    ],
)
def test_layer_harness(
    layer_cls, init_kwargs, input_shape, output_shape, trainable, state
):
    run_layer_test(
        layer_cls,
        init_kwargs,
        input_shape=input_shape,
        expected_output_shape=output_shape,
        expected_num_trainable_weights=trainable,
        expected_num_non_trainable_weights=state,
    )


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
