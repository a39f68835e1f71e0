"""Which sub-layer carries the input sensitivity of the PGD-AT sweep's models?

The sweep's own ``blocks`` stage now estimates this for every unit it trains
(kept in its state and ``--record``); this script reads those, and for units of
an older sweep that lack the stage, estimates the local Lipschitz constant of each encoder block's
sub-layers (`specformer_keras.diagnostics.block_lipschitz_report`: both
LayerNorms, the attention branch and sub-layer, the MLP alone, its branch and
sub-layer, the whole block, and the residual stream's RMS) at the same
class-balanced test images, seed and iteration count as the sweep's own
Lipschitz stage, and writes ``<unit>/blocks.json`` (atomically; a unit whose
file has every map is skipped, so the script resumes). Then prints one table per lambda (median over images, mean
over seeds) and draws ``block_lipschitz.png`` (and a copy in ``--assets``).

    KERAS_BACKEND=jax python benchmarks/block_lipschitz.py --out=runs/at_sweep \
        --record=benchmarks/results/at_sweep --assets=docs/assets

Read-only on the sweep's own files, so it may run while the sweep trains the
next unit.
"""

import argparse
import glob
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import at_sweep_results  # noqa: E402
import at_sweep_unit  # noqa: E402
import sweep_common  # noqa: E402

from specformer_keras.diagnostics import MAPS  # noqa: E402
from specformer_keras.utils.io import (  # noqa: E402
    atomic_write_json,
    atomic_write_text,
    read_json,
)

COLUMNS = ("stream_rms",) + MAPS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the sweep's output folder")
    parser.add_argument("--archive", default=sweep_common.DEFAULT_ARCHIVE)
    parser.add_argument("--record", default=None, help="the sweep's --record folder")
    parser.add_argument("--assets", default=None, help="also copy the figure here")
    parser.add_argument("--summarize", action="store_true", help="no new estimates")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.out) and not (args.record and os.path.isdir(args.record)):
        parser.error(
            "--out (or --record) must be an existing sweep folder. Received: "
            f"--out={args.out} --record={args.record}"
        )
    return args


def ready_units(out):
    """Unit folders past the Lipschitz stage (so trained) without a ``blocks`` stage."""
    units = []
    for directory in sorted(glob.glob(os.path.join(out, "lambda=*_seed=*"))):
        path = os.path.join(directory, "state.json")
        if os.path.exists(path):
            state = read_json(path)
            if "lipschitz" in state and "blocks" not in state:
                units.append(directory)
    return units


def estimate_unit(directory, data_cache, archive):
    state = read_json(os.path.join(directory, "state.json"))
    config = state["config"]
    if "data" not in data_cache:
        data_cache["data"] = at_sweep_unit.build_data(config, archive)
    model = at_sweep_unit.load_model(directory)
    report = at_sweep_unit.stage_blocks(config, data_cache["data"], model)
    report["penalty"] = config["penalty"]
    report["seed"] = config["seed"]
    report["model_median"] = state["lipschitz"]["model"]["median"]
    return report


def is_current(report):
    """True when a saved report has every map of this version of the diagnostics."""
    return all(set(COLUMNS) <= set(block) for block in report["blocks"].values())


def collect(out, record=None):
    """``{lambda: [report, ...]}``: the sweep's ``blocks`` stage where a unit has one
    (in ``out`` or the record), else the unit's ``blocks.json`` from this script."""
    by_lambda, seen = {}, set()
    for state in at_sweep_results.load_states(out, record):
        if "blocks" in state:
            config = state["config"]
            report = dict(state["blocks"], penalty=config["penalty"])
            report.update(seed=config["seed"])
            report["model_median"] = state["lipschitz"]["model"]["median"]
            by_lambda.setdefault(report["penalty"], []).append(report)
            seen.add((report["penalty"], report["seed"]))
    for path in sorted(glob.glob(os.path.join(out, "lambda=*_seed=*", "blocks.json"))):
        report = read_json(path)
        if (report["penalty"], report["seed"]) not in seen:
            by_lambda.setdefault(report["penalty"], []).append(report)
    return dict(sorted(by_lambda.items()))


