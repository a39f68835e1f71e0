"""TensorFlow compilation of attack loops (FGSM, PGD and the AutoAttack components).

`compile_body(model, key, body)` wraps ``body(evaluate_fn, logits_fn, *tensors)``
(a pure ``keras.ops`` function, loops included) in
``tf.function(jit_compile=True)``, with the live model run in inference mode
(``training=False``) and input gradients from a ``tf.GradientTape`` that
watches only the input. Compiled functions are cached per model (weakly) and
``key``; TensorFlow retraces per input shape.
"""

import weakref

import numpy as np
import tensorflow as tf
from keras import ops

_CACHE = weakref.WeakKeyDictionary()


def compile_body(model, key, body):
    """Compiled numpy-in / numpy-out runner of ``body`` (see module docstring).

    Args:
        model: Keras model returning logits.
        key: hashable description of the static settings closed over by body.
        body: ``body(evaluate_fn, logits_fn, *tensors) -> tuple of tensors`` with
            ``evaluate_fn(loss_fn, x, *loss_args) -> (loss, d sum(loss)/dx, logits)``.

    Returns:
        ``run(*arrays) -> tuple of numpy arrays``.
    """
    per_model = _CACHE.setdefault(model, {})
    if key in per_model:
        return per_model[key]

    def logits_fn(x):
        return ops.cast(model(x, training=False), "float32")

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

    per_model[key] = run
    return run
