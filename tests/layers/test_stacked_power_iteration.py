"""One batched power iteration per layer: same numbers as one per projection.

`stacked_power_iteration` runs the query/key/value power iterations of a layer
as one batched matmul; these tests hold it and the layer's training call to a
float64 NumPy reference of the per-projection algorithm (the layer's code before
stacking), to its analytic gradient, and keep the `u`/`v` variables' names,
shapes and order (old checkpoints load unchanged).
"""

import keras
import numpy as np
import pytest
from autodiff import grad_wrt_variable

from specformer_keras import SpectralMultiHeadAttention
from specformer_keras.spectral import (
    power_iteration,
    spectral_norm_estimate,
    stacked_power_iteration,
)


def numpy_step(kernel, u, iterations=1):
    """The per-projection algorithm in float64: `(u, v, sigma)` per head."""
    w = np.asarray(kernel, np.float64)
    u = np.asarray(u, np.float64)
    for _ in range(iterations):
        v = np.einsum("dhk,hd->hk", w, u)
        v /= np.sqrt(np.sum(v**2, axis=-1, keepdims=True) + 1e-12)
        u = np.einsum("dhk,hk->hd", w, v)
        u /= np.sqrt(np.sum(u**2, axis=-1, keepdims=True) + 1e-12)
    return u, v, np.einsum("hd,dhk,hk->h", u, w, v)


def numpy_of(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.mark.parametrize("iterations", [1, 3])
def test_stacked_equals_each_kernel_alone(iterations):
    rng = np.random.default_rng(0)
    heads = (2, 3, 1)
    kernels = [rng.normal(size=(8, h, 5)).astype("float32") for h in heads]
    us = [rng.normal(size=(h, 8)).astype("float32") for h in heads]
    sigma, new_us, new_vs = stacked_power_iteration(kernels, us, iterations)
    assert tuple(sigma.shape) == (sum(heads),)
    start = 0
    for kernel, u0, u, v, h in zip(kernels, us, new_us, new_vs, heads):
        ref_u, ref_v, ref_sigma = numpy_step(kernel, u0, iterations)
        np.testing.assert_allclose(numpy_of(u), ref_u, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(numpy_of(v), ref_v, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            numpy_of(sigma)[start : start + h], ref_sigma, rtol=1e-5
        )
        # The public one-kernel functions agree too.
        one_u, one_v = power_iteration(kernel, u0, iterations)
        np.testing.assert_allclose(numpy_of(one_u), ref_u, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            numpy_of(spectral_norm_estimate(kernel, one_u, one_v)), ref_sigma, rtol=1e-5
        )
        start += h


def test_stacked_sigma_gradient_is_u_v_outer_product_per_kernel():
    rng = np.random.default_rng(1)
    variables = [
        keras.Variable(rng.normal(size=(6, h, 4)).astype("float32")) for h in (2, 3)
    ]
    us = [rng.normal(size=(h, 6)).astype("float32") for h in (2, 3)]
    weights = np.array([1.0, 2.0, 3.0, 4.0, 5.0], "float32")

    def penalty():
        sigma, _, _ = stacked_power_iteration([v.value for v in variables], us)
        return keras.ops.sum(keras.ops.convert_to_tensor(weights) * sigma * sigma)

    start = 0
    for variable, u0 in zip(variables, us):
        grad = grad_wrt_variable(penalty, variable)
        u, v, sigma = numpy_step(variable.numpy(), u0)
        lam = weights[start : start + len(sigma)]
        analytic = np.einsum("h,hd,hk->dhk", 2 * lam * sigma, u, v)
        np.testing.assert_allclose(grad, analytic, rtol=1e-4, atol=1e-6)
        start += len(sigma)


@pytest.mark.parametrize(
    "kernels, us, iterations, match",
    [
        ([], [], 1, "non-empty sequence"),
        ([np.ones((4, 2, 3))], [], 1, "len\\(us\\)=0"),
        ([np.ones((4, 2, 3)), np.ones((4, 2, 5))], [np.ones((2, 4))] * 2, 1, "share"),
        ([np.ones((4, 2))], [np.ones((2, 4))], 1, "kernel.shape=\\(4, 2\\)"),
        ([np.ones((4, 2, 3))], [np.ones((2, 4))], 0, "Received: iterations=0"),
    ],
)
def test_stacked_bad_arguments_are_named(kernels, us, iterations, match):
    with pytest.raises(ValueError, match=match):
        stacked_power_iteration(kernels, us, iterations)


def make_layer(penalty, value_shape):
    layer = SpectralMultiHeadAttention(num_heads=3, key_dim=4, penalty=penalty, seed=5)
    layer.build((None, 5, 12), value_shape)
    return layer


@pytest.mark.parametrize(
    "penalty, value_shape, stacks",
    [
        # Self-attention: query, key and value in one stack, one lambda.
        (1e-2, (None, 5, 12), [("query", "key", "value")]),
        # Separate lambdas (a per-head weight vector), key unpenalized.
        ((1e-2, 0.0, 3e-2), (None, 5, 12), [("query", "value")]),
        # Cross-attention: the query kernel is (12, 3, 4), key/value (7, 3, 4).
        ((1e-2, 2e-2, 3e-2), (None, 4, 7), [("query",), ("key", "value")]),
    ],
)
def test_training_call_equals_per_projection_reference(penalty, value_shape, stacks):
    layer = make_layer(penalty, value_shape)
    assert [names for names, _ in layer._stacks] == stacks
    # Variables as before stacking: names, shapes, order (checkpoints load as is).
    expected = []
    for name in layer.penalized_projections:
        d_in, heads, head_dim = getattr(layer, f"{name}_dense").kernel.shape
        expected += [(f"{name}_u", (heads, d_in)), (f"{name}_v", (heads, head_dim))]
    assert [(w.name, tuple(w.shape)) for w in layer.non_trainable_weights] == expected
    before = {w.name: w.numpy().copy() for w in layer.non_trainable_weights}
    rng = np.random.default_rng(0)
    query = rng.random((2, 5, 12)).astype("float32")
    value = rng.random((2,) + value_shape[1:]).astype("float32")
    layer(query, value, training=True)
    loss = 0.0
    for name in layer.penalized_projections:
        kernel = getattr(layer, f"{name}_dense").kernel.numpy()
        u, v, sigma = numpy_step(kernel, before[f"{name}_u"])
        state = layer._spectral_state[name]
        np.testing.assert_allclose(state[0].numpy(), u, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state[1].numpy(), v, rtol=1e-5, atol=1e-6)
        loss += layer.lambdas[name] * np.sum(sigma**2)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(numpy_of(layer.losses[0])), loss, rtol=1e-5)
    # The non-updating penalty (per projection) reads the same state.
    np.testing.assert_allclose(
        float(numpy_of(layer.msvp_penalty(update=False))), loss, rtol=1e-5
    )
