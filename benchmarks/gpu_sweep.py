"""Paper-scale MSVP lambda sweep for one GPU window (< 10 minutes), without TensorFlow.

Runs on JAX (default) or torch, reads CIFAR-10 from the class-per-folder JPEG
archive (``--archive``; decoded once with Pillow into a cached ``.npz``), and
writes the same per-run records, ``summary.md``, ``tradeoff.png`` and
``sigma_per_layer.png`` as ``benchmarks/reproduce.py`` (whose ``summarize`` it
calls), plus the local Lipschitz constants of every run
(``lipschitz_per_layer.png``: attention layers and whole model, vanilla vs
MSVP, from `specformer_keras.diagnostics`).

Paired runs: same seed, data, augmentation stream and schedule; only lambda
differs. ``--mode=standard`` (default) is the paper's standard-training table
(clean, FGSM and PGD-20 at 1/255 and 2/255, full 10,000-image test set);
``--mode=adversarial`` is a short PGD-AT sweep (clean, PGD-20, CW-20 at 8/255 and
AutoAttack on ``--autoattack_size`` class-balanced test images).

The wall-clock budget (``--time_budget_s``, default 540 s) is enforced: after
each run the script projects the time of the next one from the runs so far and
stops starting runs that would not finish in time (finished runs are kept and
skipped on a rerun, so a second window continues the sweep).

    KERAS_BACKEND=jax python benchmarks/gpu_sweep.py --archive=../shared/data/cifar10-jpeg.tar.gz
    KERAS_BACKEND=jax python benchmarks/gpu_sweep.py --mode=adversarial --epochs=10 \
        --lambdas=0,1e-2 --seeds=0
    KERAS_BACKEND=jax python benchmarks/gpu_sweep.py --tiny    # CPU smoke run, ~2 min

``--tiny`` shrinks everything (200 training images, 1 epoch, a 1-block model)
so the whole path runs end to end on a CPU.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PAPER = dict(
    preset="vit_tiny_patch4_32",
    depth=None,
    train_size=None,  # all 50,000
    test_size=None,  # all 10,000
    epochs=15,
    batch_size=256,
    learning_rate=1e-3,
    weight_decay=0.05,
    attack_steps=5,
    autoattack_size=1000,
    lipschitz_size=256,
    lipschitz_iterations=20,
)
TINY = dict(
    PAPER,
    preset="vit_micro_patch4_32",
    depth=1,
    train_size=200,
    test_size=100,
    epochs=1,
    batch_size=50,
    attack_steps=1,
    autoattack_size=20,
    lipschitz_size=10,
    lipschitz_iterations=3,
)


def parse_args(argv=None):
    import sweep_common

    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--mode", choices=("standard", "adversarial"), default="standard"
    )
    parser.add_argument("--lambdas", default="0,1e-4,1e-3,1e-2")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--archive", default=sweep_common.DEFAULT_ARCHIVE)
    parser.add_argument("--out", default="runs/gpu_sweep")
    parser.add_argument("--time_budget_s", type=float, default=540.0)
    parser.add_argument("--tiny", action="store_true", help="CPU smoke run")
    for key, value in PAPER.items():
        kind = {float: float, int: int, str: str}.get(type(value), int)
        parser.add_argument(
            f"--{key}", type=kind, default=None, help=f"default {value}"
        )
    args = parser.parse_args(argv)
    settings = dict(TINY if args.tiny else PAPER)
    for key in PAPER:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    try:
        args.lambdas = [float(v) for v in args.lambdas.split(",")]
        args.seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        parser.error(
            "--lambdas and --seeds must be comma-separated numbers. "
            f"Received: --lambdas={args.lambdas} --seeds={args.seeds}"
        )
    if args.tiny:
        args.lambdas = args.lambdas[:1] + [max(args.lambdas[-1], 1e-2)]
        args.seeds = args.seeds[:1]
        if args.out == "runs/gpu_sweep":
            args.out = "runs/gpu_sweep_tiny"
    return args, settings


def load_data(args, settings):
    import sweep_common

    x_train, y_train, x_test, y_test, _ = sweep_common.load_cifar_arrays(args.archive)
    if settings["train_size"]:
        idx = sweep_common.interleaved_balanced(y_train, settings["train_size"], 0)
        x_train, y_train = x_train[idx], y_train[idx]
    idx = sweep_common.interleaved_balanced(
        y_test, settings["test_size"] or len(y_test), 2
    )
    return (x_train, y_train), (x_test[idx].astype("float32") / 255.0, y_test[idx])


def build(settings, penalty, seed, mode):
    import keras

    from specformer_keras import AdversarialTrainer, SpectralViT

    keras.utils.set_random_seed(seed)
    overrides = {"penalty": penalty, "seed": seed}
    if settings["depth"]:
        overrides["depth"] = settings["depth"]
    model = SpectralViT.from_preset(settings["preset"], **overrides)
    steps = settings["epochs"] * -(
        -settings["train_size_actual"] // settings["batch_size"]
    )
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=settings["learning_rate"],
        warmup_steps=max(steps // 10, 1),
    )  # fmt: skip
    fit_model = model
    if mode == "adversarial":
        fit_model = AdversarialTrainer(
            model, method="pgd_at", eps=8 / 255,
            step_size=2.5 * (8 / 255) / settings["attack_steps"],
            steps=settings["attack_steps"], seed=seed,
        )  # fmt: skip
    fit_model.compile(
        optimizer=keras.optimizers.AdamW(
            schedule, weight_decay=settings["weight_decay"]
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, fit_model


def run_one(args, settings, penalty, seed, train, test):
    import numpy as np
    import reproduce
    import sweep_common

    from specformer_keras.diagnostics import lipschitz_report
    from specformer_keras.evaluation import evaluate_robustness

    model, fit_model = build(settings, penalty, seed, args.mode)
    x, y = train
    history = {}
    start = time.time()
    for epoch in range(settings["epochs"]):
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(x))
        x_epoch = sweep_common.augment(x[order], rng).astype("float32") / 255.0
        h = fit_model.fit(
            x_epoch, y[order], batch_size=settings["batch_size"], epochs=epoch + 1,
            initial_epoch=epoch, shuffle=False, verbose=0,
        )  # fmt: skip
        for k, v in h.history.items():
            history.setdefault(k, []).extend(float(a) for a in v)
        print(f"  epoch {epoch + 1}: {time.time() - start:.0f}s "
              f"{ {k: round(v[-1], 4) for k, v in history.items()} }", flush=True)  # fmt: skip
    train_seconds = time.time() - start
    results = {}
    x_test, y_test = test
    for eps, attacks in reproduce.evaluation_protocol(args.mode):
        cheap = tuple(a for a in attacks if a != "autoattack")
        report = evaluate_robustness(
            model, (x_test, y_test), attacks=cheap, eps=eps, batch_size=500,
            seed=seed, verbose=False,
        )  # fmt: skip
        if "autoattack" in attacks:
            # x_test is interleaved by class: every prefix is class-balanced.
            n = min(settings["autoattack_size"], len(x_test))
            report["autoattack_subset"] = evaluate_robustness(
                model, (x_test[:n], y_test[:n]), attacks=("clean", "autoattack"),
                eps=eps, batch_size=500, seed=seed, verbose=False,
            )  # fmt: skip
        results[f"eps={eps * 255:.0f}/255"] = report
    lipschitz = lipschitz_report(
        model, x_test[: settings["lipschitz_size"]],
        iterations=settings["lipschitz_iterations"], seed=seed, batch_size=256,
    )  # fmt: skip
    norms = model.spectral_norms(exact=True)
    import keras

    return {
        "mode": args.mode,
        "penalty": penalty,
        "seed": seed,
        "settings": settings,
        "backend": keras.config.backend(),
        "train_seconds": train_seconds,
        "seconds": time.time() - start,
        "history": history,
        "evaluation": results,
        "lipschitz": lipschitz,
        "sigma_exact": {
            layer: {p: [float(v) for v in np.ravel(vals)] for p, vals in d.items()}
            for layer, d in norms.items()
        },
    }


def device_description():
    import keras

    backend = keras.config.backend()
    if backend == "jax":
        import jax

        return f"jax {jax.__version__}: {jax.devices()}"
    if backend == "torch":
        import torch

        name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        return f"torch {torch.__version__}: {name}"
    return backend


def main(argv=None):
    began = time.time()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    args, settings = parse_args(argv)
    import keras

    if keras.config.backend() not in ("jax", "torch"):
        sys.exit(
            "gpu_sweep.py runs on JAX or torch (no TensorFlow). "
            f"Received: KERAS_BACKEND={keras.config.backend()!r}"
        )
    import reproduce

    from specformer_keras.utils.io import atomic_write_json

    out_dir = os.path.join(args.out, args.mode)
    os.makedirs(out_dir, exist_ok=True)
    train, test = load_data(args, settings)
    settings["train_size_actual"] = len(train[1])
    print(f"device: {device_description()}; train {len(train[1])}, test {len(test[1])}",
          flush=True)  # fmt: skip
    durations = []
    skipped = []
    for seed in args.seeds:
        for penalty in args.lambdas:
            path = os.path.join(out_dir, f"lambda={penalty:g}_seed={seed}.json")
            if os.path.exists(path):
                print(f"skip {path} (finished)")
                continue
            elapsed = time.time() - began
            projected = max(durations) if durations else 0.0
            if elapsed + projected > args.time_budget_s:
                skipped.append((penalty, seed))
                continue
            print(f"=== {args.mode}: lambda={penalty:g} seed={seed} ===", flush=True)
            start = time.time()
            record = run_one(args, settings, penalty, seed, train, test)
            durations.append(time.time() - start)
            record["device"] = device_description()
            atomic_write_json(path, record)
            print(f"  done in {durations[-1]:.0f}s", flush=True)
    if skipped:
        print(f"Budget of {args.time_budget_s:.0f}s reached; not started (rerun to "
              f"continue): {skipped}")  # fmt: skip
    reproduce.summarize(out_dir, args.mode)
    plot_lipschitz(out_dir)
    print(f"TensorFlow imported: {'tensorflow' in sys.modules}; "
          f"total {time.time() - began:.0f}s")  # fmt: skip


def plot_lipschitz(out_dir):
    from specformer_keras.plots import plot_lipschitz_per_layer
    from specformer_keras.utils.io import read_json

    groups = {}
    for name in sorted(os.listdir(out_dir)):
        if name.startswith("lambda=") and name.endswith(".json"):
            record = read_json(os.path.join(out_dir, name))
            if "lipschitz" in record:
                groups.setdefault(record["penalty"], []).append(record["lipschitz"])
    if groups:
        plot_lipschitz_per_layer(
            {f"λ={lam:g}": reports for lam, reports in sorted(groups.items())},
            path=os.path.join(out_dir, "lipschitz_per_layer.png"),
            title="Local Lipschitz per attention layer (median over test images)",
        )


if __name__ == "__main__":
    main()
