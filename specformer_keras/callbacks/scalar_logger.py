"""`ScalarLogger`: the epoch logs as TensorBoard scalars, without TensorFlow."""

import os

import keras
import numpy as np

from specformer_keras.callbacks.event_writer import EventWriter, require_writer


class ScalarLogger(keras.callbacks.Callback):
    """Writes the epoch logs (losses, metrics, learning rate) as TensorBoard scalars.

    The epoch scalars of `keras.callbacks.TensorBoard`, in its layout
    (`<log_dir>/train` and `<log_dir>/validation`, tags `epoch_loss`,
    `epoch_accuracy`, ..., `epoch_learning_rate`), written without TensorFlow
    (`EventWriter`), so it works on JAX and torch with TensorFlow absent.
    Non-numeric log values are skipped; NaN is written as NaN.

    Args:
        log_dir: The TensorBoard folder.

    Example:

    ```python
    import tempfile
    import numpy as np
    import keras
    from specformer_keras.callbacks import ScalarLogger

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "mse")
    model.fit(np.zeros((4, 3)), np.zeros((4, 2)), epochs=2, verbose=0,
              validation_data=(np.zeros((2, 3)), np.zeros((2, 2))),
              callbacks=[ScalarLogger(tempfile.mkdtemp())])
    ```
    """

    def __init__(self, log_dir):
        super().__init__()
        if not isinstance(log_dir, (str, os.PathLike)) or not str(log_dir):
            raise TypeError(
                f"Argument `log_dir` must be a folder path. Received: log_dir={log_dir!r}"
            )
        require_writer("ScalarLogger")
        self.log_dir = str(log_dir)
        self._writers = {}

    def _writer(self, name):
        if name not in self._writers:
            self._writers[name] = EventWriter(os.path.join(self.log_dir, name))
        return self._writers[name]

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        rate = self._learning_rate()
        if rate is not None and "learning_rate" not in logs:
            logs["learning_rate"] = rate
        for key, value in sorted(logs.items()):
            value = _as_float(value)
            if value is None:
                continue
            if key.startswith("val_"):
                self._writer("validation").scalar(f"epoch_{key[4:]}", value, epoch)
            else:
                self._writer("train").scalar(f"epoch_{key}", value, epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _learning_rate(self):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return None
        try:
            return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        except Exception:  # a schedule or an optimizer without one
            return None


def _as_float(value):
    try:
        value = float(np.asarray(keras.ops.convert_to_numpy(value)).reshape(()))
    except Exception:
        return None
    return value
