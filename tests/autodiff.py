"""Test-only gradient helper: the one place tests touch a framework directly."""

import keras
import numpy as np


def grad_wrt_variable(fn, variable):
    """Returns d fn() / d variable as NumPy, where fn() reads `variable`."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(variable.value)
            value = fn()
        grad = tape.gradient(
            value, variable.value, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return np.asarray(grad)
    if backend == "jax":
        import jax

        def wrapped(v):
            with keras.StatelessScope(state_mapping=[(variable, v)]):
                return fn()

        return np.asarray(jax.grad(wrapped)(variable.value))
    if backend == "torch":
        import torch

        # Like tape.watch: a non-trainable variable (u/v) is a parameter with
        # requires_grad=False, so turn it on while fn() runs.
        tensor = variable.value
        tracked = tensor.requires_grad
        tensor.requires_grad_(True)
        try:
            value = fn()
            (grad,) = torch.autograd.grad(value, tensor, allow_unused=True)
        finally:
            tensor.requires_grad_(tracked)
        if grad is None:
            return np.zeros(
                tuple(tensor.shape), keras.backend.standardize_dtype(tensor.dtype)
            )
        return grad.detach().cpu().numpy()
    raise NotImplementedError(backend)
