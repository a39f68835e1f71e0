"""Sharded evaluation: 1 process vs 2 local processes (same verdicts, wall time).

Runs `evaluate_robustness` on the same model, data and seed as one process and
as two processes connected by the backend's engine on 127.0.0.1
(`MultiWorkerMirroredStrategy` with ``TF_CONFIG``, `jax.distributed`,
`torch.distributed` with gloo; see tests/distributed/launch.py), ``--repeats``
times each, checks that every run gives the same per-point verdicts, and prints
the medians:

* ``wall``: from starting the processes to the last one exiting (imports,
  engine start-up, model build and compilation included);
* ``first``: the first `evaluate_robustness` call (compiling the attacks),
  slowest process;
* ``warm``: a second call on the same model (compiled attacks reused),
  slowest process: the part that sharding divides.

Each process gets ``--threads`` intra-op threads. Two processes on a machine
whose cores are already busy (or on two cores shared with one process's
threads) are not faster: sharding pays off with one process per device or
host, each with its own cores. The model is a SpectralViT with random weights
and labels its own predictions, so every point starts correctly classified.

Usage:
    KERAS_BACKEND=jax python benchmarks/eval_scaling.py --points 32 --attacks clean,pgd10
    python benchmarks/eval_scaling.py --backends tensorflow,jax,torch --repeats 3
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "distributed"))


def worker(points, attacks, batch_size, image_size):
    """One process: initialize the engine, evaluate its share, print JSON."""
    import keras
    import numpy as np

    from specformer_keras import SpectralViT, distributed
    from specformer_keras.evaluation import evaluate_robustness

    layout = distributed.initialize()
    keras.utils.set_random_seed(0)
    model = SpectralViT(
        image_size=image_size,
        patch_size=4,
        num_classes=10,
        hidden_dim=64,
        depth=2,
        num_heads=2,
        mlp_dim=128,
        seed=0,
    )
    x = np.random.default_rng(0).random((points, image_size, image_size, 3))
    x = x.astype("float32")
    y = keras.ops.convert_to_numpy(keras.ops.argmax(model(x, training=False), -1))
    seconds = []
    for _ in range(2):  # the first call compiles the attacks, the second reuses them
        started = time.perf_counter()
        report = evaluate_robustness(
            model,
            (x, y),
            attacks=tuple(attacks.split(",")),
            eps=2 / 255,
            batch_size=batch_size,
            seed=0,
            verbose=False,
        )
        seconds.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "layout": layout.to_dict(),
                "evaluate_seconds": seconds,
                "per_point": report["per_point"],
                "accuracy": report["accuracy"],
            }
        )
    )


def measure(backend, processes, args):
    """``(wall s, first evaluate s, warm evaluate s, result)`` of one run."""
    from launch import launch

    started = time.perf_counter()
    results = launch(
        backend,
        processes,
        [
            "--worker",
            f"--points={args.points}",
            f"--attacks={args.attacks}",
            f"--batch_size={args.batch_size}",
            f"--image_size={args.image_size}",
        ],
        timeout=args.timeout,
        extra_env=thread_env(args.threads),
        script=os.path.abspath(__file__),
    )
    wall = time.perf_counter() - started
    verdicts = {json.dumps(r["per_point"], sort_keys=True) for r in results}
    if len(verdicts) != 1:
        raise RuntimeError(f"{backend} x{processes}: processes disagree")
    first = max(r["evaluate_seconds"][0] for r in results)
    warm = max(r["evaluate_seconds"][1] for r in results)
    return wall, first, warm, results[0]


def thread_env(threads):
    """Intra-op threads per process: OpenMP/torch, TensorFlow, XLA (JAX)."""
    env = {"OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads)}
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false"
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=os.environ.get("KERAS_BACKEND", "jax"))
    parser.add_argument("--points", type=int, default=32)
    parser.add_argument("--attacks", default="clean,pgd10")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.points, args.attacks, args.batch_size, args.image_size)
        return
    print(
        f"{args.points} points, attacks {args.attacks}, batch {args.batch_size}, "
        f"{args.image_size}px, {args.threads} thread(s) per process, "
        f"{os.cpu_count()} CPUs, median of {args.repeats}"
    )
    print(
        f"{'backend':11s} {'processes':>9s} {'wall s':>8s} {'first s':>8s} "
        f"{'warm s':>8s}  same verdicts"
    )
    for backend in args.backends.split(","):
        reference = None
        for processes in (1, 2):
            runs = [measure(backend, processes, args) for _ in range(args.repeats)]
            per_point = {json.dumps(r[3]["per_point"], sort_keys=True) for r in runs}
            if reference is None:
                reference = per_point
            same = per_point == reference and len(per_point) == 1
            wall = statistics.median(r[0] for r in runs)
            first = statistics.median(r[1] for r in runs)
            warm = statistics.median(r[2] for r in runs)
            print(
                f"{backend:11s} {processes:9d} {wall:8.1f} {first:8.1f} {warm:8.1f}  "
                f"{'yes' if same else 'NO'}",
                flush=True,
            )
            if not same:
                raise SystemExit(f"{backend}: verdicts differ between runs")


if __name__ == "__main__":
    main()
