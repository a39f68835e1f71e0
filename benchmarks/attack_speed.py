"""PGD-10 wall time per batch on the core benchmark ViT (CPU): ours on TF, JAX, torch.

PGD Linf, eps 8/255, step 2/255, 10 steps, random start, batch 128 (default),
SpectralViT(hidden 192, depth 6, 3 heads, mlp 384, patch 4, 32x32, 10 classes)
with random weights. In the TensorFlow process, our PGD (one XLA-compiled
loop) and cleverhans' ``projected_gradient_descent`` (eager, as shipped) run
interleaved after one warmup each; the JAX process (this script spawned with
``--backend jax``) times our PGD on the same settings; the torch process
(``--backend torch``) times our PGD and, interleaved with it, the plain eager
PyTorch loop of ``torch_reference_pgd.py`` (``pgd_loop``) run on the very same
Keras SpectralViT (on the torch backend it is a ``torch.nn.Module``), so the two
differ only in the attack code. ``--backends`` picks the processes. Prints
medians of ``--repeats`` runs and the speedups.

Two references put the numbers in context, measured in the same run:

* ``--torch_python PATH``: a Python with PyTorch installed runs
  ``torch_reference_pgd.py``, the plain eager PyTorch PGD loop on a same-size
  native PyTorch ViT (``torch.nn.MultiheadAttention``), and its row is printed
  beside ours. Defaults to this interpreter when it has torch and ``torch`` is
  among ``--backends``.
* the arithmetic floor: PGD-10 costs about 10 x (forward + input-gradient
  backward) FLOPs, counted from the architecture (``pgd_gflops``); divided by
  this machine's measured large-matrix SGEMM rate (numpy, 4096 x 4096) it is
  the time no fp32 implementation can beat here.

``--tuned_malloc`` runs every implementation (ours, cleverhans, PyTorch) with
glibc's allocator told to keep large blocks instead of returning them to the
OS after each use (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_``; see ``TUNED_MALLOC``). By default glibc serves every
block over its mmap threshold with a fresh ``mmap`` and gives it back on free,
so each call page-faults its activation buffers in again; on the AVX2
development machine that was up to 40% of a PGD call's time, on an
AVX-512 one it made no measurable difference (docs/benchmarks.md).

The header names the CPU and its widest vector extension: the ratios depend on
it (cleverhans' eager PGD ran 1.9 to 2.8x faster on AVX-512 than on AVX2).

Usage:
    nice python benchmarks/attack_speed.py --repeats 3 --batch_size 128
    nice python benchmarks/attack_speed.py --backends jax,torch \
        --torch_python /path/to/venv-with-torch/bin/python
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

EPS, STEP, STEPS = 8 / 255, 2 / 255, 10
HIDDEN, DEPTH, MLP, PATCH, IMAGE = 192, 6, 384, 4, 32
# glibc malloc tuning (read at process start): large blocks from the heap, kept.
TUNED_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(2**32),
    "MALLOC_TRIM_THRESHOLD_": str(2**32),
    "MALLOC_TOP_PAD_": str(2**29),
}


def pgd_gflops(batch_size, steps=STEPS):
    """FLOPs (in GFLOP) of `steps` forward + input-gradient passes of the ViT.

    Per token and layer the forward pass does 4 d^2 (query, key, value, output)
    + 2 d m (MLP) multiply-adds in the projections and 2 n d in attention
    (scores and weighted values), n = tokens. The input gradient repeats every
    projection once (dX = dY W^T, no weight gradients) and attention twice
    (both operands depend on the input). Elementwise work is not counted.
    """
    tokens = (IMAGE // PATCH) ** 2 + 1
    projections = 4 * HIDDEN * HIDDEN + 2 * HIDDEN * MLP
    attention = 2 * tokens * HIDDEN
    patches = (IMAGE // PATCH) ** 2 * PATCH * PATCH * 3 * HIDDEN
    forward_macs = DEPTH * tokens * (projections + attention) + patches
    backward_macs = DEPTH * tokens * (projections + 2 * attention) + patches
    return 2 * (forward_macs + backward_macs) * batch_size * steps / 1e9


def cpu_description():
    """CPU model, logical cores and widest x86 vector extension (Linux), as text."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    vector = next(
        (name for name in ("avx512f", "avx2", "avx") if name in flags), "no AVX"
    )
    return f"{model}, {os.cpu_count()} logical cores, {vector.upper()}"


