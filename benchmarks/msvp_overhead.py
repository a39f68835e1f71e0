"""Training-step overhead of MSVP: SpectralViT with penalty=1e-5 vs penalty=0.

Same architecture (hidden 192, depth 6, 3 heads, MLP 384, patch 4, 32x32 images),
same batch, compiled train steps (`jit_compile=True`). The two models are timed
interleaved (A, B, A, B, ...) in one process so machine noise hits both alike;
each repeat times `--steps` consecutive `train_on_batch` calls after warm-up, and
the table reports medians over `--repeats`.

Usage:

    python benchmarks/msvp_overhead.py                      # TF and JAX, one table
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
    for name, penalty in (("penalty=0", 0.0), ("penalty=1e-5", 1e-5)):
        model = SpectralViT(penalty=penalty, **arch)
        model.compile(
            optimizer=keras.optimizers.AdamW(1e-4),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=True,
        )
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        models[name] = model
    times = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                logs = model.train_on_batch(x, y, return_dict=True)
            float(logs["loss"])  # make sure the work is finished
            times[name].append((time.perf_counter() - start) / args.steps)
    return {name: statistics.median(t) for name, t in times.items()} | {"raw": times}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    rows = []
    for backend in args.backends.split(","):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        cmd = [sys.executable, __file__, "--child"] + [
            f"--{k}={getattr(args, k)}"
            for k in ("batch_size", "steps", "repeats", "warmup")
        ]
        out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        base, msvp = result["penalty=0"], result["penalty=1e-5"]
        rows.append((backend, base, msvp, msvp / base - 1.0))
    print(
        f"\nSpectralViT train step, hidden 192 / depth 6 / 3 heads / patch 4, "
        f"batch {args.batch_size}, median of {args.repeats} x {args.steps} steps\n"
    )
    print("| backend | penalty=0 (s/step) | penalty=1e-5 (s/step) | overhead |")
    print("|---|---|---|---|")
    for backend, base, msvp, overhead in rows:
        print(f"| {backend} | {base:.3f} | {msvp:.3f} | {overhead:+.1%} |")


if __name__ == "__main__":
    main()
