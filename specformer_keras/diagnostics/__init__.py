"""Diagnostics of trained models: local Lipschitz constants (see `lipschitz`)."""

from specformer_keras.diagnostics.lipschitz import (
    attention_bound,
    attention_layers,
    capture_layer_inputs,
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
