"""AutoAttack-standard wall time per 100 images on the core benchmark ViT (CPU).

Measures the worst case, where every point is correctly classified and survives
every attack, so each component runs on all points for its full budget: labels
are the model's own predictions and ``eps = 0`` (nothing can be broken, Square
never stops early). Runs ``autoattack(version="custom")`` with all four
standard components at a reduced budget on a few images, once to compile and
then ``--repeats`` times, takes the median seconds per component from the log,
and scales linearly to the standard budget (APGD/FAB 100 iterations, 9
targets, Square 5000 queries) and to 100 images. For a model with clean
accuracy ``c`` and robust accuracy ``r`` after APGD-CE, the time is about
``c * apgd_ce + r * (apgd_t + fab_t + square)``.

Usage:
    python benchmarks/autoattack_speed.py --backend jax --images 16
"""

import argparse
import os
import subprocess
import sys
import time


def measure(images, steps, queries, repeats):
    import numpy as np

    from specformer_keras import SpectralViT
    from specformer_keras.attacks.autoattack import autoattack

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
    x = np.random.default_rng(0).uniform(size=(images, 32, 32, 3)).astype("float32")
    y = np.asarray(model(x, training=False)).argmax(-1)
    settings = {
        "apgd-ce": {"steps": steps},
        "apgd-t": {"steps": steps},
        "fab-t": {"steps": steps},
        "square": {"n_queries": queries},
    }
    from specformer_keras.attacks.losses import cross_entropy_loss
    from specformer_keras.attacks.runner import compile_body

    def one_gradient(evaluate_fn, logits_fn, x, y):
        loss, grad, _ = evaluate_fn(cross_entropy_loss, x, y)
        return loss, grad

    def one_forward(evaluate_fn, logits_fn, x):
        return (logits_fn(x),)

    raw = {}
    for name, body, arrays in [
        ("fwd+bwd", one_gradient, (x, y.astype("int32"))),
        ("fwd", one_forward, (x,)),
    ]:
        run = compile_body(model, ("benchmark", name), body)
        run(*arrays)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            run(*arrays)
            times.append(time.perf_counter() - start)
        raw[name] = float(np.median(times))
        print(f"one compiled {name} call on {images} images: {raw[name]:.3f} s")

    runs = []
    for _ in range(repeats + 1):  # the first run compiles
        _, log = autoattack(
            model,
            x,
            y,
            0.0,
            version="custom",
            attack_settings=settings,
            batch_size=images,
            return_log=True,
        )
        runs.append(log["seconds"])
    scale = {
        "apgd-ce": 100 / steps,
        "apgd-t": 100 / steps,
        "fab-t": 100 / steps,
        "square": 5000 / queries,
    }
    per_100 = {}
    for name in scale:
        median = float(np.median([run[name] for run in runs[1:]]))
        per_100[name] = median * scale[name] * 100 / images
        print(
            f"{name:8s} measured {median:7.2f} s ({images} images, reduced budget)"
            f" -> {per_100[name]:8.1f} s per 100 images at the standard budget"
        )
    print(
        f"{'total':8s} worst case (all points robust): {sum(per_100.values()):.0f} s "
        "per 100 images"
    )
    # Cost of one loop iteration relative to one bare compiled model call.
    calls = {
        "apgd-ce": steps * raw["fwd+bwd"],
        "apgd-t": 9 * steps * raw["fwd+bwd"],
        "fab-t": 9 * steps * (raw["fwd+bwd"] + raw["fwd"]),
        "square": queries * raw["fwd"],
    }
    for name, cost in calls.items():
        median = float(np.median([run[name] for run in runs[1:]]))
        print(f"{name:8s} loop time / bare model calls it needs: {median / cost:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default=None, choices=["tensorflow", "jax"])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--queries", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.backend and os.environ.get("KERAS_BACKEND") != args.backend:
        env = dict(os.environ, KERAS_BACKEND=args.backend)
        sys.exit(subprocess.call([sys.executable] + sys.argv, env=env))
    import keras

    print(f"backend {keras.config.backend()}, CPU, SpectralViT 192/6/3, patch 4, 32x32")
    measure(args.images, args.steps, args.queries, args.repeats)


if __name__ == "__main__":
    main()
