"""Matplotlib figures for recipes and docs: training curves, sigma, accuracy vs eps.

Every function draws with the non-interactive Agg backend, saves a PNG when
`path` is given and returns the `matplotlib.figure.Figure`.
"""

import csv
import numbers

import numpy as np


def pyplot():
    """`matplotlib.pyplot` on the non-interactive Agg backend (for scripts that draw more).

    Returns:
        The `matplotlib.pyplot` module.

    Example:

    ```python
    from specformer_keras.plots import pyplot

    fig, ax = pyplot().subplots()
    ```
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path):
    fig.tight_layout()
    if path is not None:
        fig.savefig(str(path), dpi=120)
        pyplot().close(fig)
    return fig


def read_csv_log(path):
    """Reads a `keras.callbacks.CSVLogger` file into `{column: [floats]}`.

    Rows repeated by a resumed run (same epoch) keep the last value.

    Args:
        path: The CSV file.

    Returns:
        A dict of equal-length float lists, including `"epoch"`.
    """
    by_epoch = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            by_epoch[int(float(row["epoch"]))] = row
    columns = {}
    for epoch in sorted(by_epoch):
        for key, value in by_epoch[epoch].items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            columns.setdefault(key, []).append(number)
    return columns


def plot_training_curves(history, path=None, title=None):
    """Loss and accuracy-like metrics per epoch (training and validation).

    Args:
        history: A `keras.callbacks.History`, its `.history` dict, or the path
            of a `CSVLogger` file.
        path: PNG path to save to, or None.
        title: Optional figure title.

    Returns:
        The matplotlib figure.

    Raises:
        ValueError: If `history` holds no metrics.

    Example:

    ```python
    from specformer_keras.plots import plot_training_curves

    fig = plot_training_curves({"loss": [2.0, 1.5], "val_loss": [2.1, 1.8],
                                "accuracy": [0.2, 0.4]})
    ```
    """
    if isinstance(history, (str,)) or hasattr(history, "__fspath__"):
        logs = read_csv_log(history)
    else:
        logs = dict(getattr(history, "history", history))
    if not isinstance(logs, dict) or not logs:
        raise ValueError(
            "`history` must be a History, a non-empty dict of metric lists or a "
            f"CSV log path. Received: history={history!r}"
        )
    epochs = logs.pop("epoch", None)
    names = sorted(
        k for k in logs if not k.startswith(("sigma/", "learning_rate", "lr"))
    )
    base_names = sorted({k[4:] if k.startswith("val_") else k for k in names})
    losses = [n for n in base_names if "loss" in n]
    others = [n for n in base_names if "loss" not in n]
    panels = [p for p in (losses, others) if p]
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False
    )
    for ax, group in zip(axes[0], panels):
        for name in group:
            for key, style in ((name, "-"), ("val_" + name, "--")):
                if key in logs:
                    values = np.asarray(logs[key], dtype="float64")
                    x = (
                        np.asarray(epochs) + 1
                        if epochs is not None
                        else np.arange(1, len(values) + 1)
                    )
                    ax.plot(x, values, style, marker="o", markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if group is losses else "value")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_sigma(history, path=None, reduction="max", title=None):
    """Largest singular value of each layer's query/key/value over epochs.

    Args:
        history: The `history` list of a `SpectralNormMonitor`, or the path of
            its JSON/CSV file.
        path: PNG path to save to, or None.
        reduction: `"max"` or `"mean"` over heads.
        title: Optional figure title.

    Returns:
        The matplotlib figure (one panel per projection, one line per layer;
        epoch 0 is the state before training).

    Raises:
        ValueError: If `reduction` is not `"max"` or `"mean"`, or `history` is
            empty.

    Example:

    ```python
    from specformer_keras.plots import plot_sigma

    fig = plot_sigma([{"epoch": -1, "norms": {"block_0": {"query": [2.0, 1.0]}}},
                      {"epoch": 0, "norms": {"block_0": {"query": [1.5, 1.0]}}}])
    ```
    """
    if reduction not in ("max", "mean"):
        raise ValueError(
            f"`reduction` must be 'max' or 'mean'. Received: reduction={reduction!r}"
        )
    if isinstance(history, str) or hasattr(history, "__fspath__"):
        from specformer_keras.callbacks import load_sigma_history

        history = load_sigma_history(history)
    if not history:
        raise ValueError(
            "`history` must hold at least one epoch of spectral norms. "
            f"Received: history={history!r}"
        )
    reduce = np.max if reduction == "max" else np.mean
    projections = sorted({p for e in history for v in e["norms"].values() for p in v})
    layers = sorted({layer for e in history for layer in e["norms"]})
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(projections), figsize=(4.5 * len(projections), 3.8), squeeze=False
    )
    cmap = plt.get_cmap("viridis")
    for ax, projection in zip(axes[0], projections):
        for index, layer in enumerate(layers):
            points = [
                (e["epoch"] + 1, float(reduce(e["norms"][layer][projection])))
                for e in history
                if projection in e["norms"].get(layer, {})
            ]
            if points:
                x, y = zip(*sorted(points))
                color = cmap(index / max(len(layers) - 1, 1))
                ax.plot(x, y, marker="o", markersize=3, color=color, label=layer)
        ax.set_title(f"{projection} ({reduction} over heads)")
        ax.set_xlabel("epoch (0 = init)")
        ax.set_ylabel("sigma")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def _curve_points(curve):
    """`{attack: (eps array, accuracy array)}` from the accepted curve formats."""
    if isinstance(curve, dict) and "eps" in curve:
        eps = np.asarray(curve["eps"], dtype="float64")
        series = {}
        accuracy = curve.get("accuracy")
        if isinstance(accuracy, dict):
            series.update(accuracy)
        elif accuracy is not None:
            series["accuracy"] = accuracy
        for key, value in curve.items():
            # Other numeric series of the same length ({"eps": [...], "pgd20": [...]});
            # metadata such as "warnings" (strings) or "settings" (dicts) is skipped.
            if (
                key not in ("eps", "accuracy")
                and isinstance(value, (list, tuple, np.ndarray))
                and len(value) == len(eps)
                and all(isinstance(v, numbers.Real) for v in value)
            ):
                series[key] = value
        return {k: (eps, np.asarray(v, dtype="float64")) for k, v in series.items()}
    if (
        isinstance(curve, dict)
        and curve
        and all(isinstance(k, numbers.Real) or _is_float_string(k) for k in curve)
    ):
        items = sorted((float(k), v) for k, v in curve.items())
        eps = np.array([k for k, _ in items])
        values = [v for _, v in items]
        if all(isinstance(v, dict) for v in values):
            names = sorted({n for v in values for n in v})
            return {
                n: (eps, np.array([float(v.get(n, np.nan)) for v in values]))
                for n in names
            }
        return {"accuracy": (eps, np.array([float(v) for v in values]))}
    if isinstance(curve, (list, tuple)) and curve and isinstance(curve[0], dict):
        rows = sorted(curve, key=lambda r: float(r["eps"]))
        eps = np.array([float(r["eps"]) for r in rows])
        names = sorted({k for r in rows for k in r if k != "eps"})
        return {
            n: (eps, np.array([float(r.get(n, np.nan)) for r in rows]))
            for n in names
            if all(isinstance(r.get(n, 0.0), numbers.Real) for r in rows)
        }
    raise ValueError(
        "`curve` must be {'eps': [...], <name>: [...]}, {eps: accuracy}, or a list "
        f"of {{'eps': ..., <name>: ...}} rows. Received: curve={curve!r}"
    )


def _is_float_string(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def plot_accuracy_vs_eps(curve, path=None, title=None, eps_in_255=True):
    """Accuracy as a function of the attack budget eps (one line per series).

    Args:
        curve: Results of `specformer_keras.evaluation.robustness_curve`:
            `{"eps": [...], "<attack>": [accuracies]}` (a nested
            `{"accuracy": {"<attack>": [...]}}` also works), `{eps: accuracy}`,
            or a list of `{"eps": e, "<attack>": accuracy}` rows.
        path: PNG path to save to, or None.
        title: Optional figure title.
        eps_in_255: Label the x axis in units of 1/255.

    Returns:
        The matplotlib figure.

    Example:

    ```python
    from specformer_keras.plots import plot_accuracy_vs_eps

    fig = plot_accuracy_vs_eps({"eps": [0, 2 / 255, 8 / 255],
                                "pgd": [0.9, 0.6, 0.2]})
    ```
    """
    series = _curve_points(curve)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    scale = 255.0 if eps_in_255 else 1.0
    for name, (eps, accuracy) in sorted(series.items()):
        ax.plot(eps * scale, accuracy, marker="o", label=name)
    ax.set_xlabel("eps (x 1/255)" if eps_in_255 else "eps")
    ax.set_ylabel("accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def plot_lipschitz_per_layer(reports, path=None, title=None):
    """Local Lipschitz estimate and bound per attention layer, one line per model group.

    Args:
        reports: `{label: report or list of reports}` with reports from
            `specformer_keras.diagnostics.lipschitz_report` (e.g.
            `{"vanilla": [...], "MSVP λ=1e-2": [...]}`, one report per seed).
            A group's line is the mean over its reports of the per-layer
            median; the bar spans the reports' minimum to maximum.
        path: PNG path to save to, or None.
        title: Optional figure title.

    Returns:
        The matplotlib figure: left, the estimate per layer (solid) and the
        theory bound (dashed, log scale); right, the whole model's estimate
        (input -> logits) per group.

    Raises:
        ValueError: If `reports` is not a non-empty dict.

    Example:

    ```python
    from specformer_keras.plots import plot_lipschitz_per_layer

    report = {"model": {"median": 3.0},
              "attention": {"block_0/attention": {"estimate": {"median": 1.2},
                                                  "bound": {"median": 40.0}}}}
    fig = plot_lipschitz_per_layer({"vanilla": report, "MSVP": [report, report]})
    ```
    """
    if not isinstance(reports, dict) or not reports:
        raise ValueError(
            "`reports` must be a non-empty dict {label: report or list of reports}. "
            f"Received: reports={type(reports).__name__}"
        )
    plt = pyplot()
    fig, (ax, ax_model) = plt.subplots(
        1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 1]}
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels = list(reports)
    layer_names = None
    for i, label in enumerate(labels):
        group = reports[label]
        group = [group] if isinstance(group, dict) else list(group)
        layer_names = layer_names or list(group[0]["attention"])
        color = colors[i % len(colors)]
        x = np.arange(len(layer_names))
        for key, style in (("estimate", "o-"), ("bound", "s--")):
            values = np.array(
                [[r["attention"][n][key]["median"] for n in layer_names] for r in group]
            )
            mean = values.mean(axis=0)
            err = np.stack([mean - values.min(axis=0), values.max(axis=0) - mean])
            ax.errorbar(x + 0.04 * i, mean, yerr=err, fmt=style, color=color,
                        capsize=3, markersize=4,
                        label=f"{label} ({key}, n={len(group)})")  # fmt: skip
        model_values = np.array([r["model"]["median"] for r in group])
        ax_model.bar(i, model_values.mean(), color=color, alpha=0.8)
        ax_model.plot([i] * len(model_values), model_values, "k.", markersize=4)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(layer_names)))
    ax.set_xticklabels([n.split("/")[0] for n in layer_names], rotation=20, fontsize=8)
    ax.set_ylabel("local Lipschitz constant (median over images)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax_model.set_xticks(range(len(labels)))
    ax_model.set_xticklabels(labels, rotation=20, fontsize=8)
    ax_model.set_title("whole model (pixels → logits)", fontsize=9)
    ax_model.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title, fontsize=10)
    return _finish(fig, path)
