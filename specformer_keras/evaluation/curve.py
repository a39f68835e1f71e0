"""`robustness_curve`: accuracy under one attack as a function of the budget eps.

It returns data; `plot_path` hands the curve to
`specformer_keras.plots.plot_accuracy_vs_eps`, which draws it.
"""

import numpy as np

from specformer_keras.evaluation.report import evaluate_robustness
from specformer_keras.evaluation.sanity import curve_sanity_checks


def robustness_curve(
    model,
    data,
    eps_list,
    attack="pgd20",
    plot_path=None,
    norm="linf",
    batch_size=128,
    seed=0,
    verbose=False,
):
    """Accuracy under ``attack`` for each budget in ``eps_list``.

    Flags (in ``warnings``) an accuracy that rises with eps, and an accuracy
    above 0.1 at a very large budget (Linf eps >= 0.25, L2 eps >= 8), where any
    working attack should reach ~0 (Carlini et al. 2019).

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits.
        data: as in `evaluate_robustness` (iterated once per eps).
        eps_list: budgets (>= 0), e.g. ``[0, 2/255, 4/255, 8/255, 16/255]``.
        attack: attack name or callable, as in `evaluate_robustness`.
        plot_path: PNG path for an accuracy-vs-eps plot (drawn by
            `specformer_keras.plots.plot_accuracy_vs_eps`), or None.
        norm: ``"linf"`` or ``"l2"``.
        batch_size: batch size for array data.
        seed: base seed of the random starts.
        verbose: progress bars and summaries per eps.

    Returns:
        JSON-serializable dict: ``eps`` (list), ``accuracy`` ``{attack: [...]}``,
        ``clean_accuracy``, ``attack``, ``norm``, ``n``, ``large_eps_checked``
        (whether a budget was large enough for the fall-to-0 check) and
        ``warnings`` (including the preflight's, see `preflight`).

    Raises:
        PreflightError: as `evaluate_robustness`, before any attack runs.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.evaluation import robustness_curve

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(0).uniform(size=(8, 4, 4, 1)).astype("float32")
    curve = robustness_curve(model, (x, np.arange(8) % 3), [0.0, 0.1, 0.3],
                             attack="pgd5")
    ```
    """
    try:
        eps_values = [float(e) for e in eps_list]
    except (TypeError, ValueError):
        raise ValueError(
            f"Argument `eps_list` must be a list of numbers >= 0. Received: eps_list={eps_list!r}"
        ) from None
    if not eps_values or any(not np.isfinite(e) or e < 0 for e in eps_values):
        raise ValueError(
            f"Argument `eps_list` must be a non-empty list of numbers >= 0. Received: eps_list={eps_list!r}"
        )
    accuracies, clean, name, n = [], None, None, 0
    for eps in eps_values:
        report = evaluate_robustness(
            model,
            data,
            attacks=("clean", attack),
            eps=eps,
            norm=norm,
            batch_size=batch_size,
            seed=seed,
            verbose=verbose,
        )
        name = [k for k in report["accuracy"] if k != "clean"][0]
        if report["accuracy"][name] is None:
            raise NotImplementedError(report["unavailable"][name])
        accuracies.append(report["accuracy"][name])
        clean, n = report["accuracy"]["clean"], report["n"]
        preflight_warnings = [
            line
            for line in report["warnings"]
            if line.startswith("evaluate_robustness:")
        ]
    warnings, large_eps_checked = curve_sanity_checks(
        name, eps_values, accuracies, norm, n
    )
    warnings = list(preflight_warnings) + warnings
    curve = {
        "eps": eps_values,
        "accuracy": {name: accuracies},
        "clean_accuracy": clean,
        "attack": name,
        "norm": norm,
        "n": n,
        "large_eps_checked": large_eps_checked,
        "warnings": warnings,
    }
    if plot_path is not None:
        from specformer_keras.plots import plot_accuracy_vs_eps

        plot_accuracy_vs_eps(
            {"eps": eps_values, name: accuracies},
            path=plot_path,
            title=f"{name} accuracy vs eps ({norm})",
            eps_in_255=norm == "linf",
        )
    if verbose:
        for line in warnings:
            print(f"WARNING: {line}")
    return curve
