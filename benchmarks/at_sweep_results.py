"""The PGD-AT sweep's results: unit names, loading (run folder + record), summary.

`benchmarks/adversarial_sweep.py` writes the units; this module reads them back,
from the run folder (``runs/at_sweep``, every unit's ``state.json``) and the
record kept in the repository (``benchmarks/results/at_sweep``, finished units
only), and writes ``summary.md`` (per-lambda means with 95% t-intervals over seeds,
paired differences against lambda 0, one row per unit) and the figures.

    from at_sweep_results import summarize

    summarize("runs/at_sweep", assets="docs/assets", record="benchmarks/results/at_sweep")
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_common  # noqa: E402

# === Names ===


def unit_name(penalty, seed):
    return f"lambda={penalty:g}_seed={seed}"


def unit_dir(out, penalty, seed):
    return os.path.join(out, unit_name(penalty, seed))


def record_path(record, penalty, seed):
    return os.path.join(record, unit_name(penalty, seed) + ".json")


# === Summary ===
def unit_metrics(state, epoch=None):
    """Flat {metric: value} of one unit, with whatever stages exist.

    The held-out columns are read at ``epoch`` (1-based; default: the last finished
    one), so that a paired difference compares two units at the same epoch.
    """
    metrics = {}
    if state.get("epochs"):
        last = state["epochs"][-1] if epoch is None else state["epochs"][epoch - 1]
        metrics["held-out clean"] = last["heldout_clean"]
        metrics["held-out PGD-10"] = last["heldout_robust"]
        metrics["mean sigma_max"] = last["mean_sigma_max"]
    if "eval" in state:
        acc = state["eval"]["accuracy"]
        n = state["eval"]["n"]
        metrics[f"clean (n={n})"] = acc["clean"]
        metrics[f"PGD-20 (n={n})"] = acc["pgd20"]
        metrics[f"CW-20 (n={n})"] = acc["cw20"]
    chunks = state.get("autoattack_chunks") or []
    if (
        chunks
        and len(chunks) * state["config"]["autoattack_chunk"]
        == state["config"]["autoattack_size"]
    ):
        n = sum(c["n"] for c in chunks)
        metrics[f"AutoAttack (n={n})"] = (
            sum(c["accuracy"]["autoattack"] * c["n"] for c in chunks) / n
        )
    if "lipschitz" in state:
        lip = state["lipschitz"]
        metrics["L model (median)"] = lip["model"]["median"]
        layers = list(lip["attention"])
        metrics["L attention (median, mean over layers)"] = sum(
            lip["attention"][k]["estimate"]["median"] for k in layers
        ) / len(layers)
        metrics["bound attention (median, mean over layers)"] = sum(
            lip["attention"][k]["bound"]["median"] for k in layers
        ) / len(layers)
    return metrics


def common_epoch(states):
    """The last epoch (1-based) every unit in ``states`` has finished, or None."""
    done = [len(s.get("epochs", [])) for s in states]
    return min(done) if done and min(done) else None


def table_head(names):
    """The two header lines of a markdown table with these column names."""
    return ["| " + " | ".join(names) + " |", "|---" * len(names) + "|"]


def unit_rows(by_lambda, columns, percent):
    """Markdown lines: one row per unit, held-out columns at its own last epoch."""
    lines = [
        "",
        "Per unit (held-out columns at the unit's own last epoch):",
        "",
        *table_head(["lambda", "seed", *columns, "epochs done"]),
    ]
    for lam in sorted(by_lambda):
        for seed, state in sorted(by_lambda[lam].items()):
            m = unit_metrics(state)
            cells = [
                "–"
                if col not in m
                else f"{100 * m[col]:.1f}"
                if percent(col)
                else f"{m[col]:.3f}"
                for col in columns
            ]
            lines.append(
                f"| {lam:g} | {seed} | " + " | ".join(cells)
                + f" | {state.get('epochs_done', 0)} |"
            )  # fmt: skip
    return lines


# Windows (last epochs) of the held-out curves over which "has robust accuracy stopped
# rising?" is read: the long one averages the per-epoch noise, the short one shows the end.
PLATEAU_WINDOWS = (10, 5)


def plateau_rows(by_lambda):
    """Markdown lines: the slope of each unit's held-out curves over its last epochs.

    A least-squares line through the last ``PLATEAU_WINDOWS`` epochs of held-out
    PGD-10 and clean accuracy, in points per epoch with a 95% interval: an interval
    that holds 0 means no measurable rise within the noise of the per-epoch
    estimates. Each lambda with two or more seeds also gets a row with the mean of
    its seeds' slopes and a t-interval over the seeds. A flat end of a cosine
    schedule says training has converged at this schedule, not that a longer
    schedule could not do better.
    """
    windows = ", ".join(f"last {w}" for w in PLATEAU_WINDOWS)
    header = [
        f"{curve}, last {w}" for curve in ("PGD-10", "clean") for w in PLATEAU_WINDOWS
    ]
    lines = [
        "",
        f"Held-out curves over each unit's final epochs ({windows}): least-squares slope "
        "in points per epoch ± 95% t-interval (0 inside the interval = no measurable "
        "rise):",
        "",
        *table_head(["lambda", "seed", "epochs", *header]),
    ]
    for lam in sorted(by_lambda):
        slopes = {}  # (curve, window) -> the slope of every seed of this lambda
        for seed, state in sorted(by_lambda[lam].items()):
            rows = state.get("epochs", [])
            if len(rows) < max(PLATEAU_WINDOWS):
                continue
            cells = []
            for key in ("heldout_robust", "heldout_clean"):
                for window in PLATEAU_WINDOWS:
                    last = rows[-window:]
                    slope, half = sweep_common.slope_interval(
                        [r["epoch"] for r in last], [100 * r[key] for r in last]
                    )
                    slopes.setdefault((key, window), []).append(slope)
                    cells.append(f"{slope:+.2f} ± {half:.2f}")
            lines.append(
                f"| {lam:g} | {seed} | {len(rows)} | " + " | ".join(cells) + " |"
            )
        seeds = len(next(iter(slopes.values()), []))
        if seeds >= 2:
            # Across seeds: the mean slope with a t-interval over the seeds' slopes.
            cells = [
                "{:+.2f} ± {:.2f}".format(*sweep_common.t_interval(values))
                for values in slopes.values()
            ]
            lines.append(
                f"| {lam:g} | mean of {seeds} | – | " + " | ".join(cells) + " |"
            )
    return lines


# Epoch windows of the paired held-out gap: does MSVP's difference from lambda 0 close
# (or open) as training goes on? Two consecutive windows at the end of training.
GAP_WINDOW = 10


def paired_gap_rows(by_lambda, key="heldout_robust", label="held-out PGD-10"):
    """Markdown lines: the paired held-out gap to lambda 0 over the final epochs.

    For each unit with a lambda-0 partner of the same seed, the per-epoch difference
    ``lambda - lambda 0`` of ``key`` (in points) is averaged over the two windows of
    ``GAP_WINDOW`` epochs that end at the last epoch both units have finished, and
    fitted with a least-squares slope over both windows together. A gap that neither
    changes between the windows nor has a slope says a longer run of the same schedule
    would most likely not close it; one that shrinks says it might. Each lambda with
    two or more seeds also gets the mean over seeds with a t-interval over the seeds.
    """
    base_units = by_lambda.get(0.0, {})
    header = [
        "epochs",
        f"gap, earlier {GAP_WINDOW} epochs",
        f"gap, last {GAP_WINDOW} epochs",
        "slope of the gap (both windows)",
    ]
    rows = []
    per_lambda = {}
    for lam in sorted(by_lambda):
        if lam == 0.0:
            continue
        for seed, state in sorted(by_lambda[lam].items()):
            base = base_units.get(seed)
            if base is None:
                continue
            ours = {r["epoch"]: r[key] for r in state.get("epochs", [])}
            theirs = {r["epoch"]: r[key] for r in base.get("epochs", [])}
            both = sorted(set(ours) & set(theirs))
            if len(both) < 2 * GAP_WINDOW:
                continue
            epochs = both[-2 * GAP_WINDOW :]
            gap = [100 * (ours[e] - theirs[e]) for e in epochs]
            early = sum(gap[:GAP_WINDOW]) / GAP_WINDOW
            late = sum(gap[GAP_WINDOW:]) / GAP_WINDOW
            slope, half = sweep_common.slope_interval(epochs, gap)
            values = per_lambda.setdefault(lam, ([], [], []))
            for column, value in zip(values, (early, late, slope)):
                column.append(value)
            earlier, last = epochs[:GAP_WINDOW], epochs[GAP_WINDOW:]
            windows = f"{earlier[0]}-{earlier[-1]} / {last[0]}-{last[-1]}"
            rows.append(
                f"| {lam:g} | {seed} | {windows} | {early:+.1f} | {late:+.1f} | "
                f"{slope:+.3f} ± {half:.3f} |"
            )
        values = per_lambda.get(lam)
        if values and len(values[0]) >= 2:
            early, late, slope = (sweep_common.t_interval(v) for v in values)
            rows.append(
                f"| {lam:g} | mean of {len(values[0])} | – "
                f"| {early[0]:+.1f} ± {early[1]:.1f} "
                f"| {late[0]:+.1f} ± {late[1]:.1f} | {slope[0]:+.3f} ± {slope[1]:.3f} |"
            )
    if not rows:
        return []
    return [
        "",
        f"Paired {label} gap (lambda minus lambda 0, same seed, points) over the final "
        f"epochs: the mean gap in two windows of {GAP_WINDOW} epochs and the "
        "least-squares slope of the per-epoch gap in points per epoch ± 95% "
        "t-interval:",
        "",
        *table_head(["lambda", "seed", *header]),
        *rows,
    ]


def load_states(out, record=None):
    """Unit states of ``out``, plus finished units of ``record`` (which take precedence:
    a recorded unit is finished, a unit folder may hold an unfinished rerun)."""
    from specformer_keras.utils.io import read_json

    units = {}
    if record and os.path.isdir(record):
        for name in sorted(os.listdir(record)):
            if name.startswith("lambda=") and name.endswith(".json"):
                units[name[: -len(".json")]] = read_json(os.path.join(record, name))
    if os.path.isdir(out):
        for name in sorted(os.listdir(out)):
            path = os.path.join(out, name, "state.json")
            if (
                name.startswith("lambda=")
                and name not in units
                and os.path.exists(path)
            ):
                units[name] = read_json(path)
    return [units[name] for name in sorted(units)]


def code_line(states):
    """One sentence naming the code the units ran (several commits break the pairing)."""
    versions = {}
    for state in states:
        code = state.get("code")
        key = (
            "unknown"
            if not code
            else code["commit"][:10]
            + (" (with uncommitted changes)" if code["dirty"] else "")
        )
        versions.setdefault(key, []).append(
            unit_name(state["config"]["penalty"], state["config"]["seed"])
        )
    if len(versions) == 1:
        return f"All units ran code {next(iter(versions))}."
    parts = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(versions.items()))
    return f"**The units ran different code, so the pairing is broken:** {parts}."


def paired_difference(unit, base, columns, percent):
    """``{column: value}``: one unit against its lambda-0 partner of the same seed.

    Accuracy columns (``percent(column)``) give ``unit - base`` (a fraction); the
    others (sigma, Lipschitz estimates, bounds, whose scale differs by orders of
    magnitude between layers and lambdas) ``unit / base - 1``. Held-out columns of a
    unit still training are compared with lambda 0 at the same epoch, never at lambda
    0's later (better) epoch. A column either unit lacks, or a relative change from a
    zero baseline (undefined), is left out.
    """
    common = min(len(unit.get("epochs", [])), len(base.get("epochs", [])))
    m = unit_metrics(unit, common or None)
    b = unit_metrics(base, common or None)
    diff = {}
    for col in columns:
        if col not in m or col not in b:
            continue
        if percent(col):
            diff[col] = m[col] - b[col]
        elif b[col]:
            diff[col] = m[col] / b[col] - 1.0
    return diff


def paired_by_seed(by_lambda, columns, percent):
    """``{lambda: {seed: paired_difference}}`` for every unit with a lambda-0 partner."""
    if 0.0 not in by_lambda or len(by_lambda) < 2:
        return {}
    return {
        lam: {
            seed: paired_difference(unit, by_lambda[0.0][seed], columns, percent)
            for seed, unit in sorted(units.items())
            if seed in by_lambda[0.0]
        }
        for lam, units in by_lambda.items()
        if lam != 0.0
    }


def paired_differences(by_lambda, columns, percent):
    """``{lambda: {column: [one value per seed]}}`` against lambda 0 of the same seed.

    See ``paired_difference`` for the form of each value. Empty without lambda 0 or
    another lambda.
    """
    return {
        lam: {
            col: [diff[col] for _, diff in sorted(seeds.items()) if col in diff]
            for col in columns
        }
        for lam, seeds in paired_by_seed(by_lambda, columns, percent).items()
    }


def paired_unit_rows(by_lambda, columns, percent):
    """Markdown lines: every seed's paired difference (the values behind the means)."""
    by_seed = paired_by_seed(by_lambda, columns, percent)
    if not by_seed:
        return []
    lines = [
        "",
        "Paired differences per seed (same units as above):",
        "",
        *table_head(["lambda", "seed", *columns]),
    ]
    for lam, seeds in sorted(by_seed.items()):
        for seed, diff in seeds.items():
            cells = [
                "–"
                if col not in diff
                else f"{100 * diff[col]:+.1f}"
                if percent(col)
                else f"{100 * diff[col]:+.1f}%"
                for col in columns
            ]
            lines.append(f"| {lam:g} | {seed} | " + " | ".join(cells) + " |")
    return lines


