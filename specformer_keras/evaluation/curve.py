"""`robustness_curve`: accuracy under one attack as a function of the budget eps.

It returns data; `plot_path` hands the curve to
`specformer_keras.plots.plot_accuracy_vs_eps`, which draws it.

Each budget is one `evaluate_robustness` run (`run_evaluation`), so a curve is
sharded over processes and resumable the same way. With ``output_dir``:

    output_dir/
      manifest.json                 {"format": 1, "settings": {...}} of the curve
      eps-<eps>/                    one evaluation folder per budget
        manifest.json  batches/...  report.json   (see `ResultStore`)
      curve.json                    the final curve (written by process 0)

``<eps>`` is the budget's ``repr`` (``eps-0.03137254901960784``), so adding a
budget to ``eps_list`` reuses the finished ones.
"""

import os

import numpy as np

from specformer_keras.distributed import process_layout
from specformer_keras.evaluation.batches import count_batch
from specformer_keras.evaluation.report import run_evaluation
from specformer_keras.evaluation.sanity import curve_sanity_checks
from specformer_keras.evaluation.sources import data_source
from specformer_keras.evaluation.specs import normalize_attacks, resolve_attacks
from specformer_keras.evaluation.store import (
    ResultStore,
    check_output_dir,
    run_settings,
)
from specformer_keras.utils.io import atomic_write_json
from specformer_keras.utils.validation import check_bool, check_int, check_seed


class CurveProgress:
    """One tqdm bar over every (budget, batch) of a curve, or nothing.

    Given as ``progress`` to `run_evaluation` once per budget; counts the
    batches of the curve's attack (read-back batches as done, not in the rate).

    Args:
        budgets: number of budgets in the curve.
        show: False: no bar (``verbose=False``, or not process 0).
    """

    def __init__(self, budgets, show):
        self.budgets, self.show, self.bar, self.name = budgets, show, None, None
        self.eps, self.robust, self.points = None, 0, 0

    def __call__(self, names, owned, source):
        self.name, self.robust, self.points = names[-1], 0, 0
        if self.show and self.bar is None:
            from tqdm.auto import tqdm

            total = None
            if source.total is not None:
                per_eps = sum(owned(i) for i in range(source.total))
                total = self.budgets * per_eps
            self.bar = tqdm(total=total, desc=f"curve {self.name}", unit="batch")
        return self

    def update(self, name, computed):
        if name == self.name:
            count_batch(self.bar, computed)

    def postfix(self, name, entry):
        if self.bar is None or name != self.name or entry["robust"] is None:
            return
        self.robust += int(entry["robust"].sum())
        self.points += entry["robust"].size
        accuracy = f"{self.robust / self.points:.3f}"
        self.bar.set_postfix(eps=f"{self.eps:.5g}", accuracy=accuracy, refresh=False)

    def close(self):
        """Called after each budget; the bar stays open until `finish`."""

    def finish(self):
        if self.bar is not None:
            self.bar.close()


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
    output_dir=None,
    resume=True,
):
    """Accuracy under ``attack`` for each budget in ``eps_list``.

    Flags (in ``warnings``) an accuracy that rises with eps, and an accuracy
    above 0.1 at a very large budget (Linf eps >= 0.25, L2 eps >= 8), where any
    working attack should reach ~0 (Carlini et al. 2019).

    Each budget is evaluated as `evaluate_robustness` does: random starts
    drawn per example (from ``seed`` and the point's index), the batches split
    between processes and gathered (every process returns the same curve,
    equal to one process's), and with ``output_dir`` every (budget, attack,
    batch) result written at once, so that a rerun with the same arguments
    after a kill computes only what is missing and returns the curve of an
    uninterrupted run.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits.
        data: as in `evaluate_robustness` (iterated once per eps: arrays, a
            list or a ``tf.data.Dataset``, not a one-shot iterator).
        eps_list: budgets (>= 0), e.g. ``[0, 2/255, 4/255, 8/255, 16/255]``.
        attack: attack name or callable, as in `evaluate_robustness`.
        plot_path: PNG path for an accuracy-vs-eps plot (drawn by
            `specformer_keras.plots.plot_accuracy_vs_eps`), or None.
        norm: ``"linf"`` or ``"l2"``.
        batch_size: batch size for array data.
        seed: base seed of the random starts (an integer with ``output_dir``).
        verbose: one tqdm progress bar over all budgets and batches (process
            0 only), and the warnings printed at the end.
        output_dir: folder for the per-budget evaluation folders, a manifest
            of the curve's settings and ``curve.json`` (see the module
            docstring), or None.
        resume: with ``output_dir``: continue the curve found there (True), or
            refuse a folder that already holds one (False).

    Returns:
        JSON-serializable dict: ``eps`` (list), ``accuracy`` ``{attack: [...]}``,
        ``clean_accuracy``, ``attack``, ``norm``, ``n``, ``large_eps_checked``
        (whether a budget was large enough for the fall-to-0 check) and
        ``warnings`` (including the preflight's, see `preflight`).

    Raises:
        PreflightError: as `evaluate_robustness`, before any attack runs.
        ValueError, TypeError: invalid arguments or data; an ``output_dir``
            holding a curve of other settings, model or data (the message
            lists the differences).
        CorruptFileError: a file in ``output_dir`` that cannot be read back.

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
    check_int("batch_size", batch_size)
    check_seed("seed", seed)
    check_bool("verbose", verbose)
    check_bool("resume", resume)
    one_shot = hasattr(data, "__next__") and iter(data) is data
    if one_shot and len(eps_values) > 1:
        raise ValueError(
            "Argument `data` must be iterable once per budget: arrays, a list of "
            "batches or a tf.data.Dataset, not a one-shot iterator or generator. "
            f"Received: data of type {type(data).__name__}"
        )
    layout = process_layout()
    folder = None
    if output_dir is not None:
        folder = _open_folder(
            model, data, attack, norm, batch_size, seed, output_dir, resume
        )
    progress = CurveProgress(len(eps_values), verbose and layout.is_primary)
    accuracies, clean, name, n = [], None, None, 0
    try:
        for eps in eps_values:
            progress.eps = eps
            report = run_evaluation(
                model,
                data,
                attacks=("clean", attack),
                eps=eps,
                norm=norm,
                batch_size=batch_size,
                seed=seed,
                verbose=False,
                check_more_steps=False,
                sanity_points=256,
                output_dir=None
                if folder is None
                else os.path.join(folder, f"eps-{eps!r}"),
                resume=resume,
                progress=progress,
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
    finally:
        progress.finish()
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
    if folder is not None and layout.is_primary:
        atomic_write_json(os.path.join(folder, "curve.json"), curve)
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


def _open_folder(model, data, attack, norm, batch_size, seed, output_dir, resume):
    """Checks (or writes) the manifest of the curve in ``output_dir``; returns the path."""
    check_output_dir(output_dir, seed)
    resolved, _ = resolve_attacks(
        normalize_attacks(("clean", attack)), 0.0, norm, batch_size
    )
    settings = {
        "robustness_curve": {"attack": resolved[-1].name},
        **run_settings(model, data_source(data, batch_size), norm, seed, batch_size),
    }
    ResultStore(output_dir, settings, resume=resume)
    return os.fspath(output_dir)