def sgemm_gflops_per_s(size=4096, repeats=5):
    """Best-of-`repeats` float32 matrix-multiply rate of numpy on this machine."""
    import numpy as np

    a = np.random.default_rng(0).uniform(size=(size, size)).astype("float32")
    a @ a
    best = min(timed(lambda: a @ a) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def build(batch_size):
    import numpy as np

    from specformer_keras import SpectralViT

    model = SpectralViT(
        image_size=32,
        patch_size=4,
        num_classes=10,
        hidden_dim=HIDDEN,
        depth=DEPTH,
        num_heads=3,
        mlp_dim=MLP,
        seed=0,
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, batch_size)
    return model, x, y


def check_torch_python(path):
    """Raises ValueError unless `path` is None or an existing file (an interpreter)."""
    if path is not None and not os.path.isfile(path):
        raise ValueError(
            "`--torch_python` must be the path of a Python interpreter with torch "
            f"installed. Received: --torch_python={path!r} (no such file)"
        )


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
    if backend == "torch":
        import torch

        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_reference_pgd import pgd_loop

        x_t = torch.as_tensor(x)
        y_t = torch.as_tensor(y)

        def plain_loop():
            return pgd_loop(torch, lambda t: model(t, training=False), x_t, y_t)

        runners["plain eager loop (torch, same model)"] = plain_loop
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
    parser.add_argument(
        "--backend", choices=("tensorflow", "jax", "torch"), default=None
    )
    parser.add_argument(
        "--backends",
        default="tensorflow,jax,torch",
        help="comma-separated backends to time, each in its own process",
    )
    parser.add_argument(
        "--torch_python",
        default=None,
        help="a Python interpreter with torch installed, for the PyTorch reference row",
    )
    parser.add_argument(
        "--tuned_malloc",
        action="store_true",
        help="run every implementation with TUNED_MALLOC in its environment",
    )
    args = parser.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
        print(
            "RESULT " + json.dumps(worker(args.backend, args.batch_size, args.repeats))
        )
        return
    check_torch_python(args.torch_python)
    backends = [b for b in args.backends.split(",") if b]
    unknown = [b for b in backends if b not in ("tensorflow", "jax", "torch")]
    if unknown:
        raise ValueError(
            "`--backends` must name backends among tensorflow, jax, torch. "
            f"Received: --backends={args.backends!r}"
        )
    if args.torch_python is None and "torch" in backends:
        if importlib.util.find_spec("torch") is not None:
            args.torch_python = sys.executable
    sizes = ["--batch_size", str(args.batch_size), "--repeats", str(args.repeats)]
    commands = {
        backend: [sys.executable, __file__, "--backend", backend] + sizes
        for backend in backends
    }
    if args.torch_python:
        script = os.path.join(os.path.dirname(__file__), "torch_reference_pgd.py")
        commands["torch reference"] = [args.torch_python, script, "--json"] + sizes
    results = {}
    for backend, command in commands.items():
        output = subprocess.run(
            command,
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ, KERAS_BACKEND=backend.split()[0])
            | (TUNED_MALLOC if args.tuned_malloc else {}),
        ).stdout
        line = [row for row in output.splitlines() if row.startswith("RESULT ")][-1]
        results.update(json.loads(line[len("RESULT ") :]))
    gflops = pgd_gflops(args.batch_size)
    peak = sgemm_gflops_per_s()
    print(
        f"PGD-10 Linf (eps 8/255, step 2/255), batch {args.batch_size}, SpectralViT "
        f"192/6/3/384 patch 4 32x32, {cpu_description()}, median of {args.repeats} after warmup, "
        f"{'tuned' if args.tuned_malloc else 'default'} glibc malloc"
    )
    print(
        f"{'implementation':<30}{'s/batch':>9}{'GFLOP/s':>9}{'first call s':>14}  runs"
    )
    for name, row in results.items():
        runs = ", ".join(f"{r:.2f}" for r in row["runs"])
        print(
            f"{name:<30}{row['median_s']:>9.2f}{gflops / row['median_s']:>9.1f}"
            f"{row['first_call_s']:>14.2f}  {runs}"
        )
    print(
        f"arithmetic floor: {gflops:.0f} GFLOP per batch / {peak:.0f} GFLOP/s "
        f"(numpy SGEMM 4096, best of 5) = {gflops / peak:.2f} s/batch"
    )
    references = [n for n in results if not n.startswith("ours")]
    for name, row in results.items():
        if name.startswith("ours"):
            for reference in references:
                ratio = results[reference]["median_s"] / row["median_s"]
                print(f"speedup of {name} over {reference}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
