"""`EventWriter`: TensorBoard scalars without TensorFlow, on every backend.

Written with tensorboardX when it is installed, otherwise with the
`tensorboard` package's own record writer (`keras.callbacks.TensorBoard`
imports TensorFlow).
"""

import os
import time


def _writer_backend():
    """`"tensorboardX"`, `"tensorboard"` or None: what can write event files."""
    import importlib.util

    for name in ("tensorboardX", "tensorboard"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def require_writer(owner):
    """Raises ImportError naming `owner` when no event writer is installed."""
    if _writer_backend() is None:
        raise ImportError(
            f"{owner}(log_dir=...) writes TensorBoard files with tensorboardX or "
            "tensorboard, and neither is installed: pip install tensorboardX"
        )


class EventWriter:
    """Writes TensorBoard scalars to one folder, without TensorFlow.

    Uses tensorboardX when installed, else the `tensorboard` package's record
    writer and protos on a plain file (its `EventFileWriter` imports
    TensorFlow when TensorFlow is installed, so it is not used). Both are read
    back by TensorBoard and by
    `tensorboard.backend.event_processing.event_accumulator.EventAccumulator`.

    Args:
        log_dir: The folder of the event file (created if needed).

    Example:

    ```python
    import tempfile
    from specformer_keras.callbacks import EventWriter

    writer = EventWriter(tempfile.mkdtemp())
    writer.scalar("loss", 0.5, step=1)
    writer.close()
    ```
    """

    def __init__(self, log_dir):
        require_writer("EventWriter")
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        self._x = self._records = None
        if _writer_backend() == "tensorboardX":
            from tensorboardX import SummaryWriter

            self._x = SummaryWriter(log_dir)
            return
        import socket

        from tensorboard.summary.writer.record_writer import RecordWriter

        name = (
            f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}."
            f"{os.getpid()}.{id(self)}"
        )
        self._records = RecordWriter(open(os.path.join(log_dir, name), "wb"))
        self._write(file_version="brain.Event:2")

    def _write(self, **fields):
        from tensorboard.compat.proto import event_pb2

        event = event_pb2.Event(wall_time=time.time(), **fields)
        self._records.write(event.SerializeToString())

    def scalar(self, tag, value, step):
        """Adds one scalar (NaN allowed) at integer `step`."""
        value, step = float(value), int(step)
        if self._x is not None:
            self._x.add_scalar(tag, value, global_step=step)
            return
        from tensorboard.compat.proto import summary_pb2

        summary = summary_pb2.Summary(
            value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]
        )
        self._write(step=step, summary=summary)

    def flush(self):
        (self._x or self._records).flush()

    def close(self):
        (self._x or self._records).close()
