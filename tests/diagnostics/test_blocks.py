"""Per-sub-layer local Lipschitz constants of encoder blocks, against exact Jacobians.

Runs on every backend (KERAS_BACKEND=tensorflow|jax|torch).
"""

import numpy as np
import pytest
from keras import ops
from testing import tiny_images, tiny_vit

from specformer_keras.backend import backend_module
from specformer_keras.diagnostics import (
    MAP_INPUTS,
    block_lipschitz_report,
    capture_layer_inputs,
    encoder_blocks,
    sublayer_inputs,
    sublayer_maps,
)


def _numpy(a):
    return np.asarray(ops.convert_to_numpy(a), np.float64)


def _exact_spectral_norms(fn, x):
    """Per-example ||J_fn(x_i)||_2 from the full Jacobian.

    One JVP over a batch that repeats each example once per input coordinate,
    with the basis vectors as tangents (``fn`` acts row by row).
    """
    jac = backend_module("jacobian")
    n, size = x.shape[0], int(np.prod(x.shape[1:]))
    points = np.repeat(x, size, axis=0)
    basis = np.tile(np.eye(size, dtype="float32"), (n, 1)).reshape(points.shape)
    _, jv = jac.jvp(fn, ops.convert_to_tensor(points), ops.convert_to_tensor(basis))
    jacobians = _numpy(jv).reshape(n, size, -1).transpose(0, 2, 1)
    return np.linalg.svd(jacobians, compute_uv=False)[:, 0]


@pytest.fixture(scope="module")
def model_and_inputs():
    model = tiny_vit(penalty=1e-2, hidden_dim=8, mlp_dim=8, depth=2)
    x, _ = tiny_images(n=2)
    blocks = encoder_blocks(model)
    captured = capture_layer_inputs(model, x, blocks)
    return model, x, blocks, {b.path: captured[b.path][0] for b in blocks}


def test_the_sublayer_maps_compose_to_the_block(model_and_inputs):
    _, _, blocks, inputs = model_and_inputs
    for block in blocks:
        maps = sublayer_maps(block)
        at = sublayer_inputs(block, inputs[block.path])
        x = ops.convert_to_tensor(at["x"])
        np.testing.assert_allclose(
            _numpy(maps["mlp_sublayer"](at["y"])),
            _numpy(block(x, training=False)),
            atol=1e-5,
        )
        np.testing.assert_allclose(
            at["y"], at["x"] + _numpy(maps["attention_branch"](x)), atol=1e-6
        )
        np.testing.assert_allclose(
            _numpy(maps["mlp_branch"](at["y"])), _numpy(maps["mlp"](at["t"])), atol=1e-6
        )
        np.testing.assert_allclose(_numpy(maps["norm2"](at["y"])), at["t"], atol=1e-6)


def test_every_estimate_equals_the_exact_spectral_norm(model_and_inputs):
    model, x, blocks, inputs = model_and_inputs
    report = block_lipschitz_report(model, x, iterations=40)
    assert report["n"] == 2 and sorted(report["blocks"]) == [b.path for b in blocks]
    for block in blocks:
        entry = report["blocks"][block.path]
        maps = sublayer_maps(block)
        at = sublayer_inputs(block, inputs[block.path])
        for name, where in MAP_INPUTS.items():
            exact = _exact_spectral_norms(maps[name], at[where])
            estimate = entry[name]["per_example"]
            np.testing.assert_allclose(estimate, exact, rtol=5e-3, err_msg=name)
        x_in = at["x"].astype(np.float64)
        rms = np.sqrt(np.mean(x_in.reshape(2, -1) ** 2, axis=1))
        np.testing.assert_allclose(entry["stream_rms"]["per_example"], rms, rtol=1e-5)

        def per_example(name, entry=entry):
            return np.array(entry[name]["per_example"])

        # Chain rule, submultiplicative: J_block = J_mlp_sublayer J_attention_sublayer
        # and J_mlp_branch = J_mlp J_norm2.
        slack = 1 + 5e-3
        assert np.all(
            per_example("block")
            <= per_example("attention_sublayer") * per_example("mlp_sublayer") * slack
        )
        assert np.all(
            per_example("mlp_branch")
            <= per_example("mlp") * per_example("norm2") * slack
        )


def test_a_model_without_encoder_blocks_is_refused():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="EncoderBlock"):
        block_lipschitz_report(model, np.zeros((1, 4), "float32"))


@pytest.mark.parametrize("argument", ["iterations", "batch_size"])
def test_bad_counts_are_refused(model_and_inputs, argument):
    model, x, _, _ = model_and_inputs
    with pytest.raises((TypeError, ValueError), match=argument):
        block_lipschitz_report(model, x, **{argument: 0})


def test_sublayer_maps_of_an_unbuilt_block_are_refused():
    from specformer_keras.layers.encoder_block import EncoderBlock

    with pytest.raises(ValueError, match="built EncoderBlock"):
        sublayer_maps(EncoderBlock(hidden_dim=8, num_heads=2, mlp_dim=8))
