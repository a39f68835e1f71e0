"""SpectralMultiHeadAttention: numerics against SVD/analytic forms, state, config."""

import keras
import numpy as np
import pytest
from autodiff import grad_wrt_variable
from testing import BACKEND, run_layer_test

from specformer_keras import SpectralMultiHeadAttention
from specformer_keras.spectral import exact_spectral_norms

D_MODEL, HEADS, HEAD_DIM = 16, 4, 6


def make_layer(penalty=1e-2, **kwargs):
    layer = SpectralMultiHeadAttention(
        num_heads=HEADS, key_dim=HEAD_DIM, penalty=penalty, seed=3, **kwargs
    )
    layer.build((None, 5, D_MODEL), (None, 5, D_MODEL))
    return layer


def inputs(batch=2, seq=5, seed=0):
    return np.random.default_rng(seed).random((batch, seq, D_MODEL)).astype("float32")


def state(layer):
    return {w.path: np.array(w.numpy()) for w in layer.non_trainable_weights}


def kernel(layer, name):
    return np.asarray(getattr(layer, f"{name}_dense").kernel.numpy(), np.float64)


@pytest.mark.parametrize(
    "penalty, num_state",
    [(1e-2, 6), ((1e-2, 0.0, 3e-2), 4), ((0.0, 1e-2, 0.0), 2), (0.0, 0)],
)
def test_layer_harness(penalty, num_state):
    # Kernels and biases of query, key, value and output; u and v per
    # penalized projection. Query and value differ (cross-attention shapes).
    run_layer_test(
        SpectralMultiHeadAttention,
        dict(num_heads=HEADS, key_dim=HEAD_DIM, penalty=penalty, seed=3),
        input_shape={"query_shape": (2, 5, D_MODEL), "value_shape": (2, 3, 8)},
        expected_output_shape=(2, 5, D_MODEL),
        expected_num_trainable_weights=8,
        expected_num_non_trainable_weights=num_state,
        supports_masking=True,
    )


def test_power_iteration_converges_to_exact_svd_per_head():
    layer = make_layer()
    x = inputs()
    for _ in range(60):
        layer(x, x, training=True)
    estimates = layer.spectral_norms()
    exact = layer.spectral_norms(exact=True)
    for name in ("query", "key", "value"):
        assert estimates[name].shape == (HEADS,)
        np.testing.assert_allclose(estimates[name], exact[name], rtol=1e-2)
        np.testing.assert_allclose(
            exact[name], exact_spectral_norms(kernel(layer, name)), rtol=1e-6
        )


def test_penalty_equals_formula_with_separate_lambdas():
    lambdas = (1e-2, 0.0, 3e-2)
    layer = make_layer(penalty=lambdas)
    x = inputs()
    layer(x, x, training=True)
    assert len(layer.losses) == 1
    expected = 0.0
    for lam, name in zip(lambdas, ("query", "key", "value")):
        if lam == 0:
            assert f"{name}_u" not in [w.name for w in layer.weights]
            continue
        u = layer._spectral_state[name][0].numpy().astype(np.float64)
        v = layer._spectral_state[name][1].numpy().astype(np.float64)
        w = kernel(layer, name)
        sigma = np.einsum("hd,dhk,hk->h", u, w, v)
        expected += lam * np.sum(sigma**2)
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-5)


def test_penalty_gradient_matches_analytic_form():
    lam = 0.5
    layer = make_layer(penalty=(lam, 0.0, 0.0))
    x = inputs()
    for _ in range(3):
        layer(x, x, training=True)
    kernel_var = layer.query_dense.kernel
    grad = grad_wrt_variable(lambda: layer.msvp_penalty(update=False), kernel_var)
    u = layer._spectral_state["query"][0].numpy()
    v = layer._spectral_state["query"][1].numpy()
    w = kernel_var.numpy()
    sigma = np.einsum("hd,dhk,hk->h", u, w, v)
    analytic = 2 * lam * np.einsum("h,hd,hk->dhk", sigma, u, v)
    np.testing.assert_allclose(grad, analytic, rtol=1e-4, atol=1e-6)


def test_no_gradient_flows_through_u_and_v():
    layer = make_layer(penalty=(1.0, 0.0, 0.0))
    x = inputs()
    layer(x, x, training=True)
    u_var = layer._spectral_state["query"][0]
    grad = grad_wrt_variable(lambda: layer.msvp_penalty(update=True), u_var)
    np.testing.assert_array_equal(grad, np.zeros_like(grad))


