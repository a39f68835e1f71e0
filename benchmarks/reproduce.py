"""Reproduction study: vanilla ViT (penalty 0) vs MSVP at several lambdas.

Paired runs: same seed, data, schedule and architecture; only the MSVP lambda
differs. Two protocols from the paper (Hu et al., ECCV 2024):

* ``--mode=standard``: standard training, evaluated clean and with FGSM and
  PGD-20 at eps 1/255 and 2/255 (the paper's standard-training table).
* ``--mode=adversarial``: PGD-AT (eps 8/255, step 2/255, ``--attack_steps``
  steps), evaluated clean, PGD-20, CW-20 and AutoAttack (standard) at 8/255.

Every evaluation set is class-balanced (`specformer_keras.data.balanced_subset`).
For the CPU adversarial-training sweep with per-epoch checkpoints, held-out
curves and Lipschitz diagnostics use `benchmarks/adversarial_sweep.py`; for a
GPU window, `benchmarks/gpu_sweep.py`.

Every (lambda, seed) run writes ``<out>/<mode>/lambda=<l>_seed=<s>.json`` and is
skipped when that file exists (rerun the same command to resume). The summary
(``summary.md``: mean and spread over seeds, number of test images) and plots
(clean vs robust accuracy across lambda; sigma per layer with and without MSVP)
are rebuilt from all finished runs at the end.

CPU scale (what docs/reproducing.md reports; run in the background):

    python benchmarks/reproduce.py --mode=standard --seeds=0,1
    python benchmarks/reproduce.py --mode=adversarial --seeds=0 --lambdas=0,1e-3,1e-2

Paper scale on a GPU/TPU (full CIFAR-10 from TFDS, DeiT-style ViT at 32x32;
``--pretrained`` fine-tunes a KerasHub ViT-B/16 at 224 through ``apply_msvp``,
which needs its weights downloaded from Kaggle/KerasHub):

    python benchmarks/reproduce.py --mode=adversarial --scale=paper --dataset=cifar10
"""

import argparse
import json
import os
import statistics
import sys
import time

SCALES = {
    # CPU: small ViT on a class-balanced subset of CIFAR-10 (shared JPEG archive).
    "cpu": dict(
        preset="vit_micro_patch4_32",
        train_subset=5000,
        test_subset=1000,
        epochs=15,
        batch_size=128,
        learning_rate=1e-3,
        attack_steps=5,
        autoattack_subset=100,
    ),
    # Paper scale: ViT-Tiny/4 on full CIFAR-10 (the paper also fine-tunes ViT-B/16).
    "paper": dict(
        preset="vit_tiny_patch4_32",
        train_subset=None,
        test_subset=None,
        epochs=100,
        batch_size=128,
        learning_rate=5e-4,
        attack_steps=10,
        autoattack_subset=None,
    ),
}

DEFAULT_ARCHIVE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    os.pardir,
    "shared",
    "data",
    "cifar10-jpeg.tar.gz",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--mode", choices=("standard", "adversarial"), default="standard"
    )
    parser.add_argument("--scale", choices=tuple(SCALES), default="cpu")
    parser.add_argument("--lambdas", default="0,1e-5,1e-4,1e-3,1e-2")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--dataset", default=os.path.normpath(DEFAULT_ARCHIVE))
    parser.add_argument("--out", default="runs/reproduce")
    parser.add_argument("--backend", choices=("tensorflow", "jax"), default=None)
    parser.add_argument(
        "--pretrained", default=None, help="KerasHub ViT preset to fine-tune"
    )
    for key, value in SCALES["cpu"].items():
        kind = str if key == "preset" else (float if key == "learning_rate" else int)
        parser.add_argument(
            f"--{key}", type=kind, default=None, help=f"cpu default {value}"
        )
    parser.add_argument("--summarize_only", action="store_true")
    parser.add_argument("--train_only", action="store_true", help="skip evaluation")
    args = parser.parse_args(argv)
    settings = dict(SCALES[args.scale])
    for key in settings:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    try:
        lambdas = [float(v) for v in args.lambdas.split(",")]
        seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        parser.error(
            f"--lambdas and --seeds must be comma-separated numbers. "
            f"Received: --lambdas={args.lambdas} --seeds={args.seeds}"
        )
    if any(lam < 0 for lam in lambdas):
        parser.error(f"--lambdas must be >= 0. Received: --lambdas={args.lambdas}")
    return args, settings, lambdas, seeds


def to_numpy(dataset):
    import numpy as np

    xs, ys = [], []
    for x, y in dataset:
        xs.append(np.asarray(x))
        ys.append(np.asarray(y))
    return np.concatenate(xs), np.concatenate(ys)


