"""JAX compilation of attack loops (FGSM, PGD and the AutoAttack components).

`compile_body(model, key, body)` wraps ``body(evaluate_fn, logits_fn, *tensors)``
(a pure ``keras.ops`` function, loops included) in ``jax.jit`` over
``model.stateless_call(trainable, non_trainable, x, training=False)``; the
variable values are arguments of the compiled function (not baked-in
constants), so the cache stays valid when the weights change. Input gradients
come from ``jax.value_and_grad`` with respect to ``x``. Compiled functions are
cached per model (weakly) and ``key`` (`compile_cache`); JAX retraces per
input shape and sharding.

All local devices: with more than one (`data_mesh`), each call places the
batch sharded along its first axis over a mesh of them
(``NamedSharding(mesh, P(axis))``) and the model variables replicated, and
XLA's SPMD partitioner splits the work; the computation, and so the result, is
the one of one device. The mesh is the one of the `keras.distribution` in
force (e.g. `keras.distribution.DataParallel`) when all its devices belong to
this process, else ``jax.local_devices()`` along an axis ``"batch"``. The
batch must be a multiple of the device count (`attacks.runner.run_padded`
pads to ``run.batch_multiple()``); any other batch runs as before, unsharded.
Outputs come back to host numpy.
"""

import jax
import keras
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from keras import ops

from specformer_keras.backend.compile_cache import cached_compile_body

LOCAL_AXIS = "batch"


def data_mesh():
    """``(mesh, axis)`` the attack batches are split over, or None (one device).

    Returns:
        The mesh of the `keras.distribution` in force and its batch axis when
        all its devices are this process's (a mesh spanning other processes
        is left to the sharded evaluation, which gives each process its own
        batches); else, with several local devices, a 1-D mesh of
        ``jax.local_devices()`` along ``"batch"``; None with one device.

    Example:

    ```python
    from specformer_keras.backend.jax_attacks import data_mesh

    layout = data_mesh()  # None on one device
    ```
    """
    distribution = keras.distribution.distribution()
    local = jax.local_devices()
    if distribution is not None:
        mesh = distribution.device_mesh.backend_mesh
        if set(mesh.devices.flat) <= set(local):
            axis = distribution.batch_dim_name or mesh.axis_names[0]
            return (mesh, axis) if mesh.shape[axis] > 1 else None
    if len(local) < 2:
        return None
    return Mesh(np.array(local), (LOCAL_AXIS,)), LOCAL_AXIS


def batch_multiple():
    """Number of devices a batch is split over (1 without `data_mesh`)."""
    layout = data_mesh()
    return 1 if layout is None else layout[0].shape[layout[1]]


def _local_copy(value):
    """A variable's value on this process's devices (replicated ones only)."""
    if getattr(value, "is_fully_addressable", True):
        return value
    if not value.sharding.is_fully_replicated:
        raise ValueError(
            "The attacks need the model's variables replicated on this "
            "process's devices; a variable is sharded over devices of other "
            "processes (model parallelism across hosts is not supported). "
            f"Received: a variable of shape {value.shape} with sharding "
            f"{value.sharding}"
        )
    return value.addressable_data(0)


def place(arrays, variables):
    """``(arrays, variables)`` placed for a call: batch sharded, weights replicated.

    Arrays whose first dimension is the batch (that of the first array) are
    sharded along it over `data_mesh`; everything else is replicated. Without
    a mesh, or with a batch that is not a multiple of the device count, the
    arrays are returned as they are.
    """
    layout = data_mesh()
    variables = jax.tree_util.tree_map(_local_copy, variables)
    if layout is None or not arrays or np.ndim(arrays[0]) == 0:
        return arrays, variables
    mesh, axis = layout
    n = np.shape(arrays[0])[0]
    if n % mesh.shape[axis]:
        return arrays, variables
    batch = NamedSharding(mesh, PartitionSpec(axis))
    replicated = NamedSharding(mesh, PartitionSpec())
    placed = [
        jax.device_put(a, batch if np.ndim(a) and np.shape(a)[0] == n else replicated)
        for a in arrays
    ]
    return placed, jax.device_put(variables, replicated)


def build_runner(model, body):
    """``run(*arrays)``: ``body`` under ``jax.jit`` (see module docstring).

    ``run.batch_multiple()`` is the number of devices a batch is split over
    now: `attacks.runner.run_padded` pads batches to a multiple of it.
    """

    def inner(trainable, non_trainable, *tensors):
        def logits_fn(x):
            logits, _ = model.stateless_call(
                trainable, non_trainable, x, training=False
            )
            return ops.cast(logits, "float32")

        def evaluate_fn(loss_fn, x, *loss_args):
            def total(x):
                logits = logits_fn(x)
                loss = loss_fn(logits, *loss_args)
                return ops.sum(loss), (loss, logits)

            (_, (loss, logits)), grad = jax.value_and_grad(total, has_aux=True)(x)
            return loss, grad, logits

        return body(evaluate_fn, logits_fn, *tensors)

    compiled = jax.jit(inner)

    def run(*arrays):
        variables = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )
        arrays, (trainable, non_trainable) = place(list(arrays), variables)
        outputs = compiled(trainable, non_trainable, *arrays)
        return tuple(np.asarray(o) for o in outputs)

    run.batch_multiple = batch_multiple
    return run


compile_body = cached_compile_body(build_runner)
_CACHE = compile_body.cache  # {model: {key: run}}
