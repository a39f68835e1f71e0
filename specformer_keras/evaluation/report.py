"""`evaluate_robustness`: accuracy under several attacks, worst case, sanity checks.

The evaluation runs in stages: check the arguments and resolve the attacks
(`specformer_keras.evaluation.specs`), open the output folder
(`specformer_keras.evaluation.store`), check the model on the first batch
(`specformer_keras.evaluation.model_checks`), then per batch of this process's
share attack the points, or read the results back from the folder (`BatchRunner`),
gather the batches of all processes (`specformer_keras.distributed`), and
assemble the report with its sanity checks
(`specformer_keras.evaluation.sanity`). `print_report` prints a report;
`run_evaluation` is `evaluate_robustness` with its progress display chosen by
the caller (`robustness_curve`).
"""

import keras
import numpy as np

from specformer_keras.attacks.inputs import prepare_inputs
from specformer_keras.attacks.norms import check_eps, check_norm
from specformer_keras.distributed import allgather_objects, process_layout
from specformer_keras.evaluation.batches import (
    BatchRunner,
    ProgressBars,
    merge_batches,
)
from specformer_keras.evaluation.sanity import sanity_checks
from specformer_keras.evaluation.sources import data_source, labels_of, owned_batches
from specformer_keras.evaluation.specs import (
    DEFAULT_ATTACKS,
    GRADIENT_KINDS,
    normalize_attacks,
    resolve_attacks,
)
from specformer_keras.evaluation.store import (
    ResultStore,
    check_output_dir,
    run_settings,
)
from specformer_keras.utils.validation import check_bool, check_int, check_seed


def evaluate_robustness(
    model,
    data,
    attacks=DEFAULT_ATTACKS,
    eps=8 / 255,
    norm="linf",
    batch_size=128,
    seed=0,
    verbose=True,
    check_more_steps=False,
    sanity_points=256,
    output_dir=None,
    resume=True,
):
    """Accuracy of ``model`` under several attacks, per-point worst case, sanity checks.

    Every named attack draws its random numbers per point, from ``seed`` and
    the point's index in ``data`` (`specformer_keras.attacks.randomness`), so
    a point's verdict is the same whatever the batch size, the process that
    evaluates it, or where an interrupted evaluation resumed. (A callable
    attack is called per batch and owns its randomness.)

    With several processes (one per host, started with
    `specformer_keras.distributed.initialize`), each process attacks its
    share of the batches (array data: a contiguous block of batches from
    `specformer_keras.distributed.shard_indices`; an iterable: every
    ``process_count``-th batch) and the per-point results are gathered with
    `specformer_keras.distributed.allgather_objects`: every process returns
    the same report, equal to a single-process run except for ``layout`` and
    ``seconds``.

    With ``output_dir``, each attack's per-point results on each batch are
    written there as soon as they are known (one small file per attack and
    batch, atomically; see `specformer_keras.evaluation.store`), with a
    manifest of the settings; a rerun with the same arguments skips the
    finished batches and returns the report an uninterrupted run returns
    (except ``seconds``), and the final report is written to
    ``output_dir/report.json``.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits (run with
            ``training=False``).
        data: ``(x, y)`` arrays, or a ``tf.data.Dataset`` (or list or other
            iterable) of ``(x, y)`` batches (used as batched; integer, ``(n,
            1)`` or one-hot labels; an iterable must give the same batches in
            the same order on every process and every rerun). A tuple or list
            is read by structure: ``(x, y)`` when ``x`` has rank >= 2 and one
            label per image, a list of batches when every element is such a
            pair (see `specformer_keras.evaluation.sources.data_source`).
        attacks: names among ``"clean"``, ``"fgsm"``, ``"pgdN"``, ``"cwN"``,
            ``"autoattack"``, ``"square"`` (see the module docstring) or
            callables ``attack(model, x, y, eps) -> x_adv``.
        eps: budget in pixel units (``8/255`` by default).
        norm: ``"linf"`` or ``"l2"``.
        batch_size: batch size for array data and for AutoAttack's calls.
        seed: seed of the random starts and searches (drawn per example from
            ``seed`` and the point's index); None for fresh randomness (not
            with ``output_dir``).
        verbose: show a tqdm progress bar per attack (with an ETA; on process
            0 only) and print the summary.
        check_more_steps: also run every ``pgdN`` / ``cwN`` with ``5 N`` steps on
            the first ``sanity_points`` points and flag a higher accuracy.
        sanity_points: points used by the extra more-steps check.
        output_dir: folder for the per-batch results, the manifest and the
            final report (None: keep nothing on disk).
        resume: with ``output_dir``: continue the evaluation found there
            (True), or refuse a folder that already holds one (False).

    Returns:
        JSON-serializable dict: ``accuracy`` ``{attack: float or None}`` (None
        when the attack is unavailable), ``n``, ``eps``, ``norm``, ``seed``,
        ``settings`` ``{attack: dict}``, ``worst_case`` (accuracy under the
        per-point worst case of all attacks run), ``warnings`` (list of str),
        ``sanity_checks`` ``{check: bool or None}`` (True means the check
        failed; None means it did not run), ``unavailable`` ``{attack: reason}``,
        ``seconds`` ``{attack: float}`` (summed over batches and processes),
        ``backend``, ``layout`` (`ProcessLayout.to_dict()` plus
        ``batch_size``), ``per_point`` ``{"clean", attack or "worst_case":
        str}`` (one character per point in data order, ``"1"``: classified
        correctly clean and under the attack), ``preflight`` (``{"points",
        "zero_gradient_points"}`` of the checked first batch) and, when
        AutoAttack ran, ``autoattack_broken_by`` ``{component: points}``.

    Raises:
        PreflightError: (a ``ValueError``) before any attack runs, if the
            model returns non-finite logits or probabilities, or has a zero
            input gradient on every point of the first batch while a gradient
            attack is requested (see `preflight`); also for non-finite clean
            logits on a later batch.
        ValueError, TypeError: for invalid arguments or data, and for an
            ``output_dir`` holding an evaluation of other settings (the
            message names what differs) or other data.
        CorruptFileError: (a ``ValueError``) a file in ``output_dir`` that
            cannot be read back, named in the message.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.evaluation import evaluate_robustness

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(0).uniform(size=(8, 4, 4, 1)).astype("float32")
    report = evaluate_robustness(model, (x, np.arange(8) % 3),
                                 attacks=("clean", "fgsm", "pgd5"), verbose=False)
    ```
    """
    arguments = dict(locals())  # exactly the arguments, as given
    return run_evaluation(**arguments)


