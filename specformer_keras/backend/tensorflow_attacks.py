"""TensorFlow compilation of attack loops (FGSM, PGD and the AutoAttack components).

`compile_body(model, key, body)` wraps ``body(evaluate_fn, logits_fn, *tensors)``
(a pure ``keras.ops`` function, loops included) in
``tf.function(jit_compile=True)``, with the live model run in inference mode
(``training=False``) and input gradients from a ``tf.GradientTape`` that
watches only the input. Compiled functions are cached per model (weakly) and
``key`` (`compile_cache`); TensorFlow retraces per input shape.
"""

import numpy as np
import tensorflow as tf

from specformer_keras.backend.compile_cache import (
    cached_compile_body,
    inference_logits,
)


def build_runner(model, body):
    """``run(*arrays)``: ``body`` under ``tf.function(jit_compile=True)``."""

    def logits_fn(x):
        return inference_logits(model, x)

    def evaluate_fn(loss_fn, x, *loss_args):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            logits = logits_fn(x)
            loss = loss_fn(logits, *loss_args)
            total = tf.reduce_sum(loss)
        grad = tape.gradient(
            total, x, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return loss, grad, logits

    compiled = tf.function(
        lambda *tensors: body(evaluate_fn, logits_fn, *tensors), jit_compile=True
    )

    def run(*arrays):
        outputs = compiled(*[tf.convert_to_tensor(a) for a in arrays])
        return tuple(np.asarray(o) for o in outputs)

    return run


compile_body = cached_compile_body(build_runner)
_CACHE = compile_body.cache  # {model: {key: run}}
