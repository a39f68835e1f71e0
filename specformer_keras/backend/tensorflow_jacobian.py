"""TensorFlow Jacobian-vector and vector-Jacobian products of a function of the input.

Same names in every backend (``jax_jacobian``, ``torch_jacobian``):

* ``jvp(fn, x, tangent) -> (fn(x), J tangent)`` (forward mode,
  `tf.autodiff.ForwardAccumulator`)
* ``vjp(fn, x, cotangent) -> (fn(x), J^T cotangent)`` (`tf.GradientTape`
  watching only ``x``)
* ``gram_fn(fn) -> step(x, v) -> (J v, J^T J v)``, compiled with
  `tf.function` (XLA).

``fn`` maps a batch to a batch and may use Keras variables (constants here).
"""

import tensorflow as tf

_ZERO = tf.UnconnectedGradients.ZERO


def jvp(fn, x, tangent):
    """``(fn(x), J tangent)`` with ``J`` the Jacobian of ``fn`` at ``x``."""
    x = tf.convert_to_tensor(x)
    with tf.autodiff.ForwardAccumulator(x, tf.cast(tangent, x.dtype)) as acc:
        y = fn(x)
    return y, acc.jvp(y, unconnected_gradients=_ZERO)


def vjp(fn, x, cotangent):
    """``(fn(x), J^T cotangent)``."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        y = fn(x)
    grad = tape.gradient(
        y, x, output_gradients=tf.cast(cotangent, y.dtype), unconnected_gradients=_ZERO
    )
    return y, grad


def gram_fn(fn):
    """A compiled ``step(x, v) -> (J v, J^T J v)`` for power iteration on ``J^T J``."""

    def step(x, v):
        _, jv = jvp(fn, x, v)
        _, jtjv = vjp(fn, x, jv)
        return jv, jtjv

    # No Python control flow to convert (and autograph cannot read lambdas' source).
    step = tf.autograph.experimental.do_not_convert(step)
    return tf.function(step, jit_compile=True, reduce_retracing=True)
