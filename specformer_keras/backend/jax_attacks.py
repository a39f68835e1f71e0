"""JAX compilation of attack loops (FGSM, PGD and the AutoAttack components).

`compile_body(model, key, body)` wraps ``body(evaluate_fn, logits_fn, *tensors)``
(a pure ``keras.ops`` function, loops included) in ``jax.jit`` over
``model.stateless_call(trainable, non_trainable, x, training=False)``; the
variable values are arguments of the compiled function (not baked-in
constants), so the cache stays valid when the weights change. Input gradients
come from ``jax.value_and_grad`` with respect to ``x``. Compiled functions are
cached per model (weakly) and ``key`` (`compile_cache`); JAX retraces per
input shape.
"""

import jax
import numpy as np
from keras import ops

from specformer_keras.backend.compile_cache import cached_compile_body


def build_runner(model, body):
    """``run(*arrays)``: ``body`` under ``jax.jit`` (see module docstring)."""

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
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        outputs = compiled(trainable, non_trainable, *arrays)
        return tuple(np.asarray(o) for o in outputs)

    return run


compile_body = cached_compile_body(build_runner)
_CACHE = compile_body.cache  # {model: {key: run}}