def table(by_lambda):
    lines = []
    for penalty, reports in by_lambda.items():
        seeds = sorted(r["seed"] for r in reports)
        model = np.mean([r["model_median"] for r in reports])
        lines.append(
            f"\nlambda={penalty:g} (seeds {seeds}; whole model L median {model:.3f}); "
            "median over images, mean over seeds:"
        )
        lines.append("| block | " + " | ".join(COLUMNS) + " |")
        lines.append("|---" * (len(COLUMNS) + 1) + "|")
        for path in reports[0]["blocks"]:
            cells = [
                np.mean([r["blocks"][path][c]["median"] for r in reports])
                for c in COLUMNS
            ]
            lines.append(f"| {path} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
        product = np.mean(
            [
                np.prod([b["block"]["median"] for b in r["blocks"].values()])
                for r in reports
            ]
        )
        lines.append(f"product of the block medians: {product:.3f}")
    return "\n".join(lines)


# The sub-layer maps whose paired ratio (lambda over lambda 0, same seed) is tabulated.
PAIRED_COLUMNS = (
    "stream_rms",
    "attention_branch",
    "norm2",
    "mlp",
    "mlp_branch",
    "block",
)


def paired_table(by_lambda):
    """Per block, the ratio of each map's median to lambda 0's of the same seed.

    Mean ± 95% t-interval over the seeds both lambdas have; "" without lambda 0.
    A ratio below 1 means MSVP made that sub-layer less sensitive.
    """
    if 0.0 not in by_lambda or len(by_lambda) < 2:
        return ""
    base = {r["seed"]: r for r in by_lambda[0.0]}
    lines = []
    for penalty, reports in by_lambda.items():
        pairs = [(r, base[r["seed"]]) for r in reports if r["seed"] in base]
        if penalty == 0.0 or not pairs:
            continue
        lines += [
            f"\nlambda={penalty:g} over lambda=0, same seed (seeds "
            f"{sorted(r['seed'] for r, _ in pairs)}): ratio of the medians, mean ± 95% "
            "t-interval over seeds",
            "| block | " + " | ".join(PAIRED_COLUMNS) + " |",
            "|---" * (len(PAIRED_COLUMNS) + 1) + "|",
        ]
        for path in reports[0]["blocks"]:
            cells = [
                sweep_common.format_interval(
                    [
                        r["blocks"][path][c]["median"] / b["blocks"][path][c]["median"]
                        for r, b in pairs
                    ],
                    scale=1.0,
                    digits=3,
                    unit="x",
                )
                for c in PAIRED_COLUMNS
            ]
            lines.append(f"| {path} | " + " | ".join(cells) + " |")
        ratios = [r["model_median"] / b["model_median"] for r, b in pairs]
        lines.append(
            "whole model L (median): "
            + sweep_common.format_interval(ratios, scale=1.0, digits=3, unit="x")
        )
    return "\n".join(lines)


PANELS = (
    "attention_branch",
    "block",
    "stream_rms",
    "norm2",
    "mlp",
    "mlp_branch",
)


def plot(by_lambda, path):
    from specformer_keras.plots import pyplot

    plt = pyplot()
    blocks = list(next(iter(by_lambda.values()))[0]["blocks"])
    fig, axes = plt.subplots(2, 3, figsize=(12.6, 7.0))
    width = 0.8 / len(by_lambda)
    for ax, name in zip(axes.ravel(), PANELS):
        for k, (penalty, reports) in enumerate(by_lambda.items()):
            values = [
                np.mean([r["blocks"][b][name]["median"] for r in reports])
                for b in blocks
            ]
            ax.bar(
                np.arange(len(blocks)) + (k - (len(by_lambda) - 1) / 2) * width,
                values, width, label=f"lambda={penalty:g} (n={len(reports)})",
            )  # fmt: skip
        ax.set_xticks(
            np.arange(len(blocks)), [f"block {i}" for i in range(len(blocks))]
        )
        ax.set_yscale("log")
        ax.set_title(
            "residual stream RMS at block input"
            if name == "stream_rms"
            else f"{name.replace('_', ' ')}: local Lipschitz"
        )
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("PGD-AT sweep, per encoder sub-layer (median over images, log scale)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    args = parse_args(argv)
    if not args.summarize:
        data_cache = {}
        for directory in ready_units(args.out):
            target = os.path.join(directory, "blocks.json")
            if os.path.exists(target) and is_current(read_json(target)):
                continue
            print(f"estimating {directory}", flush=True)
            atomic_write_json(
                target, estimate_unit(directory, data_cache, args.archive)
            )
    by_lambda = collect(args.out, args.record)
    if not by_lambda:
        raise SystemExit(f"No unit in {args.out} has block estimates yet.")
    text = table(by_lambda) + "\n" + paired_table(by_lambda)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, "block_lipschitz.md"), text + "\n")
    figure = plot(by_lambda, os.path.join(args.out, "block_lipschitz.png"))
    if args.assets:
        os.makedirs(args.assets, exist_ok=True)
        shutil.copy(figure, os.path.join(args.assets, "at_sweep_block_lipschitz.png"))
    print(f"figure: {figure}")


if __name__ == "__main__":
    main()
