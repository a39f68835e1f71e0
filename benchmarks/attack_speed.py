"""PGD-10 wall time per batch: ours (TF, JAX) vs cleverhans PGD (TF), CPU.

Model: the core benchmark ViT (`SpectralViT`, hidden 192, depth 6, 3 heads,
MLP 384, patch 4, 32x32x3, 10 classes). Attack: Linf PGD, eps 8/255, step
2/255, 10 steps, uniform random start, a batch of ``--batch_size`` (128)
random images labelled with the model's own predictions. Each backend runs in
its own subprocess (this script re-runs itself with ``--worker``):

* TensorFlow: ``specformer_keras.attacks.pgd`` (whole loop in one
  ``tf.function(jit_compile=True)``) and
  ``cleverhans.tf2.attacks.projected_gradient_descent`` with the same
  settings (``rand_init=True, rand_minmax=eps, clip 0..1, sanity_checks=False``),
  both as shipped (eager Python loop of tape gradients) and wrapped in a
  ``tf.function`` (graph, no XLA); timed interleaved, ours / cleverhans /
  cleverhans-graph per repeat, after one warm-up call each.
* JAX: ours (one ``jax.jit`` over ``stateless_call``).

Prints the median seconds per batch of ``--repeats`` timed calls, the speedup
over cleverhans, and the robust accuracy each attack reached (a check that the
attacks did the same work). Targets (issue 3): >= 2x faster than cleverhans
on TF, <= 3.7 s per batch on this CPU. AutoAttack wall time per 100 images:
``benchmarks/autoattack_speed.py``.

Usage:

    nice python benchmarks/attack_speed.py                    # TF and JAX
    python benchmarks/attack_speed.py --backends jax --repeats 5
    python benchmarks/attack_speed.py --quick                 # tiny smoke run
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

EPS, STEP_SIZE = 8 / 255, 2 / 255


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--quick", action="store_true", help="tiny model and batch (smoke run)"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_model(quick):
    from specformer_keras import SpectralViT

    if quick:
        return SpectralViT(
            image_size=8, patch_size=4, num_classes=10, hidden_dim=16, depth=1,
            num_heads=2, mlp_dim=32, seed=0,
        )  # fmt: skip
    return SpectralViT(
        image_size=32, patch_size=4, num_classes=10, hidden_dim=192, depth=6,
        num_heads=3, mlp_dim=384, seed=0,
    )  # fmt: skip


def worker(args):
    """Times the attacks on the current backend; prints one JSON line."""
    import keras
    import numpy as np

    from specformer_keras.attacks import pgd

    backend = keras.config.backend()
    model = build_model(args.quick)
    size = 8 if args.quick else 32
    batch = 8 if args.quick else args.batch_size
    x = np.random.default_rng(0).uniform(size=(batch, size, size, 3)).astype("float32")
    y = np.asarray(keras.ops.convert_to_numpy(model(x, training=False))).argmax(-1)

    def accuracy(x_adv):
        logits = keras.ops.convert_to_numpy(model(x_adv, training=False))
        return float((np.asarray(logits).argmax(-1) == y).mean())

    def ours(seed):
        return pgd(model, x, y, EPS, STEP_SIZE, args.steps, seed=seed)

    attacks = {"ours": ours}
    if backend == "tensorflow":
        import tensorflow as tf
        from cleverhans.tf2.attacks.projected_gradient_descent import (
            projected_gradient_descent,
        )

        def model_fn(t):
            return model(t, training=False)

        def cleverhans_pgd(images):
            return projected_gradient_descent(
                model_fn, images, EPS, STEP_SIZE, args.steps, np.inf, clip_min=0.0,
                clip_max=1.0, y=y, rand_init=True, rand_minmax=EPS, sanity_checks=False,
            )  # fmt: skip

        graph_pgd = tf.function(cleverhans_pgd)
        attacks["cleverhans"] = lambda seed: cleverhans_pgd(x).numpy()
        attacks["cleverhans_graph"] = lambda seed: graph_pgd(tf.constant(x)).numpy()

    times = {name: [] for name in attacks}
    robust = {name: [] for name in attacks}
    for name, attack in attacks.items():  # warm-up: compilation / tracing
        start = time.perf_counter()
        robust[name].append(accuracy(attack(0)))
        times[name + "_first_call"] = time.perf_counter() - start
    for repeat in range(args.repeats):  # interleaved timed calls
        for name, attack in attacks.items():
            start = time.perf_counter()
            x_adv = attack(repeat + 1)
            times[name].append(time.perf_counter() - start)
            robust[name].append(accuracy(x_adv))
            assert np.abs(np.asarray(x_adv) - x).max() <= EPS + 1e-5
    result = {
        "backend": backend,
        "batch": batch,
        "steps": args.steps,
        "median_s": {n: statistics.median(times[n]) for n in attacks},
        "all_s": {n: times[n] for n in attacks},
        "first_call_s": {n: times[n + "_first_call"] for n in attacks},
        "robust_accuracy": {n: statistics.mean(robust[n]) for n in attacks},
    }
    print("RESULT " + json.dumps(result), flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    results = []
    for backend in args.backends:
        command = [sys.executable, os.path.abspath(__file__), "--worker", backend]
        command += ["--steps", str(args.steps), "--repeats", str(args.repeats)]
        command += ["--batch_size", str(args.batch_size)] + (
            ["--quick"] if args.quick else []
        )
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        output = subprocess.run(command, env=env, capture_output=True, text=True)
        lines = [ln for ln in output.stdout.splitlines() if ln.startswith("RESULT ")]
        if output.returncode != 0 or not lines:
            print(output.stdout[-2000:], output.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"worker for backend {backend} failed")
        results.append(json.loads(lines[-1][len("RESULT ") :]))

    model = (
        "tiny ViT (quick)"
        if args.quick
        else "SpectralViT 192/6/3, MLP 384, patch 4, 32x32"
    )
    first = results[0]
    print(
        f"PGD-{first['steps']} (eps 8/255, step 2/255, random start), batch {first['batch']}, "
        f"{model}, CPU ({os.cpu_count()} cores), median of {args.repeats} after warm-up"
    )
    print(f"{'backend':11s} {'attack':17s} {'s/batch':>8s} {'first call s':>13s} "
          f"{'robust acc':>10s}  speedup vs cleverhans")  # fmt: skip
    reference = None
    for result in results:
        if "cleverhans" in result["median_s"]:
            reference = result["median_s"]["cleverhans"]
    for result in results:
        for name, seconds in result["median_s"].items():
            speedup = f"{reference / seconds:.2f}x" if reference else "-"
            print(
                f"{result['backend']:11s} {name:17s} {seconds:8.2f} "
                f"{result['first_call_s'][name]:13.1f} "
                f"{result['robust_accuracy'][name]:10.3f}  {speedup}"
            )
    print("targets: ours on TF >= 2x faster than cleverhans; <= 3.7 s per batch")
    print("raw: " + json.dumps(results))


if __name__ == "__main__":
    main()
