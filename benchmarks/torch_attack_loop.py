"""How to run the attack loop on torch: eager, ``torch.func``, ``torch.compile``.

Times our PGD-10 (Linf, CE, eps 8/255, step 2/255, random start) on torch with
four runners of the same ``keras.ops`` body, swapped in for
``specformer_keras.backend.torch_attacks.compile_body``:

* ``eager autograd.grad``: the shipped runner (``torch.autograd.grad`` on the
  input inside ``torch.enable_grad()``, Python loop).
* ``eager torch.func``: the input gradient from
  ``torch.func.grad_and_value`` instead.
* ``torch.compile autograd.grad``: the whole body under ``torch.compile``.
* ``torch.compile torch.func``: the whole body with ``torch.func`` gradients
  under ``torch.compile``.

Prints, per runner, the first call (compilation included), the median of
``--repeats`` later calls (the runners take turns in every round, so load on a
shared machine hits them alike), and the largest difference of its adversarial
examples from the eager runner's (same seed, so 0 when they agree). A runner
that raises is reported with its error. This is the measurement behind the
choice in ``torch_attacks``'s docstring; ``docs/benchmarks.md`` has the numbers.

Usage:
    KERAS_BACKEND=torch nice python benchmarks/torch_attack_loop.py \
        --batch_size 32 --repeats 5 --hidden 192 --depth 6
"""

import argparse
import os
import statistics
import time
import traceback

os.environ.setdefault("KERAS_BACKEND", "torch")

EPS, STEP, STEPS = 8 / 255, 2 / 255, 10


def make_runner(use_func, use_compile):
    """A ``compile_body`` replacement: torch.func or autograd, compiled or not."""
    import torch
    from keras import ops

    from specformer_keras.backend import torch_attacks

    cache = {}

    def compile_body(model, key, body):
        if key in cache:
            return cache[key]

        def logits_fn(x):
            return ops.cast(model(x, training=False), "float32")

        def evaluate_fn(loss_fn, x, *loss_args):
            if not use_func:

                def forward(x):
                    logits = logits_fn(x)
                    return loss_fn(logits, *loss_args), logits

                return torch_attacks.input_value_and_grad(forward, x)

            def total(x):
                logits = logits_fn(x)
                loss = loss_fn(logits, *loss_args)
                return loss.sum(), (loss, logits)

            with torch.enable_grad():
                grad, (_, (loss, logits)) = torch.func.grad_and_value(
                    total, has_aux=True
                )(x)
            return loss, grad, logits

        def inner(*tensors):
            return body(evaluate_fn, logits_fn, *tensors)

        function = torch.compile(inner) if use_compile else inner

        def run(*arrays):
            with torch.no_grad():
                outputs = function(*[ops.convert_to_tensor(a) for a in arrays])
            return tuple(ops.convert_to_numpy(o) for o in outputs)

        cache[key] = run
        return run

    return compile_body


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=192)
    parser.add_argument("--depth", type=int, default=6)
    args = parser.parse_args()

    import keras
    import numpy as np
    import torch

    from specformer_keras import SpectralViT
    from specformer_keras.attacks import pgd
    from specformer_keras.backend import torch_attacks

    if keras.config.backend() != "torch":
        raise ValueError(
            "This benchmark needs the torch backend. "
            f"Received: KERAS_BACKEND={keras.config.backend()!r}"
        )
    model = SpectralViT(
        image_size=32,
        patch_size=4,
        num_classes=10,
        hidden_dim=args.hidden,
        depth=args.depth,
        num_heads=3,
        mlp_dim=2 * args.hidden,
        seed=0,
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.batch_size)

    shipped = torch_attacks.compile_body
    variants = {
        "eager autograd.grad": (False, False),
        "eager torch.func": (True, False),
        "torch.compile autograd.grad": (False, True),
        "torch.compile torch.func": (True, True),
    }
    runners = {name: make_runner(*flags) for name, flags in variants.items()}

    def attack(name):
        torch_attacks.compile_body = runners[name]
        try:
            start = time.perf_counter()
            x_adv = pgd(model, x, y, EPS, STEP, STEPS, seed=0)
            return x_adv, time.perf_counter() - start
        finally:
            torch_attacks.compile_body = shipped

    print(
        f"PGD-10 Linf on torch {torch.__version__}, Keras {keras.__version__}, "
        f"SpectralViT hidden {args.hidden} depth {args.depth} 32x32 patch 4, "
        f"batch {args.batch_size}, {torch.get_num_threads()} threads; runners "
        f"interleaved, median of {args.repeats} rounds after the first call",
        flush=True,
    )
    first, results, failed = {}, {}, {}
    for name in runners:
        try:
            results[name], first[name] = attack(name)
        except Exception as error:  # a failing runner is a result: report it
            last = traceback.format_exception_only(type(error), error)[-1].strip()
            failed[name] = last[:200]
    times = {name: [] for name in results}
    for _ in range(args.repeats):
        for name in results:
            times[name].append(attack(name)[1])
    reference = results["eager autograd.grad"]
    print(f"{'runner':<30}{'first call s':>14}{'median s':>10}{'max|diff|':>11}  runs")
    for name in runners:
        if name in failed:
            print(f"{name:<30} failed: {failed[name]}")
            continue
        diff = float(np.abs(results[name] - reference).max())
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(
            f"{name:<30}{first[name]:>14.2f}{statistics.median(times[name]):>10.3f}"
            f"{diff:>11.2g}  {runs}"
        )


if __name__ == "__main__":
    main()