def run_evaluation(
    model,
    data,
    attacks,
    eps,
    norm,
    batch_size,
    seed,
    verbose,
    check_more_steps,
    sanity_points,
    output_dir,
    resume,
    progress=None,
):
    """`evaluate_robustness` (the same arguments, all given), progress shown by ``progress``.

    Args:
        progress: None (a tqdm bar per attack when ``verbose``), or a callable
            ``progress(names, owned, source)`` returning an object with the
            methods of `ProgressBars` (``update``, ``postfix``, ``close``); it
            is called on every process (``robustness_curve`` shows one bar
            for all its budgets).

    Returns:
        The report of `evaluate_robustness`.
    """
    attacks = normalize_attacks(attacks)
    check_eps(eps)
    check_norm(norm)
    check_int("batch_size", batch_size)
    check_seed("seed", seed)
    check_bool("verbose", verbose)
    check_bool("check_more_steps", check_more_steps)
    check_int("sanity_points", sanity_points)
    check_bool("resume", resume)
    check_output_dir(output_dir, seed)
    eps = float(eps)
    resolved, extra = resolve_attacks(attacks, eps, norm, batch_size, check_more_steps)
    source = data_source(data, batch_size)
    layout = process_layout()
    store = None
    if output_dir is not None:
        settings = _settings(
            model, source, resolved, extra, eps, norm, seed, batch_size, sanity_points
        )
        store = ResultStore(output_dir, settings, resume=resume)
    run = BatchRunner(model, resolved, extra, eps, norm, seed, sanity_points, store)
    owned = owned_batches(source, layout)
    if progress is None:
        bars = ProgressBars(run.names, owned, source, verbose and layout.is_primary)
    else:
        bars = progress(run.names, owned, source)
    needs_gradient = any(attack.kind in GRADIENT_KINDS for attack in resolved)
    records, start = [], 0
    for batch_index, (x, y) in enumerate(source.generator):
        mine = owned(batch_index)
        if batch_index == 0 or mine:
            x_np, y_np, _ = prepare_inputs(model, x, labels_of(y), eps)
            if batch_index == 0:  # on every process, before any attack
                run.preflight(x_np, y_np, needs_gradient)
            if mine:
                records.append(run.batch(start, x_np, y_np, bars))
        start += len(x)
    bars.close()
    if start == 0:
        raise ValueError(
            "Argument `data` must hold at least one example. Received: empty data"
        )
    if layout.process_count > 1:
        records = [r for part in allgather_objects(records) for r in part]
    report = _assemble_report(run, merge_batches(records, start), layout, batch_size)
    if store is not None and layout.is_primary:
        store.write_report(report)
    if verbose and layout.is_primary:
        print_report(report)
    return report