@pytest.mark.parametrize("training", [False, None])
def test_inference_changes_no_state_and_adds_no_loss(training):
    layer = make_layer()
    x = inputs()
    before = state(layer)
    layer(x, x, training=training)
    assert layer.losses == []
    for path, value in state(layer).items():
        np.testing.assert_array_equal(value, before[path])


def test_training_call_updates_state_and_power_iterations_count():
    one = make_layer(power_iterations=1)
    three = make_layer(power_iterations=3)
    three.set_weights(one.get_weights())  # same kernels and same initial u/v
    x = inputs()
    for _ in range(3):
        one(x, x, training=True)
    three(x, x, training=True)
    # 3 calls of 1 step == 1 call of 3 steps, and the state did move.
    moved = False
    for a, b in zip(one.non_trainable_weights, three.non_trainable_weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(one.non_trainable_weights, make_layer().non_trainable_weights):
        moved |= not np.allclose(a.numpy(), b.numpy())
    assert moved


def test_outputs_equal_plain_multi_head_attention():
    spectral = make_layer()
    plain = keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=HEAD_DIM)
    x = inputs()
    plain(x, x)
    plain.set_weights([w.numpy() for w in spectral.trainable_weights])
    for training in (True, False):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(spectral(x, x, training=training)),
            keras.ops.convert_to_numpy(plain(x, x)),
            rtol=1e-5,
            atol=1e-6,
        )


def test_accessors_name_the_kernels_state_and_stacked_groups():
    layer = make_layer(penalty=(1e-2, 0.0, 3e-2))
    assert layer.power_iteration_groups == (("query", "value"),)
    u, v = layer.power_iteration_state("value")
    assert (tuple(u.shape), tuple(v.shape)) == ((HEADS, D_MODEL), (HEADS, HEAD_DIM))
    assert layer.projection_kernel("key") is layer.key_dense.kernel
    with pytest.raises(ValueError, match=r"penalized projection.*Received: name='key'"):
        layer.power_iteration_state("key")
    with pytest.raises(ValueError, match="Received: name='output'"):
        layer.projection_kernel("output")
    # Value of another head size runs as a group of its own.
    cross = SpectralMultiHeadAttention(
        num_heads=HEADS, key_dim=HEAD_DIM, value_dim=3, penalty=1e-2
    )
    with pytest.raises(ValueError, match="not built yet"):
        cross.power_iteration_state("query")
    cross.build((None, 5, D_MODEL), (None, 5, D_MODEL))
    assert cross.power_iteration_groups == (("query", "key"), ("value",))


@pytest.mark.parametrize("penalty", [0.0, None, (0, 0, 0)])
def test_zero_penalty_is_plain_attention_without_state(penalty):
    layer = make_layer(penalty=penalty)
    x = inputs()
    layer(x, x, training=True)
    assert layer.non_trainable_weights == []
    assert layer.losses == []
    plain = keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=HEAD_DIM)
    plain.build((None, 5, D_MODEL), (None, 5, D_MODEL))
    assert [w.shape for w in layer.weights] == [w.shape for w in plain.weights]


def test_mixed_precision_keeps_power_iteration_in_float32():
    keras.config.set_dtype_policy("mixed_bfloat16")
    layer = make_layer()
    x = inputs()
    for _ in range(60):
        out = layer(x, x, training=True)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert all(w.dtype == "float32" for w in layer.non_trainable_weights)
    assert keras.backend.standardize_dtype(layer.losses[0].dtype) == "float32"
    estimates, exact = layer.spectral_norms(), layer.spectral_norms(exact=True)
    for name in estimates:
        np.testing.assert_allclose(estimates[name], exact[name], rtol=1e-2)


def test_config_round_trip_keeps_every_argument():
    layer = SpectralMultiHeadAttention(
        num_heads=2,
        key_dim=3,
        value_dim=5,
        dropout=0.1,
        use_bias=False,
        penalty=(1e-3, 0.0, 2e-3),
        power_iterations=2,
        seed=7,
        name="msvp",
    )
    config = layer.get_config()
    clone = SpectralMultiHeadAttention.from_config(config)
    assert clone.get_config() == config
    assert config["penalty"] == [1e-3, 0.0, 2e-3]
    assert config["power_iterations"] == 2
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(revived, SpectralMultiHeadAttention)
    assert revived.lambdas == layer.lambdas


def test_keras_file_round_trip_restores_u_v_exactly(tmp_path):
    inputs_ = keras.Input((5, D_MODEL))
    out = SpectralMultiHeadAttention(HEADS, HEAD_DIM, penalty=1e-2, seed=1)(
        inputs_, inputs_
    )
    model = keras.Model(inputs_, out)
    x = inputs()
    for _ in range(3):
        model(x, training=True)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(model.weights, loaded.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(loaded(x))
    )


