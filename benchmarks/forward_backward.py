"""Where PGD's time goes: forward vs input-gradient backward, per layer type (CPU).

An attack step is one forward pass and one backward pass to the input (no weight
gradients). This script times both, compiled (`tf.function(jit_compile=True)` on
TF, `jax.jit` on JAX), for the attack-speed ViT (SpectralViT hidden 192, depth 6,
3 heads, MLP 384, patch 4, 32x32) and for stacks of six of each of its layer types
on its token tensor (batch x 65 tokens x 192): `MultiHeadAttention`,
`SpectralMultiHeadAttention`, the GELU MLP and `LayerNormalization`. With
`--torch_python`, the same-shape PyTorch ViT of `torch_reference_pgd.py` is timed
too (eager, as its PGD loop runs). Medians of `--repeats` after one warm-up call.

Usage:
    python benchmarks/forward_backward.py --batch_size 128 \\
        --torch_python /path/to/venv-with-torch/bin/python
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TOKENS, HIDDEN, MLP = 65, 192, 384
STACKS = ("vit", "mha", "spectral_mha", "mlp_gelu", "layer_norm")


def median_time(function, repeats):
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(kind, batch_size):
    import keras
    import numpy as np

    from specformer_keras.layers.spectral_attention import SpectralMultiHeadAttention

    rng = np.random.default_rng(0)
    if kind == "vit":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from attack_speed import build as build_vit

        model, x, _ = build_vit(batch_size)
        return model, x
    inputs = keras.Input((TOKENS, HIDDEN))
    x = inputs
    for _ in range(6):
        if kind == "mha":
            x = keras.layers.MultiHeadAttention(3, HIDDEN // 3)(x, x)
        elif kind == "spectral_mha":
            x = SpectralMultiHeadAttention(3, HIDDEN // 3, penalty=1e-5)(x, x)
        elif kind == "mlp_gelu":
            hidden = keras.layers.Dense(MLP, activation="gelu")(x)
            x = keras.layers.Dense(HIDDEN)(hidden)
        elif kind == "layer_norm":
            x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    data = rng.uniform(size=(batch_size, TOKENS, HIDDEN)).astype("float32")
    return keras.Model(inputs, x), data


def compiled_pair(backend, model, x):
    """(forward, forward + input gradient) as zero-argument compiled calls."""
    if backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        frozen = [v.value for v in model.non_trainable_variables]

        def forward(t):
            return model.stateless_call(trainable, frozen, t, training=False)[0]

        fwd = jax.jit(forward)
        fwd_bwd = jax.jit(jax.grad(lambda t: forward(t).sum()))
        x = jax.numpy.asarray(x)
        return (
            lambda: fwd(x).block_until_ready(),
            lambda: fwd_bwd(x).block_until_ready(),
        )
    import tensorflow as tf

    x = tf.constant(x)

    def gradient(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            total = tf.reduce_sum(model(t, training=False))
        return tape.gradient(total, t)

    fwd = tf.function(lambda t: model(t, training=False), jit_compile=True)
    fwd_bwd = tf.function(gradient, jit_compile=True)
    return lambda: fwd(x).numpy(), lambda: fwd_bwd(x).numpy()


def keras_worker(backend, batch_size, repeats):
    results = {}
    for kind in STACKS:
        forward, forward_backward = compiled_pair(backend, *build(kind, batch_size))
        forward_s = median_time(forward, repeats)
        both_s = median_time(forward_backward, repeats)
        results[f"{backend} {kind}"] = {
            "forward_s": forward_s,
            "backward_s": both_s - forward_s,
        }
    return results


def torch_worker(batch_size, repeats):
    import torch
    from torch_reference_pgd import build_vit

    model = build_vit(torch)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    x = torch.rand(batch_size, 3, 32, 32)

    def forward():
        with torch.no_grad():
            model(x)

    def forward_backward():
        t = x.clone().requires_grad_(True)
        torch.autograd.grad(model(t).sum(), t)

    forward_s = median_time(forward, repeats)
    both_s = median_time(forward_backward, repeats)
    return {"torch vit": {"forward_s": forward_s, "backward_s": both_s - forward_s}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch_python", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch_size < 1 or args.repeats < 1:
        raise ValueError(
            "`--batch_size` and `--repeats` must be >= 1. Received: "
            f"--batch_size={args.batch_size}, --repeats={args.repeats}"
        )
    if args.worker == "torch":
        print("RESULT " + json.dumps(torch_worker(args.batch_size, args.repeats)))
        return
    if args.worker:
        os.environ["KERAS_BACKEND"] = args.worker
        result = keras_worker(args.worker, args.batch_size, args.repeats)
        print("RESULT " + json.dumps(result))
        return
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from attack_speed import check_torch_python

    check_torch_python(args.torch_python)
    sizes = ["--batch_size", str(args.batch_size), "--repeats", str(args.repeats)]
    workers = {b: sys.executable for b in ("tensorflow", "jax")}
    if args.torch_python:
        workers["torch"] = args.torch_python
    results = {}
    for worker, python in workers.items():
        output = subprocess.run(
            [python, os.path.abspath(__file__), "--worker", worker] + sizes,
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ, KERAS_BACKEND=worker),
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout
        line = [row for row in output.splitlines() if row.startswith("RESULT ")][-1]
        results.update(json.loads(line[len("RESULT ") :]))
    print(
        f"forward and input-gradient backward, batch {args.batch_size}, "
        f"median of {args.repeats} (seconds)"
    )
    print(f"{'what':<28}{'forward':>9}{'backward':>10}{'bwd/fwd':>9}")
    for name, row in results.items():
        ratio = row["backward_s"] / row["forward_s"]
        print(
            f"{name:<28}{row['forward_s']:>9.3f}{row['backward_s']:>10.3f}{ratio:>9.2f}"
        )


if __name__ == "__main__":
    main()