def summarize(out, assets=None, record=None):
    from specformer_keras.utils.io import atomic_write_text

    states = load_states(out, record)
    if not states:
        print(f"No units in {out}" + (f" or {record}" if record else ""))
        return None
    by_lambda = {}
    for state in states:
        by_lambda.setdefault(state["config"]["penalty"], {})[
            state["config"]["seed"]
        ] = state
    # Held-out columns of one lambda are read at the last epoch all its seeds have
    # finished, so a unit still training never averages with finished ones.
    metrics = {
        lam: {
            seed: unit_metrics(s, common_epoch(units.values()))
            for seed, s in units.items()
        }
        for lam, units in by_lambda.items()
    }
    columns = []
    for per_seed in metrics.values():
        for m in per_seed.values():
            columns += [c for c in m if c not in columns]

    def percent(column):
        return not (column.startswith(("L ", "bound")) or "sigma" in column)

    config = states[0]["config"]
    lines = [
        f"PGD-AT sweep in `{out}`: {len(states)} units; preset {config['preset']}, "
        f"{config['train_size']} training images, {config['epochs']} epochs planned, "
        f"train eps {config['train_eps']:g}/255 with {config['attack_steps']} steps, "
        f"eval eps {config['eval_eps']:g}/255. Cells: mean ± 95% t-interval half-width over "
        "seeds (n = seeds); accuracies in %. Held-out columns are read at the last epoch "
        "that every seed of the lambda has finished (epochs done per seed in the last "
        "column; per-unit values at each unit's own last epoch follow the tables). "
        + code_line(states),
        "",
        *table_head(["lambda", *columns, "epochs done"]),
    ]
    for lam in sorted(metrics):
        cells = []
        for col in columns:
            values = [m[col] for m in metrics[lam].values() if col in m]
            if not values:
                cells.append("–")
                continue
            scale = 100.0 if percent(col) else 1.0
            cells.append(
                sweep_common.format_interval(values, scale, 1 if percent(col) else 3)
            )
        epochs = ",".join(
            str(s.get("epochs_done", 0)) for _, s in sorted(by_lambda[lam].items())
        )
        lines.append(f"| {lam:g} | " + " | ".join(cells) + f" | {epochs} |")
    paired = paired_differences(by_lambda, columns, percent)
    if paired:
        lines += [
            "",
            "Paired differences against lambda 0 (same seed), mean ± 95% t-interval over "
            "seeds: accuracies in points (lambda minus lambda 0), the other columns as a "
            "relative change (lambda / lambda 0 - 1, in %); held-out columns at the epoch "
            "both units have finished:",
            "",
            *table_head(["lambda", *columns]),
        ]
        for lam, per_column in sorted(paired.items()):
            cells = [
                "–"
                if not per_column.get(col)
                else sweep_common.format_interval(per_column[col], 100.0, 1)
                if percent(col)
                else sweep_common.format_interval(per_column[col], 100.0, 1, unit="%")
                for col in columns
            ]
            lines.append(f"| {lam:g} | " + " | ".join(cells) + " |")
    lines += paired_unit_rows(by_lambda, columns, percent)
    lines += unit_rows(by_lambda, columns, percent)
    lines += plateau_rows(by_lambda)
    lines += paired_gap_rows(by_lambda)
    table = "\n".join(lines)
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "summary.md"), table + "\n")
    print(table)
    figures = [plot_curves(by_lambda, os.path.join(out, "heldout_pgd_per_epoch.png"))]
    if paired:
        figures.append(
            plot_paired_differences(paired, os.path.join(out, "paired_differences.png"))
        )
    lipschitz = {
        lam: [s["lipschitz"] for s in units.values() if "lipschitz" in s]
        for lam, units in by_lambda.items()
    }
    if any(lipschitz.values()):
        from specformer_keras.plots import plot_lipschitz_per_layer

        path = os.path.join(out, "lipschitz_per_layer.png")
        plot_lipschitz_per_layer(
            {
                f"λ={lam:g}": reports
                for lam, reports in sorted(lipschitz.items())
                if reports
            },
            path=path,
            title="Local Lipschitz per attention layer after PGD-AT (median over images)",
        )
        figures.append(path)
    if assets:
        import shutil

        prefix = os.path.basename(os.path.normpath(out))
        os.makedirs(assets, exist_ok=True)
        for path in figures:
            shutil.copy(
                path, os.path.join(assets, f"{prefix}_{os.path.basename(path)}")
            )
    return metrics


