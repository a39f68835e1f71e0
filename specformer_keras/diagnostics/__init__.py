"""Diagnostics of trained models: local Lipschitz constants (`lipschitz`) and the
theory bound of self-attention layers (`attention`)."""

from specformer_keras.diagnostics.attention import (
    attention_bound,
    attention_layers,
    capture_layer_inputs,
)
from specformer_keras.diagnostics.lipschitz import (
    lipschitz_report,
    local_lipschitz,
    summarize,
)

__all__ = [
    "attention_bound",
    "attention_layers",
    "capture_layer_inputs",
    "lipschitz_report",
    "local_lipschitz",
    "summarize",
]
