"""`ProcessLayout`, `process_layout()`, `initialize()` and `shard_indices()`."""

import dataclasses
import numbers

import keras
import numpy as np

from specformer_keras.backend import backend_module

ENGINES = (
    "single",
    "tf.distribute.MultiWorkerMirroredStrategy",
    "jax.distributed",
    "torch.distributed",
)


@dataclasses.dataclass(frozen=True)
class ProcessLayout:
    """Where this process stands among the processes of one run.

    Args:
        backend: the Keras backend (``keras.config.backend()``).
        process_index: this process, ``0 .. process_count - 1``.
        process_count: number of processes (hosts) in the run.
        local_devices: devices of the active backend in this process.
        engine: what connects the processes: ``"single"`` (one process),
            ``"tf.distribute.MultiWorkerMirroredStrategy"``,
            ``"jax.distributed"`` or ``"torch.distributed"``.

    Raises:
        ValueError: an index outside ``range(process_count)``, a count or
            device number below 1, or an unknown engine.

    Example:

    ```python
    from specformer_keras.distributed import ProcessLayout

    layout = ProcessLayout("jax", 1, 2, 8, "jax.distributed")
    assert layout.to_dict()["process_count"] == 2
    assert not layout.is_primary
    ```
    """

    backend: str
    process_index: int
    process_count: int
    local_devices: int
    engine: str

    def __post_init__(self):
        for name in ("process_index", "process_count", "local_devices"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise ValueError(
                    f"Argument `{name}` must be an integer. Received: {name}={value!r}"
                )
        if self.process_count < 1:
            raise ValueError(
                "Argument `process_count` must be at least 1. "
                f"Received: process_count={self.process_count!r}"
            )
        if not 0 <= self.process_index < self.process_count:
            raise ValueError(
                "Argument `process_index` must be in range(process_count) "
                f"(process_count={self.process_count}). "
                f"Received: process_index={self.process_index!r}"
            )
        if self.local_devices < 1:
            raise ValueError(
                "Argument `local_devices` must be at least 1. "
                f"Received: local_devices={self.local_devices!r}"
            )
        if self.engine not in ENGINES:
            raise ValueError(
                f"Argument `engine` must be one of {ENGINES}. "
                f"Received: engine={self.engine!r}"
            )
        if (self.engine == "single") != (self.process_count == 1):
            raise ValueError(
                'Argument `engine` must be "single" exactly when process_count == 1. '
                f"Received: engine={self.engine!r}, "
                f"process_count={self.process_count!r}"
            )

    @property
    def is_primary(self):
        """True on process 0, the one that writes shared files and reports."""
        return self.process_index == 0

    def to_dict(self):
        """The fields as a JSON-serializable dict (for reports)."""
        return dataclasses.asdict(self)


def process_layout():
    """The layout the active backend's engine reports for this process.

    * JAX: `jax.process_index()` / `jax.process_count()` (more than one process
      once `jax.distributed.initialize` ran), `jax.local_device_count()`.
    * TensorFlow: the cluster resolver of the `MultiWorkerMirroredStrategy`
      in whose scope this runs, or the one `initialize()` created (which it
      creates now if ``TF_CONFIG`` names several tasks).
    * torch: `torch.distributed` rank and world size once the default process
      group is initialized.
    * Otherwise one process (engine ``"single"``).

    Returns:
        A `ProcessLayout`.

    Example:

    ```python
    from specformer_keras.distributed import process_layout

    print(process_layout().to_dict())
    ```
    """
    fields = backend_module("collectives").layout_fields()
    return ProcessLayout(backend=keras.config.backend(), **fields)


def initialize():
    """Starts the active backend's multi-process engine from environment variables.

    Call it once, at the start of the program, before the backend runs
    anything (JAX and TensorFlow configure their collectives at start-up).
    Nothing happens when the environment describes one process. Calling it
    again returns the same layout.

    * TensorFlow: ``TF_CONFIG`` (cluster and task) ->
      `tf.distribute.MultiWorkerMirroredStrategy()`, kept for
      `process_layout()` and `allgather_objects()`; its `scope()` is
      ``backend_module("collectives").strategy().scope()``.
    * JAX: ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
      ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` ->
      `jax.distributed.initialize(...)`; with only ``JAX_COORDINATOR_ADDRESS``
      or none of them, JAX's own cluster detection (SLURM, Open MPI,
      Kubernetes, Cloud TPU) fills in the rest.
    * torch: ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` (what
      ``torchrun`` sets) -> `torch.distributed.init_process_group` with
      ``init_method="env://"`` (``gloo`` on CPU, ``nccl`` with CUDA).

    Returns:
        The `ProcessLayout` after initialization.

    Raises:
        ValueError: an environment variable that is not a valid number or
            address (named in the message).

    Example:

    ```python
    from specformer_keras.distributed import initialize

    layout = initialize()   # no TF_CONFIG / JAX_* / WORLD_SIZE here: one process
    assert layout.process_count == 1
    ```
    """
    backend_module("collectives").initialize()
    return process_layout()


def shard_indices(n, layout=None):
    """This process's contiguous, balanced share of ``range(n)``.

    Process ``i`` of ``k`` gets ``range(i * n // k, (i + 1) * n // k)``: the
    shards are in process order, cover ``range(n)`` exactly once and differ in
    size by at most one.

    Args:
        n: number of items (an integer >= 0).
        layout: a `ProcessLayout`; default `process_layout()`.

    Returns:
        A 1-D int64 NumPy array of indices (possibly empty).

    Raises:
        ValueError: ``n`` not an integer >= 0, or ``layout`` not a
            `ProcessLayout`.

    Example:

    ```python
    from specformer_keras.distributed import ProcessLayout, shard_indices

    second = ProcessLayout("jax", 1, 2, 1, "jax.distributed")
    assert list(shard_indices(5, second)) == [2, 3, 4]
    ```
    """
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
        raise ValueError(f"Argument `n` must be an integer >= 0. Received: n={n!r}")
    if layout is None:
        layout = process_layout()
    if not isinstance(layout, ProcessLayout):
        raise ValueError(
            f"Argument `layout` must be a ProcessLayout or None. Received: "
            f"layout={layout!r}"
        )
    n = int(n)
    start = layout.process_index * n // layout.process_count
    stop = (layout.process_index + 1) * n // layout.process_count
    return np.arange(start, stop, dtype=np.int64)
