"""`evaluate_robustness`: accuracy under several attacks, worst case, sanity checks.

The evaluation runs in stages: check the arguments and resolve the attacks
(`specformer_keras.evaluation.specs`), then per batch check the model
(`specformer_keras.evaluation.model_checks`, first batch in full), attack the
points and count the robust ones (`_Tally`), then assemble the report and add
the sanity checks (`specformer_keras.evaluation.sanity`). `print_report`
prints a report.
"""

import time

import keras
import numpy as np

from specformer_keras.attacks.inputs import prepare_inputs, to_numpy
from specformer_keras.attacks.norms import check_eps, check_norm, within_budget
from specformer_keras.attacks.runner import predict_labels, predict_logits
from specformer_keras.evaluation.model_checks import check_finite_logits, preflight
from specformer_keras.evaluation.sanity import sanity_checks
from specformer_keras.evaluation.specs import (
    DEFAULT_ATTACKS,
    GRADIENT_KINDS,
    normalize_attacks,
    resolve_attacks,
)
from specformer_keras.utils.validation import check_int, check_seed


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
):
    """Accuracy of ``model`` under several attacks, per-point worst case, sanity checks.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits (run with
            ``training=False``).
        data: ``(x, y)`` arrays, or a ``tf.data.Dataset`` (or iterable) of
            ``(x, y)`` batches (used as batched; integer or one-hot labels).
        attacks: names among ``"clean"``, ``"fgsm"``, ``"pgdN"``, ``"cwN"``,
            ``"autoattack"``, ``"square"`` (see the module docstring) or
            callables ``attack(model, x, y, eps) -> x_adv``.
        eps: budget in pixel units (``8/255`` by default).
        norm: ``"linf"`` or ``"l2"``.
        batch_size: batch size for array data and for AutoAttack's calls.
        seed: base seed of the random starts (batch ``i`` uses ``seed + i``);
            None for fresh randomness.
        verbose: show a tqdm progress bar and print the summary.
        check_more_steps: also run every ``pgdN`` / ``cwN`` with ``5 N`` steps on
            the first ``sanity_points`` points and flag a higher accuracy.
        sanity_points: points used by the extra more-steps check.

    Returns:
        JSON-serializable dict: ``accuracy`` ``{attack: float or None}`` (None
        when the attack is unavailable), ``n``, ``eps``, ``norm``, ``seed``,
        ``settings`` ``{attack: dict}``, ``worst_case`` (accuracy under the
        per-point worst case of all attacks run), ``warnings`` (list of str),
        ``sanity_checks`` ``{check: bool or None}`` (True means the check
        failed; None means it did not run), ``unavailable`` ``{attack: reason}``,
        ``seconds`` ``{attack: float}``, ``backend``, ``preflight``
        (``{"points", "zero_gradient_points"}`` of the checked first batch)
        and, when AutoAttack ran, ``autoattack_broken_by``
        ``{component: points}``.

    Raises:
        PreflightError: (a ``ValueError``) before any attack runs, if the
            model returns non-finite logits or probabilities, or has a zero
            input gradient on every point of the first batch while a gradient
            attack is requested (see `preflight`); also for non-finite clean
            logits on a later batch.
        ValueError, TypeError: for invalid arguments or data.

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
    attacks = normalize_attacks(attacks)
    check_eps(eps)
    check_norm(norm)
    check_int("batch_size", batch_size)
    check_seed("seed", seed)
    check_int("sanity_points", sanity_points)
    eps = float(eps)
    resolved, extra = resolve_attacks(attacks, eps, norm, batch_size, check_more_steps)
    tally = _Tally(resolved, extra)
    generator, total = _batches(data, batch_size)
    progress = _progress(generator, total, verbose)
    needs_gradient = any(attack.kind in GRADIENT_KINDS for attack in resolved)
    for batch_index, (x, y) in enumerate(progress):
        x_np, y_np, _ = prepare_inputs(model, x, _labels(y), eps)
        batch_seed = None if seed is None else seed + batch_index
        clean = tally.check_clean(model, x_np, y_np, needs_gradient)
        tally.attack(model, x_np, y_np, clean, batch_seed, eps, norm)
        tally.more_steps(model, x_np, y_np, clean, batch_seed, sanity_points)
        tally.n += x_np.shape[0]
        if verbose and hasattr(progress, "set_postfix"):
            progress.set_postfix(tally.running_accuracy())
    if tally.n == 0:
        raise ValueError(
            "Argument `data` must hold at least one example. Received: empty data"
        )
    report = _assemble_report(tally, eps, norm, seed)
    if verbose:
        print_report(report)
    return report


class _Tally:
    """What the batches add up to: robust points per attack, timings, logs."""

    def __init__(self, resolved, extra):
        names = [attack.name for attack in resolved]
        self.resolved, self.extra, self.names = resolved, extra, names
        self.correct = {name: [] for name in names}
        self.clean_correct, self.extra_correct = [], {name: [] for name in extra}
        self.unavailable = {}
        self.seconds = dict.fromkeys(names, 0.0)
        self.outside = dict.fromkeys(names, 0)
        self.logs = []
        self.checked = None
        self.n = 0

    def check_clean(self, model, x, y, needs_gradient):
        """Preflight (first batch) or finite-logit check; clean correctness."""
        clean_logits = predict_logits(model, x)
        if self.checked is None:  # before any number is computed
            self.checked = preflight(
                model,
                x,
                y,
                logits=clean_logits,
                needs_gradient=needs_gradient,
                context="evaluate_robustness",
            )
        else:
            check_finite_logits(clean_logits, "evaluate_robustness")
        clean = clean_logits.argmax(axis=-1) == y
        self.clean_correct.append(clean)
        return clean

    def attack(self, model, x, y, clean, seed, eps, norm):
        """Runs every available attack on the batch and counts the robust points."""
        for attack in self.resolved:
            if attack.name in self.unavailable:
                continue
            start = time.perf_counter()
            try:
                x_adv, log = attack.run(model, x, y, seed)
                x_adv = np.asarray(x_adv, "float32")
            except NotImplementedError as error:
                self.unavailable[attack.name] = str(error)
                continue
            self.seconds[attack.name] += time.perf_counter() - start
            if log is not None:
                self.logs.append(log)
            valid = within_budget(x_adv, x, eps, norm)
            self.outside[attack.name] += int((~valid).sum())
            fooled = (predict_labels(model, x_adv) != y) & valid
            self.correct[attack.name].append(clean & ~fooled)

    def more_steps(self, model, x, y, clean, seed, sanity_points):
        """The more-steps reruns on the batch's share of the first points."""
        room = sanity_points - self.n
        for name, attack in self.extra.items():
            if room > 0 and name not in self.unavailable:
                x_part, y_part = x[:room], y[:room]
                x_adv, _ = attack.run(model, x_part, y_part, seed)
                fooled = predict_labels(model, x_adv) != y_part
                self.extra_correct[name].append(clean[:room] & ~fooled)

    def running_accuracy(self):
        return {
            k: f"{np.concatenate(v).mean():.3f}" for k, v in self.correct.items() if v
        }

    def per_point(self):
        return {
            name: np.concatenate(v)
            for name, v in self.correct.items()
            if name not in self.unavailable
        }