# On torch, jit_compile=True means torch.compile (dynamo): 30-45 s per case on 2 CPU
# cores. One torch case proves the compiled step updates u/v and shrinks sigma inside
# custom layers of a subclassed model; a compiled functional model holding the layer
# is tests/models/test_spectral_vit.py::test_fit_learns_and_reports_msvp_loss[True]
# (SpectralViT is functional), and Sequential adds nothing for dynamo.
TORCH_COMPILED_STYLE = "subclassed"


@pytest.mark.parametrize("style", ["functional", "sequential", "subclassed"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_trains_inside_every_model_style(style, jit_compile):
    if jit_compile and BACKEND == "torch" and style != TORCH_COMPILED_STYLE:
        pytest.skip(
            f"torch.compile is proved once, on the {TORCH_COMPILED_STYLE} style here "
            "and on the functional SpectralViT in tests/models (time: 30-45 s a case)"
        )
    keras.utils.set_random_seed(0)

    def attention():
        return SpectralMultiHeadAttention(2, 4, penalty=1.0, seed=0)

    if style == "functional":
        x_in = keras.Input((5, 8))
        h = attention()(x_in, x_in)
        model = keras.Model(x_in, keras.layers.Dense(2)(keras.layers.Flatten()(h)))
    else:

        class SelfAttention(keras.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.mha = attention()

            def call(self, x, training=None):
                return self.mha(x, x, training=training)

        if style == "sequential":
            model = keras.Sequential(
                [
                    keras.Input((5, 8)),
                    SelfAttention(),
                    keras.layers.Flatten(),
                    keras.layers.Dense(2),
                ]
            )
        else:

            class Classifier(keras.Model):
                def __init__(self):
                    super().__init__()
                    self.block = SelfAttention()
                    self.flat = keras.layers.Flatten()
                    self.head = keras.layers.Dense(2)

                def call(self, x, training=None):
                    return self.head(self.flat(self.block(x, training=training)))

            model = Classifier()
    model.compile(
        optimizer=keras.optimizers.SGD(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    x = np.random.default_rng(0).random((8, 5, 8)).astype("float32")
    y = np.arange(8) % 2
    mha = [
        m for m in model._flatten_layers() if isinstance(m, SpectralMultiHeadAttention)
    ][0]
    model(x)  # build
    before = state(mha)
    exact_before = mha.spectral_norms(exact=True)
    model.fit(x, y, epochs=20, batch_size=8, verbose=0)
    after = state(mha)
    assert any(not np.allclose(before[k], after[k]) for k in before)
    # A large lambda must shrink the penalized spectral norms.
    exact_after = mha.spectral_norms(exact=True)
    for name in ("query", "key", "value"):
        assert np.sum(exact_after[name] ** 2) < 0.6 * np.sum(exact_before[name] ** 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"penalty": -1.0}, "penalty=-1.0"),
        ({"penalty": (1e-3, 1e-3)}, "exactly 3 values"),
        ({"penalty": (1e-3, -1, 0)}, ">= 0"),
        ({"penalty": float("nan")}, "finite"),
        ({"power_iterations": 0}, "power_iterations=0"),
    ],
)
def test_invalid_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpectralMultiHeadAttention(num_heads=2, key_dim=4, **kwargs)


def test_non_integer_power_iterations_is_a_type_error():
    with pytest.raises(TypeError, match="Received: power_iterations=1.5"):
        SpectralMultiHeadAttention(num_heads=2, key_dim=4, power_iterations=1.5)
    layer = make_layer()
    with pytest.raises(TypeError, match="Received: iterations=2.0"):
        layer.warmup_power_iteration(2.0)


def test_unknown_keyword_arguments_are_refused():
    with pytest.raises(
        TypeError,
        match=r"Unrecognized keyword arguments passed to SpectralMultiHeadAttention"
        r".*'penalti'.*Received",
    ):
        SpectralMultiHeadAttention(num_heads=2, key_dim=4, penalti=1.0)
    # Every MultiHeadAttention and base Layer argument is still accepted.
    layer = SpectralMultiHeadAttention(
        num_heads=2,
        key_dim=4,
        value_dim=3,
        use_bias=False,
        dropout=0.1,
        name="mha",
        dtype="float32",
        trainable=False,
        penalty=1e-3,
    )
    assert (layer.name, layer.trainable) == ("mha", False)


def test_non_numeric_penalty_is_a_type_error():
    with pytest.raises(TypeError, match="penalty='big'"):
        SpectralMultiHeadAttention(num_heads=2, key_dim=4, penalty="big")
