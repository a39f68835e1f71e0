"""Local Lipschitz diagnostics against exact references (SVD, analytic, finite differences).

Runs on every backend (KERAS_BACKEND=tensorflow|jax|torch).
"""

import keras
import numpy as np
import pytest
from keras import ops
from testing import tiny_vit

from specformer_keras.backend import backend_module
from specformer_keras.diagnostics import (
    attention_bound,
    attention_layers,
    lipschitz_report,
    local_lipschitz,
    summarize,
)


def _matrix_with_gap(rows, cols, singular_values, seed=0):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(rows, rows)))
    v, _ = np.linalg.qr(rng.normal(size=(cols, cols)))
    s = np.zeros((rows, cols))
    s[np.arange(len(singular_values)), np.arange(len(singular_values))] = (
        singular_values
    )
    return (u @ s @ v.T).astype("float32")


def _numpy(fn, x):
    return np.asarray(ops.convert_to_numpy(fn(ops.convert_to_tensor(x))), np.float64)


def _full_jacobians(fn, x):
    """Per-example Jacobians (batch, out, in) from JVPs with the basis vectors."""
    jac = backend_module("jacobian")
    n, size = x.shape[0], int(np.prod(x.shape[1:]))
    columns = []
    for k in range(size):
        e = np.zeros((n, size), "float32")
        e[:, k] = 1.0
        _, jv = jac.jvp(
            fn, ops.convert_to_tensor(x), ops.convert_to_tensor(e.reshape(x.shape))
        )
        columns.append(np.asarray(ops.convert_to_numpy(jv), np.float64).reshape(n, -1))
    return np.stack(columns, axis=-1)


def test_linear_layer_estimate_is_largest_singular_value():
    kernel = _matrix_with_gap(6, 4, [3.0, 1.5, 0.5, 0.2])
    layer = keras.layers.Dense(4, bias_initializer="ones")
    layer.build((None, 6))
    layer.kernel.assign(kernel)
    x = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    sigma = local_lipschitz(layer, x, iterations=50)
    reference = np.linalg.svd(kernel.astype(np.float64), compute_uv=False)[0]
    np.testing.assert_allclose(sigma, np.full(3, reference), rtol=1e-5)


def test_per_example_estimates_are_separate():
    # f(x) = x^2 / 2 has J = diag(x): ||J||_2 = max_i |x_i| for each example.
    x = np.array([[0.5, -2.0, 1.0], [3.0, 0.1, -0.2]], "float32")
    sigma = local_lipschitz(lambda t: 0.5 * t * t, x, iterations=60)
    np.testing.assert_allclose(sigma, [2.0, 3.0], rtol=1e-5)


def test_vjp_is_the_transpose_of_jvp():
    jac = backend_module("jacobian")
    w = np.random.default_rng(2).normal(size=(5, 4)).astype("float32")

    def fn(t):
        return ops.tanh(ops.matmul(t, w))

    rng = np.random.default_rng(3)
    x, v = (rng.normal(size=(2, 5)).astype("float32") for _ in range(2))
    u = rng.normal(size=(2, 4)).astype("float32")
    y1, jv = jac.jvp(fn, ops.convert_to_tensor(x), ops.convert_to_tensor(v))
    y2, jtu = jac.vjp(fn, ops.convert_to_tensor(x), ops.convert_to_tensor(u))
    np.testing.assert_allclose(
        ops.convert_to_numpy(y1), ops.convert_to_numpy(y2), rtol=1e-6
    )
    lhs = np.sum(u * ops.convert_to_numpy(jv))
    rhs = np.sum(ops.convert_to_numpy(jtu) * v)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5)
    # Analytic: J = diag(1 - tanh^2(x w)) w^T, per example.
    d = 1.0 - np.tanh(x @ w) ** 2
    np.testing.assert_allclose(
        ops.convert_to_numpy(jv), d * (v @ w), rtol=1e-5, atol=1e-6
    )


def test_nonlinear_model_agrees_with_finite_differences():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(3),
        ]
    )
    x = np.random.default_rng(4).normal(size=(4, 6)).astype("float32")
    sigma, v = local_lipschitz(model, x, iterations=100, return_direction=True)
    h = 1e-2
    fd = np.linalg.norm(_numpy(model, x + h * v) - _numpy(model, x - h * v), axis=1) / (
        2 * h
    )
    np.testing.assert_allclose(sigma, fd, rtol=2e-3)
    # And it is the largest singular value of the Jacobian built column by column.
    reference = np.linalg.svd(_full_jacobians(model, x), compute_uv=False)[:, 0]
    np.testing.assert_allclose(sigma, reference, rtol=1e-4)
    # No random direction is amplified more (finite differences, 20 directions).
    dirs = np.random.default_rng(5).normal(size=(20,) + x.shape).astype("float32")
    for d in dirs:
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        ratio = np.linalg.norm(
            _numpy(model, x + h * d) - _numpy(model, x - h * d), axis=1
        )
        assert np.all(ratio / (2 * h) <= sigma * (1 + 2e-3))


