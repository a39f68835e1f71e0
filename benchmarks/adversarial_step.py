"""Time of one PGD-k adversarial-training step vs one clean training step.

Model: the core benchmark ViT (hidden 192, depth 6, 3 heads, MLP 384, patch 4,
32x32 images, MSVP penalty 1e-3), SGD, XLA-compiled train steps
(`compile(jit_compile=True)` by default: Keras's `"auto"` turns XLA off for
TensorFlow on CPU-only machines, which would time a different program on TF
than on JAX; `--jit_compile auto` times what Keras picks). On torch the steps
run eagerly unless `--torch_jit_compile` (Keras's `jit_compile=True` there is
`torch.compile` of the whole step, attack loop included). For each
backend (each in its own subprocess) the script times `train_on_batch` of

* the classifier alone (clean step: one forward/backward + update),
* `AdversarialTrainer(method="pgd_at", steps=k)` for k in `--steps`,
* `AdversarialTrainer(method="trades", steps=k)` for the largest k,

after one warm-up call (compilation), and reports the median of `--repeats`
timed calls and the ratio to the clean step. The target is
`adversarial <= 1.15 * (k + 1) * clean`: k attack forward/backward passes plus
one training step.

Usage:

    python benchmarks/adversarial_step.py                       # TF, JAX, torch
    python benchmarks/adversarial_step.py --backends jax --batch_size 32
    nice python benchmarks/adversarial_step.py --quick          # smoke run
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="tiny model and batch (smoke run)"
    )
    parser.add_argument(
        "--jit_compile",
        choices=("true", "false", "auto"),
        default="true",
        help="passed to compile(); 'auto' is Keras's default (no XLA for TF on CPU)",
    )
    parser.add_argument(
        "--torch_jit_compile",
        action="store_true",
        help="torch: compile(jit_compile=True), i.e. torch.compile (default eager)",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def model_config(quick):
    if quick:
        return dict(image_size=8, patch_size=4, hidden_dim=16, depth=1, num_heads=2)
    return dict(image_size=32, patch_size=4, hidden_dim=192, depth=6, num_heads=3)


def run_worker(args):
    """Times the steps on the current backend; prints one JSON line."""
    import keras
    import numpy as np

    from specformer_keras import SpectralViT
    from specformer_keras.training import AdversarialTrainer

    config = model_config(args.quick)
    mlp_dim = 2 * config["hidden_dim"]
    size = config["image_size"]
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, size=args.batch_size)

    def fresh_model():
        return SpectralViT(
            num_classes=10, mlp_dim=mlp_dim, penalty=1e-3, seed=0, **config
        )

    def median_step_seconds(step_model):
        step_model.train_on_batch(x, y)  # compile
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            step_model.train_on_batch(x, y)  # returns floats: synchronizes
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    jit_compile = {"true": True, "false": False, "auto": "auto"}[args.jit_compile]
    if keras.config.backend() == "torch":
        jit_compile = args.torch_jit_compile
    rows = []
    clean_model = fresh_model()
    clean_model.compile(
        optimizer=keras.optimizers.SGD(0.01), loss=loss, jit_compile=jit_compile
    )
    clean = median_step_seconds(clean_model)
    rows.append({"step": "clean", "k": 0, "seconds": clean})
    cases = [("pgd_at", k) for k in args.steps] + [("trades", max(args.steps))]
    for method, k in cases:
        trainer = AdversarialTrainer(fresh_model(), method=method, steps=k, seed=0)
        trainer.compile(
            optimizer=keras.optimizers.SGD(0.01), loss=loss, jit_compile=jit_compile
        )
        rows.append({"step": method, "k": k, "seconds": median_step_seconds(trainer)})
    print(json.dumps({"backend": keras.config.backend(), "rows": rows}))


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
        return
    results = []
    for backend in args.backends:
        env = dict(
            os.environ,
            KERAS_BACKEND=backend,
            TF_CPP_MIN_LOG_LEVEL="3",
            PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )
        command = [sys.executable, os.path.abspath(__file__), "--worker", backend]
        command += [
            "--batch_size",
            str(args.batch_size),
            "--repeats",
            str(args.repeats),
            "--jit_compile",
            args.jit_compile,
        ]
        command += ["--steps"] + [str(k) for k in args.steps]
        command += ["--quick"] if args.quick else []
        command += ["--torch_jit_compile"] if args.torch_jit_compile else []
        process = subprocess.run(command, env=env, capture_output=True, text=True)
        if process.returncode != 0:
            print(f"[{backend}] failed:\n{process.stderr[-3000:]}", file=sys.stderr)
            continue
        results.append(json.loads(process.stdout.strip().splitlines()[-1]))

    model = "quick tiny ViT" if args.quick else "ViT 192/6/3/384, patch 4, 32x32"
    print(
        f"\nOne training step, {model}, batch {args.batch_size}, "
        f"jit_compile={args.jit_compile} (torch: "
        f"{'torch.compile' if args.torch_jit_compile else 'eager'}), "
        f"median of {args.repeats} "
        "(after 1 warm-up call)\n"
    )
    header = "| backend | step | k | seconds | x clean | target 1.15 (k+1) | ok |"
    print(header)
    print("|" + "---|" * 7)
    for result in results:
        clean = next(r["seconds"] for r in result["rows"] if r["step"] == "clean")
        for row in result["rows"]:
            ratio = row["seconds"] / clean
            target = 1.15 * (row["k"] + 1)
            ok = "yes" if ratio <= target else "NO"
            print(
                f"| {result['backend']} | {row['step']} | {row['k']} | "
                f"{row['seconds']:.4f} | {ratio:.2f} | {target:.2f} | {ok} |"
            )


if __name__ == "__main__":
    main()