def _assemble_report(tally, eps, norm, seed):
    """The report dict of a finished `_Tally`, with its sanity checks."""
    per_point = tally.per_point()
    worst = np.concatenate(tally.clean_correct)
    for values in per_point.values():
        worst = worst & values
    report = {
        "accuracy": {
            name: (float(per_point[name].mean()) if name in per_point else None)
            for name in tally.names
        },
        "n": int(tally.n),
        "eps": eps,
        "norm": norm,
        "seed": seed,
        "settings": {attack.name: attack.settings for attack in tally.resolved},
        "worst_case": float(worst.mean()),
        "unavailable": tally.unavailable,
        "seconds": {
            k: float(v) for k, v in tally.seconds.items() if k not in tally.unavailable
        },
        "backend": keras.config.backend(),
        "preflight": {k: v for k, v in tally.checked.items() if k != "warnings"},
    }
    if tally.logs:
        broken = {}
        for log in tally.logs:
            for component, count in log["broken_by"].items():
                broken[component] = broken.get(component, 0) + int(count)
        report["autoattack_broken_by"] = broken
    more_steps = _more_steps_summary(tally, per_point)
    if more_steps:
        report["more_steps_check"] = more_steps
    checks, warnings = sanity_checks(
        report, tally.resolved, per_point, tally.outside, more_steps, tally.n
    )
    checks["zero_input_gradient"] = bool(tally.checked["zero_gradient_points"])
    report["sanity_checks"] = checks
    report["warnings"] = tally.checked["warnings"] + warnings
    return report


def _more_steps_summary(tally, per_point):
    more_steps = {}
    for name, values in tally.extra_correct.items():
        if values:
            subset = per_point[name][: sum(len(v) for v in values)]
            more_steps[name] = {
                "points": int(subset.size),
                "steps": tally.extra[name].settings["steps"],
                "accuracy": float(np.concatenate(values).mean()),
                "accuracy_with_fewer_steps": float(subset.mean()),
            }
    return more_steps


def _progress(generator, total, verbose):
    if not verbose:
        return generator
    from tqdm.auto import tqdm

    return tqdm(generator, total=total, desc="robustness", unit="batch")


def _batches(data, batch_size):
    """Yields numpy ``(x, y)`` batches of ``data``; also returns a batch count."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (to_numpy(part) for part in data)
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                "Argument `data` must be (x, y) with one label per image. "
                f"Received: data with x.shape={x.shape} and y.shape={y.shape}"
            )
        total = -(-x.shape[0] // batch_size)
        generator = (
            (x[i : i + batch_size], y[i : i + batch_size])
            for i in range(0, len(x), batch_size)
        )
        return generator, total
    if not hasattr(data, "__iter__"):
        raise TypeError(
            "Argument `data` must be a tuple (x, y) of arrays, or a tf.data.Dataset "
            f"or iterable of (x, y) batches. Received: data={data!r}"
        )
    total = None
    if hasattr(data, "cardinality"):
        cardinality = int(data.cardinality())
        total = cardinality if cardinality >= 0 else None

    def generator():
        for element in data:
            if not isinstance(element, (tuple, list)) or len(element) < 2:
                raise ValueError(
                    "Argument `data` must yield (x, y) batches. "
                    f"Received: an element of type {type(element).__name__}"
                )
            x, y = to_numpy(element[0]), to_numpy(element[1])
            if y.ndim == 0:
                raise ValueError(
                    "Argument `data` must yield batches (call dataset.batch(...)). "
                    f"Received: data yielding single examples, x.shape={x.shape}"
                )
            yield x, y

    return generator(), total


def _labels(y):
    y = np.asarray(y)
    if y.ndim == 2:  # one-hot or soft labels
        return y.argmax(axis=-1)
    return y


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