def _attention_model(tokens, dim, heads, key_dim):
    inputs = keras.Input((tokens, dim))
    mha = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=key_dim, name="mha")
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(mha(inputs, inputs)))
    return keras.Model(inputs, outputs), mha


@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_attention_estimate_matches_jacobian_svd_and_stays_below_bound(scale):
    keras.utils.set_random_seed(1)
    model, mha = _attention_model(tokens=3, dim=4, heads=2, key_dim=3)
    rng = np.random.default_rng(6)
    for dense in (mha._query_dense, mha._key_dense, mha._value_dense):
        dense.bias.assign(rng.normal(size=dense.bias.shape).astype("float32") * 0.3)
    x = (scale * rng.normal(size=(3, 3, 4))).astype("float32")
    report = lipschitz_report(model, x, iterations=200)
    entry = report["attention"]["mha"]
    assert entry["tokens"] == 3

    def fn(t):
        return mha(t, t, training=False)

    reference = np.linalg.svd(_full_jacobians(fn, x), compute_uv=False)[:, 0]
    np.testing.assert_allclose(entry["estimate"]["per_example"], reference, rtol=1e-3)
    bound = np.asarray(entry["bound"]["per_example"])
    assert np.all(bound >= reference)
    np.testing.assert_allclose(bound, attention_bound(mha, x), rtol=1e-12)
    assert "call" not in mha.__dict__  # the capture wrapper was removed


def test_attention_bound_without_biases_is_the_theory_formula():
    mha = keras.layers.MultiHeadAttention(num_heads=1, key_dim=2, use_bias=False)
    x = np.random.default_rng(7).normal(size=(1, 4, 3)).astype("float32")
    mha(x, x)
    s = {
        name: np.linalg.svd(
            np.asarray(ops.convert_to_numpy(getattr(mha, f"_{name}_dense").kernel))[
                :, 0, :
            ],
            compute_uv=False,
        )[0]
        for name in ("query", "key", "value")
    }
    w_o = np.asarray(ops.convert_to_numpy(mha._output_dense.kernel)).reshape(2, 3)
    r = np.max(np.linalg.norm(x[0], axis=-1))
    n, d = 4, 2
    expected = (
        np.linalg.svd(w_o, compute_uv=False)[0]
        * s["value"]
        * (np.sqrt(n) + n * r**2 * s["query"] * s["key"] / np.sqrt(d))
    )
    np.testing.assert_allclose(attention_bound(mha, x), [expected], rtol=1e-5)


def test_report_on_spectral_vit():
    model = tiny_vit(depth=2)
    x = np.random.default_rng(8).uniform(size=(5, 8, 8, 3)).astype("float32")
    report = lipschitz_report(model, x, iterations=30, batch_size=2)
    assert report["n"] == 5 and report["backend"] == keras.config.backend()
    assert sorted(report["attention"]) == [
        layer.path for layer in attention_layers(model)
    ]
    assert len(report["model"]["per_example"]) == 5
    # The whole model's estimate agrees with finite differences along its own direction.
    sigma, v = local_lipschitz(model, x[:2], iterations=30, return_direction=True)
    np.testing.assert_allclose(sigma, report["model"]["per_example"][:2], rtol=1e-3)
    h = 1e-3
    fd = np.linalg.norm(
        _numpy(model, x[:2] + h * v) - _numpy(model, x[:2] - h * v), axis=1
    )
    np.testing.assert_allclose(sigma, fd / (2 * h), rtol=1e-2)
    for entry in report["attention"].values():
        assert entry["estimate"]["max"] <= entry["bound"]["max"]
        assert entry["ratio_median"] >= 1.0


def test_arguments_are_validated():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="Received: iterations=0"):
        local_lipschitz(model, np.zeros((1, 2), "float32"), iterations=0)
    with pytest.raises(ValueError, match="batch axis"):
        local_lipschitz(model, np.zeros((2,), "float32"))
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        lipschitz_report(model, np.zeros((1, 2), "float32"), batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_cross_attention_is_refused():
    q = keras.Input((3, 4))
    kv = keras.layers.Dense(4)(q)
    mha = keras.layers.MultiHeadAttention(num_heads=1, key_dim=2, name="cross")
    model = keras.Model(q, mha(q, kv))
    with pytest.raises(ValueError, match="self-attention"):
        lipschitz_report(model, np.ones((1, 3, 4), "float32"), iterations=1)


def test_plot_lipschitz_per_layer(tmp_path):
    from specformer_keras.plots import plot_lipschitz_per_layer

    model = tiny_vit(penalty=0.0, hidden_dim=8, depth=2, mlp_dim=8)
    x = np.random.default_rng(9).uniform(size=(2, 8, 8, 3)).astype("float32")
    report = lipschitz_report(model, x, iterations=3)
    path = tmp_path / "lipschitz.png"
    fig = plot_lipschitz_per_layer(
        {"vanilla": report, "msvp": [report, report]}, path=path
    )
    assert path.stat().st_size > 0 and len(fig.axes) == 2
    with pytest.raises(ValueError, match="non-empty dict"):
        plot_lipschitz_per_layer([])
