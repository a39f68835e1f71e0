"""PGD-10 wall time per batch on the core benchmark ViT (CPU): ours vs cleverhans.

PGD Linf, eps 8/255, step 2/255, 10 steps, random start, batch 128 (default),
SpectralViT(hidden 192, depth 6, 3 heads, mlp 384, patch 4, 32x32, 10 classes)
with random weights. In the TensorFlow process, our PGD (one XLA-compiled
loop) and cleverhans' ``projected_gradient_descent`` (eager, as shipped) run
interleaved after one warmup each; the JAX process (this script spawned with
``--backend jax``) times our PGD on the same settings. Prints medians of
``--repeats`` runs and the speedups.

Usage:
    nice python benchmarks/attack_speed.py --repeats 3 --batch_size 128
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

EPS, STEP, STEPS = 8 / 255, 2 / 255, 10


def build(batch_size):
    import numpy as np

    from specformer_keras import SpectralViT

    model = SpectralViT(
        image_size=32,
        patch_size=4,
        num_classes=10,
        hidden_dim=192,
        depth=6,
        num_heads=3,
        mlp_dim=384,
        seed=0,
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch_size)
    return model, x, y


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def worker(backend, batch_size, repeats):
    import numpy as np

    from specformer_keras.attacks import pgd

    model, x, y = build(batch_size)
    runners = {f"ours ({backend})": lambda: pgd(model, x, y, EPS, STEP, STEPS, seed=0)}
    if backend == "tensorflow":
        from cleverhans.tf2.attacks.projected_gradient_descent import (
            projected_gradient_descent,
        )

        def cleverhans():
            return projected_gradient_descent(
                lambda t: model(t, training=False),
                x,
                EPS,
                STEP,
                STEPS,
                np.inf,
                clip_min=0.0,
                clip_max=1.0,
                y=y,
                rand_init=True,
                rand_minmax=EPS,
                sanity_checks=False,
            ).numpy()

        runners["cleverhans (tensorflow)"] = cleverhans
    warmup = {name: timed(run) for name, run in runners.items()}
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            times[name].append(timed(run))
    return {
        name: {
            "median_s": statistics.median(t),
            "runs": t,
            "first_call_s": warmup[name],
        }
        for name, t in times.items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default=None)
    args = parser.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
        print(
            "RESULT " + json.dumps(worker(args.backend, args.batch_size, args.repeats))
        )
        return
    results = {}
    for backend in ("tensorflow", "jax"):
        output = subprocess.run(
            [sys.executable, __file__, "--backend", backend]
            + ["--batch_size", str(args.batch_size), "--repeats", str(args.repeats)],
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ, KERAS_BACKEND=backend),
        ).stdout
        line = [row for row in output.splitlines() if row.startswith("RESULT ")][-1]
        results.update(json.loads(line[len("RESULT ") :]))
    print(
        f"PGD-10 Linf (eps 8/255, step 2/255), batch {args.batch_size}, SpectralViT "
        f"192/6/3/384 patch 4 32x32, CPU, median of {args.repeats} after warmup"
    )
    print(f"{'implementation':<26}{'s/batch':>10}{'first call s':>14}  runs")
    for name, row in results.items():
        runs = ", ".join(f"{r:.2f}" for r in row["runs"])
        print(f"{name:<26}{row['median_s']:>10.2f}{row['first_call_s']:>14.2f}  {runs}")
    reference = results["cleverhans (tensorflow)"]["median_s"]
    for name, row in results.items():
        if name.startswith("ours"):
            print(
                f"speedup of {name} over cleverhans: {reference / row['median_s']:.2f}x"
            )


if __name__ == "__main__":
    main()