def _settings(model, source, resolved, extra, eps, norm, seed, batch_size, points):
    """Everything the per-point results depend on (the manifest of `ResultStore`)."""
    return {
        "attacks": [a.name for a in resolved],
        "attack_settings": {a.name: a.settings for a in resolved},
        "more_steps": {
            name: {"settings": a.settings, "sanity_points": points}
            for name, a in extra.items()
        },
        "eps": eps,
        **run_settings(model, source, norm, seed, batch_size),
    }


def _assemble_report(run, records, layout, batch_size):
    """The report dict of the merged batch records, with its sanity checks."""
    n = records[-1]["stop"]
    clean = np.concatenate([r["clean"] for r in records])
    per_point, outside, seconds, logs = {}, {}, {}, []
    unavailable = {}
    for record in records:
        for name, entry in record["attacks"].items():
            if entry["unavailable"] is not None:
                unavailable.setdefault(name, entry["unavailable"])
    for name in run.names:
        if name in unavailable:
            continue
        entries = [r["attacks"][name] for r in records]
        per_point[name] = np.concatenate([e["robust"] for e in entries])
        outside[name] = int(sum((~e["within_budget"]).sum() for e in entries))
        seconds[name] = float(sum(e["seconds"] for e in entries))
        logs += [e["log"] for e in entries if e["log"] is not None]
    worst = clean.copy()
    for values in per_point.values():
        worst = worst & values
    report = {
        "accuracy": {
            name: (float(per_point[name].mean()) if name in per_point else None)
            for name in run.names
        },
        "n": int(n),
        "eps": run.eps,
        "norm": run.norm,
        "seed": run.seed,
        "settings": {attack.name: attack.settings for attack in run.resolved},
        "worst_case": float(worst.mean()),
        "unavailable": unavailable,
        "seconds": seconds,
        "backend": keras.config.backend(),
        "layout": {**layout.to_dict(), "batch_size": int(batch_size)},
        "preflight": {k: v for k, v in run.checked.items() if k != "warnings"},
    }
    if logs:
        broken = {}
        for log in logs:
            for component, count in log["broken_by"].items():
                broken[component] = broken.get(component, 0) + int(count)
        report["autoattack_broken_by"] = broken
    extra_correct = {
        name: [r["more_steps"][name] for r in records if name in r["more_steps"]]
        for name in run.extra
        if name not in unavailable
    }
    more_steps = _more_steps_summary(run.extra, extra_correct, per_point)
    if more_steps:
        report["more_steps_check"] = more_steps
    checks, warnings = sanity_checks(
        report, run.resolved, per_point, outside, more_steps, int(n)
    )
    checks["zero_input_gradient"] = bool(run.checked["zero_gradient_points"])
    report["sanity_checks"] = checks
    report["warnings"] = run.checked["warnings"] + warnings
    report["per_point"] = {
        name: "".join("1" if v else "0" for v in values)
        for name, values in {"clean": clean, **per_point, "worst_case": worst}.items()
    }
    return report


def _more_steps_summary(extra, extra_correct, per_point):
    more_steps = {}
    for name, values in extra_correct.items():
        if values:
            subset = per_point[name][: sum(len(v) for v in values)]
            more_steps[name] = {
                "points": int(subset.size),
                "steps": extra[name].settings["steps"],
                "accuracy": float(np.concatenate(values).mean()),
                "accuracy_with_fewer_steps": float(subset.mean()),
            }
    return more_steps


def print_report(report):
    """Prints the accuracies, the worst case and the warnings of a report.

    Example:

    ```python
    from specformer_keras.evaluation import print_report

    print_report({"eps": 0.03, "norm": "linf", "n": 10, "worst_case": 0.4,
                  "accuracy": {"clean": 0.9, "pgd20": 0.4}, "warnings": []})
    ```
    """
    print(
        f"Robust accuracy at eps={report['eps']:.5f} ({report['norm']}), n={report['n']}:"
    )
    for name, value in report["accuracy"].items():
        shown = "unavailable" if value is None else f"{value:.4f}"
        print(f"  {name:>12}: {shown}")
    print(f"  {'worst case':>12}: {report['worst_case']:.4f}")
    for line in report["warnings"]:
        print(f"  WARNING: {line}")
