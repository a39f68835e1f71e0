"""`SpectralNormMonitor` (every attention layer's sigma per epoch) and `ScalarLogger`.

TensorBoard event files are written without TensorFlow, on every backend:
with tensorboardX when it is installed, otherwise with the `tensorboard`
package's own event writer. `keras.callbacks.TensorBoard` imports TensorFlow;
`ScalarLogger` writes the same epoch scalars (`epoch_loss`, ...) without it.

One module per callback: `event_writer` (`EventWriter`), `spectral_monitor`
(`SpectralNormMonitor`, `flatten_spectral_norms`, `load_sigma_history`),
`scalar_logger` (`ScalarLogger`); every name is importable from here.
"""

from specformer_keras.callbacks.event_writer import EventWriter
from specformer_keras.callbacks.scalar_logger import ScalarLogger
from specformer_keras.callbacks.spectral_monitor import (
    REDUCTIONS,
    SpectralNormMonitor,
    flatten_spectral_norms,
    load_sigma_history,
)

__all__ = [
    "REDUCTIONS",
    "EventWriter",
    "ScalarLogger",
    "SpectralNormMonitor",
    "flatten_spectral_norms",
    "load_sigma_history",
]
