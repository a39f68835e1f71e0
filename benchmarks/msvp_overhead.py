"""Training-step overhead of MSVP: SpectralViT with penalty=1e-5 vs penalty=0.

Same architecture (hidden 192, depth 6, 3 heads, MLP 384, patch 4, 32x32 images),
same batch, compiled train steps (`jit_compile=True`) on TensorFlow and JAX; on
torch the train steps run eagerly (`jit_compile=False`, what Keras's `"auto"`
picks there; `--torch_jit_compile` times `torch.compile` instead). The models are timed
interleaved in one process so machine noise hits them alike, in an order that
reverses every repeat (A B C, C B A, ...) so neither side always runs first; each
repeat times `--steps` consecutive `train_on_batch` calls after warm-up, and the
table reports medians over `--repeats`. A second, independent `penalty=0` model
("control") is timed the same way: its difference from the first is the
benchmark's own noise floor, to read the overhead against. Because that floor is
a few percent on a shared CPU, the script also times the penalty's own work in
isolation: one power-iteration step, sigma and the penalty's gradient with
respect to every penalized kernel of the model (18 kernels here, stacked per
layer as the layers stack them: 6 batched power iterations), compiled
(`jax.jit` / `tf.function(jit_compile=True)`); on torch the layers' own eager
`msvp_penalty(update=True)` (with its `u`/`v` assigns) and
`torch.autograd.grad`, median of 50 calls.

Usage:

    python benchmarks/msvp_overhead.py                      # TF, JAX, torch: one table
    python benchmarks/msvp_overhead.py --backends=jax --batch_size=64 --repeats=7
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def measure(args):
    """Runs in a child process whose KERAS_BACKEND is already set."""
    import keras
    import numpy as np

    from specformer_keras import SpectralViT

    keras.utils.set_random_seed(0)
    arch = dict(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=192, depth=6,
        num_heads=3, mlp_dim=384, seed=0,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.batch_size)
    models = {}
    variants = (("penalty=0", 0.0), ("penalty=1e-5", 1e-5), ("control", 0.0))
    for name, penalty in variants:
        model = SpectralViT(penalty=penalty, **arch)
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=keras.config.backend() != "torch" or args.torch_jit_compile,
        )
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        models[name] = model
    times = {name: [] for name in models}
    order = list(models.items())
    for _ in range(args.repeats):
        for name, model in order:
            start = time.perf_counter()
            for _ in range(args.steps):
                logs = model.train_on_batch(x, y, return_dict=True)
            float(logs["loss"])  # make sure the work is finished
            times[name].append((time.perf_counter() - start) / args.steps)
        order.reverse()
    penalty_s = time_penalty_alone(models["penalty=1e-5"], 1e-5)
    return (
        {name: statistics.median(t) for name, t in times.items()}
        | {"penalty_alone": penalty_s}
        | {"raw": times}
    )


def time_penalty_alone(model, lam, calls=50):
    """Median seconds of the MSVP work of one train step, in isolation.

    `sum_P lam * sum_h sigma_h^2` over every penalized kernel, with one
    power-iteration step from the stored `u`, and its gradient with respect to
    the kernels. On torch (eager) this is exactly what a training call runs:
    every attention layer's own `msvp_penalty(update=True)` (stacked power
    iteration, `u`/`v` assigns, sigma), then `torch.autograd.grad`. On
    TensorFlow and JAX the same keras.ops function the layers call,
    `stacked_power_iteration` on each layer's stack of kernels, compiled
    (`tf.function(jit_compile=True)` / `jax.jit`) without the assigns.
    """
    import keras
    import numpy as np

    from specformer_keras.models.spectral_vit import spectral_attention_layers

    layers = spectral_attention_layers(model)
    if keras.config.backend() == "torch":
        import torch

        kernels = [
            layer.projection_kernel(name).value
            for layer in layers
            for name in layer.penalized_projections
        ]

        def run():
            total = sum(layer.msvp_penalty(update=True) for layer in layers)
            torch.autograd.grad(total, kernels)
            float(total.detach())

        return _median_seconds(run, calls)

    from specformer_keras.spectral import stacked_power_iteration

    stacks, kernels, us = [], [], []
    for layer in layers:
        for names in layer.power_iteration_groups:
            stacks.append(len(names))
            for name in names:
                kernels.append(np.asarray(layer.projection_kernel(name).numpy()))
                us.append(np.asarray(layer.power_iteration_state(name)[0].numpy()))

    def penalty(ks, u0s):
        total, new_us, start = 0.0, [], 0
        for size in stacks:
            sigma, stack_us, _ = stacked_power_iteration(
                ks[start : start + size], u0s[start : start + size], 1
            )
            total = total + lam * keras.ops.sum(sigma * sigma)
            new_us += stack_us
            start += size
        return total, new_us

    if keras.config.backend() == "jax":
        import jax

        step = jax.jit(jax.value_and_grad(penalty, has_aux=True))
        ks = [jax.numpy.asarray(k) for k in kernels]
        u0s = [jax.numpy.asarray(u) for u in us]

        def run():
            jax.block_until_ready(step(ks, u0s))

    else:
        import tensorflow as tf

        @tf.function(jit_compile=True)
        def step(ks, u0s):
            with tf.GradientTape() as tape:
                tape.watch(ks)
                total, new_us = penalty(ks, u0s)
            return total, new_us, tape.gradient(total, ks)

        ks = [tf.constant(k) for k in kernels]
        u0s = [tf.constant(u) for u in us]

        def run():
            total, _, _ = step(ks, u0s)
            float(total)

    return _median_seconds(run, calls)


def _median_seconds(run, calls):
    """Median wall time of `calls` calls of `run`, after one untimed call."""
    run()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--torch_jit_compile",
        action="store_true",
        help="torch: compile(jit_compile=True), i.e. torch.compile (default eager)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    rows = []
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        cmd = (
            [sys.executable, __file__, "--child"]
            + [
                f"--{k}={getattr(args, k)}"
                for k in ("batch_size", "steps", "repeats", "warmup")
            ]
            + (["--torch_jit_compile"] if args.torch_jit_compile else [])
        )
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        base, msvp = result["penalty=0"], result["penalty=1e-5"]
        control, alone = result["control"], result["penalty_alone"]
        rows.append(
            (backend, base, msvp, msvp / base - 1.0, control / base - 1.0, alone)
        )
    print(
        f"\nSpectralViT train step, hidden 192 / depth 6 / 3 heads / patch 4, "
        f"batch {args.batch_size}, median of {args.repeats} x {args.steps} steps, "
        f"torch {'torch.compile' if args.torch_jit_compile else 'eager'}\n"
    )
    print(
        "| backend | penalty=0 (s/step) | penalty=1e-5 (s/step) | overhead "
        "| control vs penalty=0 (noise) | penalty work alone (ms) | alone / step |"
    )
    print("|---|---|---|---|---|---|---|")
    for backend, base, msvp, overhead, noise, alone in rows:
        print(
            f"| {backend} | {base:.3f} | {msvp:.3f} | {overhead:+.1%} | {noise:+.1%} "
            f"| {alone * 1e3:.2f} | {alone / base:.3%} |"
        )


if __name__ == "__main__":
    main()
