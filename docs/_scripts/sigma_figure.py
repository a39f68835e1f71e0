"""Draws the home-page figure: per-layer sigma of ViTs trained with and without MSVP.

Two `SpectralViT`s with the same seed (same initial weights, same data order)
are trained for a few epochs, one with `penalty=0` and one with MSVP, and the
exact largest singular value (SVD, max over heads) of the query, key and value
projections of every encoder block is plotted for the initial weights and both
trained models.

Usage (from the repository root; about 2-4 minutes on 2 CPU cores):

    KERAS_BACKEND=jax python docs/_scripts/sigma_figure.py \
        --data ../shared/data/cifar10-jpeg.tar.gz \
        --output docs/assets/sigma_per_layer.png

`--data` takes anything `specformer_keras.data.load_dataset` accepts (a TFDS
name such as `cifar10`, a folder, or an archive). The numbers behind the
figure are written next to it as JSON (same name, `.json`).
"""

import argparse
import json
import os
import sys
import time


def parse_args(argv):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shared = os.path.join(
        os.path.dirname(repo), "shared", "data", "cifar10-jpeg.tar.gz"
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=shared if os.path.exists(shared) else "cifar10",
        help="TFDS name, folder or archive (default: the shared CIFAR-10 archive).",
    )
    parser.add_argument(
        "--output", default=os.path.join(repo, "docs", "assets", "sigma_per_layer.png")
    )
    parser.add_argument("--preset", default="vit_micro_patch4_32")
    parser.add_argument("--penalty", type=float, default=1e-2)
    parser.add_argument("--subset", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jit_compile",
        choices=("auto", "true", "false"),
        default="auto",
        help="XLA for fit (false: faster start for tiny smoke runs).",
    )
    return parser.parse_args(argv)


def layer_sigmas(model):
    """`{projection: [max-over-heads exact sigma per block]}` in block order."""
    norms = model.spectral_norms(exact=True)
    layers = sorted(norms)  # paths like ".../encoder_block_3/..." (depth < 10 here)
    return {
        projection: [float(max(norms[layer][projection])) for layer in layers]
        for projection in ("query", "key", "value")
    }


def train(args, penalty, train_data):
    import keras

    from specformer_keras import SpectralViT

    keras.utils.set_random_seed(args.seed)
    model = SpectralViT.from_preset(args.preset, penalty=penalty, seed=args.seed)
    initial = layer_sigmas(model)
    model.compile(
        optimizer=keras.optimizers.AdamW(args.learning_rate, weight_decay=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile={"auto": "auto", "true": True, "false": False}[args.jit_compile],
    )
    history = model.fit(train_data, epochs=args.epochs, verbose=2)
    return initial, layer_sigmas(model), history.history


def plot(results, path, penalty, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.9), sharey=True)
    for ax, projection in zip(axes, ("query", "key", "value")):
        depth = len(results["initial"][projection])
        blocks = list(range(depth))
        ax.plot(
            blocks,
            results["initial"][projection],
            "k:",
            marker=".",
            label="initial weights",
        )
        ax.plot(
            blocks,
            results["vanilla"][projection],
            "-o",
            color="tab:red",
            label="penalty 0 (vanilla)",
        )
        ax.plot(
            blocks,
            results["msvp"][projection],
            "-s",
            color="tab:blue",
            label=f"MSVP, penalty {penalty:g}",
        )
        ax.set_title(projection)
        ax.set_xlabel("encoder block")
        ax.set_xticks(blocks)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("max over heads of σ(W_h)")
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    import keras

    from specformer_keras.data import load_dataset

    train_data = load_dataset(
        args.data,
        split="train",
        batch_size=args.batch_size,
        subset=args.subset,
        augment=True,
        seed=args.seed,
    )
    start = time.time()
    initial, vanilla, vanilla_history = train(args, 0.0, train_data)
    initial_msvp, msvp, msvp_history = train(args, args.penalty, train_data)
    if initial_msvp != initial:
        raise RuntimeError("The two runs did not start from the same weights.")
    results = {
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "backend": keras.config.backend(),
        "settings": vars(args),
        "initial": initial,
        "vanilla": vanilla,
        "msvp": msvp,
        "final_train_accuracy": {
            "vanilla": vanilla_history["accuracy"][-1],
            "msvp": msvp_history["accuracy"][-1],
        },
        "wall_seconds": round(time.time() - start, 1),
    }
    title = (
        f"{args.preset}, {args.epochs} epochs on {args.subset} training images "
        f"of {os.path.basename(str(args.data))}, same seed; exact SVD"
    )
    plot(results, args.output, args.penalty, title)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps({k: results[k] for k in ("vanilla", "msvp")}, indent=1))
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes)")


if __name__ == "__main__":
    main()