def build_model(settings, penalty, seed, pretrained):
    from specformer_keras import SpectralViT, apply_msvp

    if pretrained:  # paper-scale fine-tuning of a pretrained ViT through apply_msvp
        import keras_hub

        classifier = keras_hub.models.ImageClassifier.from_preset(
            pretrained, num_classes=10
        )
        return apply_msvp(classifier, penalty=penalty) if penalty else classifier
    return SpectralViT.from_preset(settings["preset"], penalty=penalty, seed=seed)


def evaluation_protocol(mode):
    if mode == "standard":
        return [(1 / 255, ("clean", "fgsm", "pgd20")), (2 / 255, ("fgsm", "pgd20"))]
    return [(8 / 255, ("clean", "pgd20", "cw20", "autoattack"))]


def train_one(args, settings, penalty, seed, train_ds, stem):
    """Trains one model (or loads it when `<stem>.keras` exists); returns it."""
    import keras

    from specformer_keras import AdversarialTrainer

    model_path, history_path = stem + ".keras", stem + ".history.json"
    if os.path.exists(model_path) and os.path.exists(history_path):
        print(f"load trained model {model_path}")
        return keras.saving.load_model(model_path)
    keras.utils.set_random_seed(seed)
    model = build_model(settings, penalty, seed, args.pretrained)
    steps = settings["epochs"] * len(train_ds)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        steps,
        warmup_target=settings["learning_rate"],
        warmup_steps=max(steps // 10, 1),
    )
    fit_model = model
    if args.mode == "adversarial":
        fit_model = AdversarialTrainer(
            model, method="pgd_at", eps=8 / 255, step_size=2 / 255,
            steps=settings["attack_steps"], seed=seed,
        )  # fmt: skip
    fit_model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.time()
    history = fit_model.fit(train_ds, epochs=settings["epochs"], verbose=2)
    record = {
        "train_seconds": time.time() - start,
        "backend": keras.config.backend(),
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
    model.save(model_path)
    _write_json(history_path, record)
    return model


def evaluate_one(args, settings, penalty, seed, model, test_xy, stem):
    import numpy as np

    from specformer_keras.evaluation import evaluate_robustness

    with open(stem + ".history.json") as f:
        record = json.load(f)
    x_test, y_test = test_xy
    results = {}
    for eps, attacks in evaluation_protocol(args.mode):
        cheap = tuple(a for a in attacks if a != "autoattack")
        report = evaluate_robustness(
            model, (x_test, y_test), attacks=cheap, eps=eps,
            batch_size=settings["batch_size"], seed=seed, verbose=False,
        )  # fmt: skip
        if "autoattack" in attacks:
            # Class-balanced (x_test is sorted by class: x_test[:n] would be one class).
            idx = balanced_indices(y_test, settings["autoattack_subset"])
            aa = evaluate_robustness(
                model, (x_test[idx], y_test[idx]), attacks=("clean", "autoattack"),
                eps=eps, batch_size=settings["batch_size"], seed=seed, verbose=False,
            )  # fmt: skip
            report["autoattack_subset"] = aa
        results[f"eps={eps * 255:.0f}/255"] = report
    norms = model.spectral_norms(exact=True) if hasattr(model, "spectral_norms") else {}
    record.update(
        {
            "mode": args.mode,
            "penalty": penalty,
            "seed": seed,
            "settings": settings,
            "evaluation": results,
            "sigma_exact": {
                layer: {p: [float(v) for v in np.ravel(vals)] for p, vals in d.items()}
                for layer, d in norms.items()
            },
        }
    )
    _write_json(stem + ".json", record)
    return record


def _write_json(path, record):
    from specformer_keras.utils.io import atomic_write_json

    atomic_write_json(path, record, indent=1)


def balanced_indices(labels, size, seed=0):
    """All indices when `size` is None (or covers the set), else a class-balanced subset."""
    import numpy as np

    from specformer_keras.data import balanced_subset

    if size is None or size >= len(labels):
        return np.arange(len(labels))
    return balanced_subset(np.asarray(labels), size, seed=seed)


def accuracy_rows(record):
    """Flattens one run's evaluation into {"clean": acc, "pgd20@1/255": acc, ...}."""
    rows = {}
    for eps_name, report in record["evaluation"].items():
        accuracies = dict(report["accuracy"])
        if "autoattack_subset" in report:
            sub = report["autoattack_subset"]
            accuracies["autoattack"] = sub["accuracy"]["autoattack"]
            accuracies[f"clean (AA subset n={sub['n']})"] = sub["accuracy"]["clean"]
        for attack, acc in accuracies.items():
            key = attack if attack.startswith("clean") else f"{attack}@{eps_name[4:]}"
            rows[key] = acc
    return rows


def summarize(out_dir, mode):

    from specformer_keras.plots import pyplot

    records = []
    for name in sorted(os.listdir(out_dir)):
        if (
            name.startswith("lambda=")
            and name.endswith(".json")
            and ".history." not in name
        ):
            with open(os.path.join(out_dir, name)) as f:
                records.append(json.load(f))
    if not records:
        print(f"No finished runs in {out_dir}")
        return None
    by_lambda = {}
    for record in records:
        by_lambda.setdefault(record["penalty"], []).append(record)
    columns = sorted({k for r in records for k in accuracy_rows(r)}, key=_column_order)
    n_test = records[0]["evaluation"][next(iter(records[0]["evaluation"]))]["n"]
    lines = [
        f"Mode: {mode}; {len(records)} runs; test images per run: {n_test}; "
        "accuracy in % as mean ± std over seeds (n seeds in brackets).",
        "",
        "| lambda | " + " | ".join(columns) + " | mean sigma_max |",
        "|---" * (len(columns) + 2) + "|",
    ]
    summary = {}
    for lam in sorted(by_lambda):
        runs = by_lambda[lam]
        cells = []
        summary[lam] = {}
        for col in columns:
            values = [
                100 * accuracy_rows(r)[col] for r in runs if col in accuracy_rows(r)
            ]
            mean = statistics.mean(values)
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[lam][col] = (mean, std)
            cells.append(f"{mean:.1f} ± {std:.1f} ({len(values)})")
        sigma = statistics.mean(
            max(max(v) for v in layer.values())
            for r in runs
            for layer in r["sigma_exact"].values()
        )
        lines.append(f"| {lam:g} | " + " | ".join(cells) + f" | {sigma:.3f} |")
    table = "\n".join(lines)
    from specformer_keras.utils.io import atomic_write_text

    atomic_write_text(os.path.join(out_dir, "summary.md"), table + "\n")
    print(table)

    plt = pyplot()
    robust_cols = [c for c in columns if c != "clean"]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for col in robust_cols:
        xs = [summary[lam]["clean"][0] for lam in sorted(summary)]
        ys = [summary[lam][col][0] for lam in sorted(summary)]
        ax.plot(xs, ys, "o-", label=col)
        for lam, x, y in zip(sorted(summary), xs, ys):
            ax.annotate(
                f"λ={lam:g}",
                (x, y),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title(f"Clean vs robust accuracy across λ ({mode} training)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "tradeoff.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for lam in sorted(by_lambda):
        run = by_lambda[lam][0]
        layers = list(run["sigma_exact"])
        values = [
            max(max(v) for v in run["sigma_exact"][layer].values()) for layer in layers
        ]
        ax.plot(range(len(layers)), values, "o-", label=f"λ={lam:g}")
    ax.set_xlabel("encoder block")
    ax.set_ylabel("max σ over heads of Q/K/V (exact SVD)")
    ax.set_title("Largest singular value per layer after training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "sigma_per_layer.png"), dpi=110)
    plt.close(fig)
    return summary


def _column_order(name):
    order = ["clean", "fgsm", "pgd20", "cw20", "autoattack"]
    base = name.split("@")[0]
    return (order.index(base) if base in order else 99, name)


def main(argv=None):
    args, settings, lambdas, seeds = parse_args(argv)
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    out_dir = os.path.join(args.out, args.mode)
    os.makedirs(out_dir, exist_ok=True)
    if not args.summarize_only:
        from specformer_keras.data import load_dataset

        if not os.path.exists(args.dataset) and os.sep in args.dataset:
            sys.exit(f"--dataset not found: {args.dataset}")
        for seed in seeds:
            train_ds = test_xy = None
            for penalty in lambdas:
                stem = os.path.join(out_dir, f"lambda={penalty:g}_seed={seed}")
                if os.path.exists(stem + ".json"):
                    print(f"skip {stem} (finished)")
                    continue
                if train_ds is None:
                    size = 224 if args.pretrained else None
                    train_ds = load_dataset(
                        args.dataset, split="train", batch_size=settings["batch_size"],
                        subset=settings["train_subset"], augment=True, seed=seed,
                        image_size=size,
                    )  # fmt: skip
                    # The whole test split, then a class-balanced subset (a TFDS
                    # `subset` would be the first N images, not balanced).
                    x_test, y_test = to_numpy(load_dataset(
                        args.dataset, split="test", batch_size=512, seed=0,
                        image_size=size,
                    ))  # fmt: skip
                    idx = balanced_indices(y_test, settings["test_subset"])
                    test_xy = x_test[idx], y_test[idx]
                print(
                    f"=== {args.mode}: lambda={penalty:g} seed={seed} ===", flush=True
                )
                model = train_one(args, settings, penalty, seed, train_ds, stem)
                if not args.train_only:
                    evaluate_one(args, settings, penalty, seed, model, test_xy, stem)
    if not args.train_only:
        summarize(out_dir, args.mode)


if __name__ == "__main__":
    main()