# (column prefixes, unit) of the two panels of plot_paired_differences.
PAIRED_PANELS = (
    (("clean", "PGD-20", "CW-20", "AutoAttack"), "points"),
    (("mean sigma_max", "L attention", "L model"), "%"),
)


def plot_paired_differences(paired, path):
    """Paired differences against lambda 0: seeds as dots, mean and 95% interval as a bar.

    Left: test accuracies (points); right: mean sigma_max and the local Lipschitz
    estimates (relative change in %). A zero line marks "no effect".
    """
    from specformer_keras.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    lambdas = sorted(paired)
    width = 0.8 / max(len(lambdas), 1)
    for ax, (prefixes, unit) in zip(axes, PAIRED_PANELS):
        columns = [
            next(c for c in paired[lambdas[0]] if c.startswith(prefix))
            for prefix in prefixes
            if any(c.startswith(prefix) for c in paired[lambdas[0]])
        ]
        for i, lam in enumerate(lambdas):
            for j, col in enumerate(columns):
                values = [100.0 * v for v in paired[lam].get(col, [])]
                if not values:
                    continue
                x = j + (i - (len(lambdas) - 1) / 2) * width
                mean, half = sweep_common.t_interval(values)
                ax.plot([x] * len(values), values, "o", color=colors[i % len(colors)],
                        alpha=0.5, markersize=4)  # fmt: skip
                ax.errorbar([x], [mean], yerr=None if half is None else [[half], [half]],
                            fmt="_", color=colors[i % len(colors)], markersize=14,
                            capsize=4, label=f"λ={lam:g}" if j == 0 else None)  # fmt: skip
        ax.axhline(0.0, color="0.5", linewidth=0.8)
        ax.set_xticks(range(len(columns)))
        ax.set_xticklabels([c.split(" (")[0] for c in columns], fontsize=8)
        ax.set_ylabel(
            f"difference to λ=0 ({unit})"
            if unit == "points"
            else f"change vs λ=0 ({unit})"
        )
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    n = max(len(v) for per in paired.values() for v in per.values())
    axes[0].set_title(f"test accuracy, paired by seed (seeds: {n}; bars: 95% t)")
    axes[1].set_title("sigma and local Lipschitz (median), relative")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(by_lambda, path):
    from specformer_keras.plots import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, lam in enumerate(sorted(by_lambda)):
        for seed, state in sorted(by_lambda[lam].items()):
            rows = state.get("epochs", [])
            epochs = [r["epoch"] for r in rows]
            kwargs = dict(color=colors[i % len(colors)], alpha=0.8)
            label = f"λ={lam:g}" if seed == min(by_lambda[lam]) else None
            axes[0].plot(epochs, [100 * r["heldout_robust"] for r in rows], "o-",
                         label=label, markersize=3, **kwargs)  # fmt: skip
            axes[1].plot(epochs, [100 * r["heldout_clean"] for r in rows], "o-",
                         label=label, markersize=3, **kwargs)  # fmt: skip
    config = next(iter(next(iter(by_lambda.values())).values()))["config"]
    axes[0].set_title(
        f"held-out {config['monitor_attack'].upper()} accuracy at "
        f"{config['eval_eps']:g}/255 ({config['heldout_size']} images)"
    )
    axes[1].set_title("held-out clean accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
