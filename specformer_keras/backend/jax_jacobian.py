"""JAX Jacobian-vector and vector-Jacobian products of a function of the input.

Same names in every backend (``tensorflow_jacobian``, ``torch_jacobian``):

* ``jvp(fn, x, tangent) -> (fn(x), J tangent)``
* ``vjp(fn, x, cotangent) -> (fn(x), J^T cotangent)``
* ``gram_fn(fn) -> step(x, v) -> (J v, J^T J v)``, compiled (here `jax.jit`
  over one `jax.linearize`, whose transpose gives the VJP without a second
  forward pass).

``fn`` maps a batch to a batch (e.g. ``lambda x: model(x, training=False)``)
and may close over Keras variables, which are treated as constants.
"""

import jax


def jvp(fn, x, tangent):
    """``(fn(x), J tangent)`` with ``J`` the Jacobian of ``fn`` at ``x``."""
    return jax.jvp(fn, (x,), (tangent,))


def vjp(fn, x, cotangent):
    """``(fn(x), J^T cotangent)``."""
    y, pullback = jax.vjp(fn, x)
    (grad,) = pullback(cotangent)
    return y, grad


def gram_fn(fn):
    """A compiled ``step(x, v) -> (J v, J^T J v)`` for power iteration on ``J^T J``."""

    def step(x, v):
        _, linear = jax.linearize(fn, x)
        jv = linear(v)
        (jtjv,) = jax.linear_transpose(linear, x)(jv)
        return jv, jtjv

    return jax.jit(step)
