"""Diagnostics of trained models: local Lipschitz constants (`lipschitz`), the
theory bound of self-attention layers (`attention`), and local constants of
each encoder block's sub-layers (`blocks`)."""

from specformer_keras.diagnostics.attention import (
    attention_bound,
    attention_layers,
    capture_layer_inputs,
)
from specformer_keras.diagnostics.blocks import (
    MAP_INPUTS,
    MAPS,
    block_lipschitz_report,
    encoder_blocks,
    sublayer_inputs,
    sublayer_maps,
)
from specformer_keras.diagnostics.lipschitz import (
    lipschitz_report,
    local_lipschitz,
    summarize,
)

__all__ = [
    "MAP_INPUTS",
    "MAPS",
    "attention_bound",
    "block_lipschitz_report",
    "encoder_blocks",
    "sublayer_inputs",
    "sublayer_maps",
    "attention_layers",
    "capture_layer_inputs",
    "lipschitz_report",
    "local_lipschitz",
    "summarize",
]
