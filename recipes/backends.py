"""The Keras backend, the distribution strategy and XLA, chosen for a recipe run.

`choose_backend` runs before Keras is imported (Keras reads `KERAS_BACKEND`
once, at import). TensorFlow is imported only when it is the backend.
"""

import contextlib
import importlib.util
import json
import os
import sys

from recipes.config import FIELDS, RecipeError

BACKENDS = FIELDS["backend"].metadata["choices"]
EXTRAS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def installed(module):
    """Whether `module` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def default_backend():
    """`$KERAS_BACKEND`, else the first installed of tensorflow, jax, torch.

    Keras itself defaults to tensorflow and fails to import without it; a JAX-
    or torch-only install should run the recipes with no flag.
    """
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    for backend in BACKENDS:
        if installed(backend):
            return backend
    raise RecipeError(
        "No Keras backend is installed: pip install 'specformer-keras[jax]' "
        "(or [torch], [tensorflow])."
    )


def choose_backend(requested):
    """Validates `--backend` (or the default) and sets `KERAS_BACKEND`.

    Args:
        requested: `--backend`, or None for `default_backend()`.

    Returns:
        The backend name.

    Raises:
        RecipeError: unknown or not installed, or Keras already imported with
            another backend.
    """
    backend = requested or default_backend()
    source = "backend" if requested else "KERAS_BACKEND"
    if backend not in BACKENDS:
        raise RecipeError(
            f"--backend must be one of {BACKENDS}. Received: {source}={backend!r}"
        )
    if not installed(backend):
        raise RecipeError(
            f"--backend={backend} needs {backend}, which is not installed: "
            f"pip install 'specformer-keras[{EXTRAS[backend]}]', or choose another "
            f"--backend. Received: {source}={backend!r}"
        )
    if "keras" in sys.modules:
        import keras

        if keras.config.backend() != backend:
            raise RecipeError(
                f"Keras was already imported with backend {keras.config.backend()!r}; "
                f"cannot switch to {backend!r}. Received: {source}={backend!r}"
            )
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return backend


def make_deterministic(backend):
    """Asks the backend for deterministic kernels (call before any op runs).

    TensorFlow: `tf.config.experimental.enable_op_determinism()`, which also runs
    tf.data maps with random ops (augmentation) in order. torch:
    `torch.use_deterministic_algorithms(True, warn_only=True)` (ops without a
    deterministic kernel warn). JAX: XLA on CPU is deterministic for a given
    program; on GPU `--xla_gpu_deterministic_ops` goes into `XLA_FLAGS` (read
    when JAX starts, so this must run before JAX is imported).
    """
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        # cuBLAS reads it when CUDA starts: deterministic GEMM workspaces.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)
    elif "--xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()


def keep_tensorflow_unimported(tf_data):
    """On JAX or torch, stops Keras's probes from importing an installed TensorFlow.

    Keras 3 imports TensorFlow whenever it is installed, whatever the backend,
    from two probes on the recipes' path: `keras.utils.set_random_seed` (to
    seed tf.data) and `serialize_keras_object` (`model.save`, to recognize a
    `tf.TensorShape`). That costs seconds at start and prints TensorFlow's
    oneDNN/CUDA log lines on a JAX or torch run that never uses it. In a
    process that has not imported TensorFlow no TensorFlow object exists, so
    the probes' answer "not installed" is exact: this sets Keras's cached
    answer (`keras.src.utils.module_utils.tensorflow`) to that. Nothing changes
    on the TensorFlow backend, when the input is tf.data (`tf_data`: a TFDS
    dataset, which needs TensorFlow and its seed), or once TensorFlow is
    imported.

    Args:
        tf_data: True when the input pipeline is tf.data.

    Returns:
        True if Keras's probe now answers "not installed".
    """
    import keras

    if keras.config.backend() == "tensorflow" or tf_data or "tensorflow" in sys.modules:
        return False
    try:
        from keras.src.utils.module_utils import tensorflow as lazy_tensorflow
    except ImportError:  # pragma: no cover - only if Keras moves this module.
        return False
    if getattr(lazy_tensorflow, "module", None) is not None:
        return False
    lazy_tensorflow._available = False
    return True


def check_backend_supports(backend, needs_trainer):
    """Refuses, before any data is loaded, what the backend cannot run yet.

    Asks `specformer_keras.backend.backend_module`, the package's one dispatch
    point, for the per-backend modules the run needs: the attacks always (the
    accuracy-vs-eps curve attacks), the trainer for adversarial training.
    """
    from specformer_keras.backend import backend_module

    for concern, needed, what in (
        ("trainer", needs_trainer, "adversarial training (--method=pgd_at/trades)"),
        ("attacks", True, "attacks (--eval_attacks, --curve_attack)"),
    ):
        if not needed:
            continue
        try:
            backend_module(concern)
        except (ImportError, NotImplementedError):
            raise RecipeError(
                f"--backend={backend} does not support {what} in this version of "
                "specformer_keras; use --backend=jax or --backend=tensorflow."
            ) from None


def multi_process_environment():
    """What in the environment starts several processes, or None.

    ``TF_CONFIG`` naming more than one ``chief``/``worker`` task,
    ``JAX_NUM_PROCESSES`` > 1 or ``WORLD_SIZE`` > 1 (torchrun): the variables
    `specformer_keras.distributed.initialize()` reads.
    """
    value = os.environ.get("TF_CONFIG")
    if value:
        try:
            cluster = json.loads(value).get("cluster", {})
            tasks = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
        except (ValueError, AttributeError, TypeError):
            raise RecipeError(
                f"TF_CONFIG must be JSON with a `cluster`. Received: TF_CONFIG={value!r}"
            ) from None
        if tasks > 1:
            return f"TF_CONFIG names {tasks} tasks"
    for name in ("JAX_NUM_PROCESSES", "WORLD_SIZE"):
        if os.environ.get(name, "1").strip() not in ("", "0", "1"):
            return f"{name}={os.environ[name]}"
    return None


def select_distribution(backend):
    """TPUStrategy / MirroredStrategy / default on TF; DataParallel on multi-device JAX.

    Several processes (`multi_process_environment`), every one running the
    same command with its own ``--output_dir``:

    * TensorFlow with ``TF_CONFIG``: one `MultiWorkerMirroredStrategy`
      (`specformer_keras.distributed.initialize()`; the tf.data input is split
      between workers by the strategy).
    * JAX with ``JAX_NUM_PROCESSES`` > 1 (and ``JAX_COORDINATOR_ADDRESS``,
      ``JAX_PROCESS_ID``): `jax.distributed` through
      `specformer_keras.distributed.initialize()` and
      `keras.distribution.DataParallel` over every process's devices with
      ``auto_shard_dataset=False``; the recipe's data stage gives each process
      its block of every global batch (`ImageDataset.slice_for_process`).
    * Anything else is refused: torch (``WORLD_SIZE`` > 1) has no
      multi-device `fit` in Keras 3.15, and ``TF_CONFIG`` is TensorFlow's.

    Returns:
        `(scope_factory, description, replicas)`: a callable returning a context
        manager for model creation and compile, a short text for the logs, and
        the number of tf.distribute replicas in sync (1 off TensorFlow).

    Raises:
        RecipeError: the environment describes several processes that the
            recipes cannot run, or the backend ran operations before the
            multi-process engine could start.
    """
    several = multi_process_environment()
    if several and backend == "tensorflow" and several.startswith("TF_CONFIG"):
        return _multi_worker_strategy()
    if several and backend == "jax" and several.startswith("JAX_NUM_PROCESSES"):
        return _jax_processes()
    if several:
        why = (
            "Keras 3.15 has no multi-device fit on torch (keras.distribution is "
            "JAX-only)"
            if backend == "torch"
            else f"{several.split('=')[0].split()[0]} is another backend's engine"
        )
        raise RecipeError(
            f"This environment starts several processes ({several}), but on "
            f"--backend={backend} the recipes run as one process per run: {why}. "
            "Unset it to use every device of this host, use --backend=tensorflow "
            "with TF_CONFIG or --backend=jax with JAX_NUM_PROCESSES, or see "
            "docs/distributed.md."
        )
    if backend == "jax":
        import jax
        import keras

        devices = jax.devices()
        if len(devices) > 1:
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(devices=devices)
            )
            return (
                contextlib.nullcontext,
                f"jax DataParallel over {len(devices)} devices",
                1,
            )
        return contextlib.nullcontext, f"jax single device ({devices[0].platform})", 1
    if backend == "torch":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return contextlib.nullcontext, f"torch single device ({device})", 1
    return _tensorflow_strategy()


def _multi_worker_strategy():
    from specformer_keras import distributed
    from specformer_keras.backend import backend_module

    try:
        layout = distributed.initialize()
    except RuntimeError as error:
        raise RecipeError(str(error)) from None
    strategy = backend_module("collectives").strategy()
    replicas = strategy.num_replicas_in_sync
    description = (
        f"MultiWorkerMirroredStrategy, worker {layout.process_index} of "
        f"{layout.process_count} ({replicas} replicas)"
    )
    return strategy.scope, description, replicas


def _jax_processes():
    import jax
    import keras

    from specformer_keras import distributed

    try:
        layout = distributed.initialize()
    except (RuntimeError, ValueError) as error:
        raise RecipeError(str(error)) from None
    devices = jax.devices()
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    )
    description = (
        f"jax DataParallel over {len(devices)} devices, process "
        f"{layout.process_index} of {layout.process_count}"
    )
    return contextlib.nullcontext, description, 1


def spans_processes():
    """Whether the active `keras.distribution` spans several JAX processes."""
    if os.environ.get("KERAS_BACKEND") != "jax":
        return False
    import keras

    distribution = keras.distribution.distribution()
    if distribution is None:
        return False
    import jax

    return jax.process_count() > 1


def leave_multi_process_distribution():
    """Ends a multi-process `DataParallel` (before the sharded evaluation).

    `evaluate_robustness` splits the evaluation between processes itself, each
    process attacking its own batches with a model of its own: a model whose
    weights span every process would make each attack step a program of all
    processes on different data. Returns True when there was one to end (the
    model must then be loaded again, without the distribution).
    """
    if not spans_processes():
        return False
    import keras

    keras.distribution.set_distribution(None)
    return True


def _tensorflow_strategy():
    import tensorflow as tf

    if (
        os.environ.get("TPU_NAME")
        or os.environ.get("COLAB_TPU_ADDR")
        or os.path.exists("/dev/accel0")
    ):
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
            replicas = strategy.num_replicas_in_sync
            return strategy.scope, f"TPUStrategy ({replicas} cores)", replicas
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            print(f"No usable TPU ({error}); falling back.", file=sys.stderr)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        description = f"MirroredStrategy over {len(gpus)} GPUs"
    else:
        strategy = tf.distribute.get_strategy()
        description = f"default strategy ({'GPU' if gpus else 'CPU'})"
    return strategy.scope, description, strategy.num_replicas_in_sync


def resolve_jit_compile(setting, backend, replicas):
    """The `jit_compile` argument for `compile()` from the `--jit_compile` flag.

    Keras's own `"auto"` turns XLA off for TensorFlow on CPU-only machines; for
    these ViTs that makes TF steps on CPU 1.1 to 2.8x slower, depending on the
    CPU (see docs/benchmarks.md), so the recipes' `auto` asks for XLA on a
    single TF replica, CPU included. Under a multi-replica `tf.distribute`
    strategy XLA stays Keras's choice (off, except on TPU where everything is
    compiled) and forcing it is refused: an XLA cluster runs on one device
    (keras-team/keras #18145). On JAX and torch `auto` is Keras's choice.

    Args:
        setting: "auto", "true" or "false".
        backend: "tensorflow", "jax" or "torch".
        replicas: number of replicas in sync of the active strategy.

    Returns:
        True, False or "auto".
    """
    if setting == "false":
        return False
    if backend == "tensorflow" and replicas > 1:
        if setting == "true":
            raise RecipeError(
                "--jit_compile=true cannot be used with a multi-replica tf.distribute "
                f"strategy ({replicas} replicas): an XLA cluster runs on one device. "
                "Use --jit_compile=auto or false."
            )
        return "auto"
    if setting == "true" or backend == "tensorflow":
        return True
    return "auto"
