"""Robustness evaluation: accuracy under several attacks, with sanity checks.

`evaluate_robustness` runs attacks batch by batch (numpy ``(x, y)`` or a
``tf.data.Dataset`` / iterable of ``(x, y)`` batches) and reports the accuracy
per attack and the per-point worst case over all attacks. A point counts as
robust to an attack when it is classified correctly both clean and under the
attack (as in AutoAttack / RobustBench). Adversarial inputs outside the eps
ball or ``[0, 1]`` do not count as successful attacks and raise a warning.

Sanity checks follow Carlini et al. 2019, "On Evaluating Adversarial
Robustness" (https://arxiv.org/abs/1902.06705): iterative attacks must not be
weaker than FGSM, more PGD steps must not raise the accuracy (optional extra
run), a gradient-free attack (Square) must not beat the gradient attacks by a
wide margin, no attack may raise the accuracy above the clean accuracy, and
(`robustness_curve`) the accuracy must fall towards 0 at very large eps. A
failed check adds a line to ``report["warnings"]`` and sets its flag in
``report["sanity_checks"]``; it never raises.

Before any attack runs, `preflight` checks the model on the first batch and
refuses (``ValueError``) what would make every number wrong: non-finite logits
(diverged weights), outputs that look like probabilities (non-negative rows
summing to 1: attacks need logits, a softmax output saturates the loss and
inflates robust accuracy), and an input gradient that is zero or missing for
every point (gradient masking: ``stop_gradient``, rounding, a NumPy function).
A zero gradient on only some points is a warning. Without a gradient attack
in ``attacks`` (e.g. only ``"square"``, the right tool for a masked model) the
all-zero gradient is a warning too. Non-finite clean logits on any later batch
are refused as well.

Attack names: ``"clean"``, ``"fgsm"``, ``"pgdN"`` (PGD, N steps, step
``eps / 4``, random start; ``"pgd20"`` is 20 steps of 2/255 at eps 8/255),
``"cwN"`` (the same PGD on the CW margin loss), ``"autoattack"`` (standard
AutoAttack), ``"square"`` (Square Attack, 5000 queries; ``"squareN"``: N
queries; reported as ``"square"``), or a callable
``attack(model, x, y, eps) -> x_adv``.

Example:

```python
import keras, numpy as np
from specformer_keras.evaluation import evaluate_robustness

model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                          keras.layers.Dense(3)])
x = np.random.default_rng(0).uniform(size=(8, 4, 4, 1)).astype("float32")
y = np.arange(8) % 3
report = evaluate_robustness(model, (x, y), attacks=("clean", "fgsm", "pgd5"),
                             verbose=False)
report["accuracy"]["pgd5"], report["worst_case"]
```
"""

import re
import time

import keras
import numpy as np

from specformer_keras.attacks.fgsm import fgsm
from specformer_keras.attacks.inputs import prepare_inputs, to_numpy
from specformer_keras.attacks.losses import cross_entropy_loss
from specformer_keras.attacks.norms import check_eps, check_norm, within_budget
from specformer_keras.attacks.pgd import pgd
from specformer_keras.attacks.runner import predict_labels, predict_logits
from specformer_keras.backend import backend_module
from specformer_keras.utils.validation import check_int, check_seed

DEFAULT_ATTACKS = ("clean", "fgsm", "pgd20", "cw20", "autoattack")
NAMED_ATTACKS = ("clean", "fgsm", "pgdN", "cwN", "autoattack", "square", "squareN")
# Tolerance (accuracy points) of the sanity comparisons, on top of 2 examples.
SANITY_TOLERANCE = 0.01
# Square beating every gradient attack by more than this flags gradient masking.
GRADIENT_FREE_MARGIN = 0.05
# Eps from which Linf / L2 attacks should drive the accuracy towards 0.
LARGE_EPS = {"linf": 0.25, "l2": 8.0}
# Accuracy at a large eps above this is flagged.
LARGE_EPS_ACCURACY = 0.1
# Non-negative output rows summing to 1 within this are taken for probabilities.
PROBABILITY_TOLERANCE = 1e-3
# Attack kinds that follow the input gradient (refused on an all-zero gradient).
GRADIENT_KINDS = ("single_step", "iterative")


class PreflightError(ValueError):
    """The model cannot be evaluated (or trained) as given: no number would be right."""


def _preflight_body(evaluate_fn, logits_fn, x, y):
    loss, grad, logits = evaluate_fn(cross_entropy_loss, x, y)
    return loss, grad, logits


def preflight(model, x, y, logits=None, needs_gradient=True, context="evaluation"):
    """Checks ``model`` on one batch before any robustness number is computed.

    Refuses the three faults that make every later number silently wrong:

    * non-finite logits (NaN or inf weights, e.g. after a diverged training);
    * outputs that look like probabilities (every value >= 0 and every row
      summing to 1 within `PROBABILITY_TOLERANCE`): the attacks' losses expect
      logits, and on softmax outputs the cross-entropy saturates, so attacks
      stall and robust accuracy is inflated;
    * an input gradient of the cross-entropy that is zero (or missing) for
      every point of the batch: gradient masking (``stop_gradient``, rounding,
      a NumPy function inside the model). Gradient attacks would return their
      starting point and report the clean accuracy as robust.

    A zero gradient on only some points (a saturated loss) is reported as a
    warning.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits.
        x: one batch of images in ``[0, 1]`` (numpy or tensor).
        y: integer labels of the batch.
        logits: the model's clean logits on ``x`` if already computed.
        needs_gradient: if False (no gradient attack will run) an all-zero
            input gradient is a warning instead of an error.
        context: what is being checked, for the messages.

    Returns:
        ``{"points": n, "zero_gradient_points": k, "warnings": [str, ...]}``.

    Raises:
        PreflightError: (a ``ValueError``) for each fault above.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.evaluation import PreflightError, preflight

    x = np.random.default_rng(0).uniform(size=(4, 4)).astype("float32")
    y = np.arange(4) % 3
    logits_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    assert preflight(logits_model, x, y)["zero_gradient_points"] == 0
    softmax_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")]
    )
    try:
        preflight(softmax_model, x, y)
    except PreflightError as error:
        assert "probabilities" in str(error)
    ```
    """
    x_np, y_np, _ = prepare_inputs(model, x, y, 0.0)
    if logits is None:
        logits = predict_logits(model, x_np)
    logits = np.asarray(logits, "float32")
    check_finite_logits(logits, context)
    n = logits.shape[0]
    if (
        logits.shape[1] > 1
        and np.all(logits >= 0)
        and np.allclose(logits.sum(axis=1), 1.0, atol=PROBABILITY_TOLERANCE)
    ):
        raise PreflightError(
            f"{context}: the model's outputs look like probabilities (all >= 0, "
            "every row sums to 1), but attacks and adversarial training need "
            "logits: on softmax outputs the loss saturates, attacks stall and "
            "robust accuracy is inflated. Remove the final softmax (e.g. "
            "`keras.layers.Dense(classes)` without activation, or rebuild the "
            "model up to the layer before the softmax). Received: outputs with "
            f"row sums in [{logits.sum(1).min():.6f}, {logits.sum(1).max():.6f}] "
            f"on {n} points"
        )
    run = backend_module("attacks").compile_body(
        model, ("preflight_input_gradient",), _preflight_body
    )
    _, grad, _ = run(x_np, y_np.astype("int32"))
    flat = np.asarray(grad, "float64").reshape(n, -1)
    if not np.all(np.isfinite(flat)):
        raise PreflightError(
            f"{context}: the input gradient of the cross-entropy is not finite "
            f"(NaN or inf) on {int((~np.isfinite(flat)).any(1).sum())} of {n} "
            "points of the first batch; attacks cannot follow it. "
            "Received: a model with non-finite input gradients"
        )
    zero = int(np.all(flat == 0.0, axis=1).sum())
    warnings = []
    masking = (
        "gradient masking: the model's output does not depend differentiably on "
        "its input (stop_gradient, rounding or quantization, a NumPy function, "
        "a saturated softmax)"
    )
    if zero == n:
        message = (
            f"{context}: the input gradient of the cross-entropy is exactly zero "
            f"(or missing) for all {n} points of the first batch: {masking}. "
            "Gradient attacks would return their starting point and report the "
            "clean accuracy as robust. Evaluate with a gradient-free attack "
            "(attacks=('clean', 'square')) or fix the model."
        )
        if needs_gradient:
            raise PreflightError(message + " Received: zero input gradient")
        warnings.append(message)
    elif zero:
        warnings.append(
            f"{context}: the input gradient is exactly zero for {zero} of {n} points "
            f"of the first batch (a saturated loss or {masking.split(': ')[0]}); "
            "gradient attacks cannot move those points from their start."
        )
    return {"points": int(n), "zero_gradient_points": zero, "warnings": warnings}


def check_finite_logits(logits, context="evaluation"):
    """Raises `PreflightError` if ``logits`` holds NaN or inf.

    Example:

    ```python
    import numpy as np
    from specformer_keras.evaluation import check_finite_logits

    check_finite_logits(np.zeros((2, 3)))
    ```
    """
    logits = np.asarray(logits)
    bad = ~np.isfinite(logits.reshape(logits.shape[0], -1)).all(axis=1)
    if bad.any():
        raise PreflightError(
            f"{context}: the model returned non-finite logits (NaN or inf) for "
            f"{int(bad.sum())} of {logits.shape[0]} points; its weights may have "
            "diverged (NaN loss in training) or the inputs are not what it was "
            "trained on. No accuracy would be meaningful (argmax of NaN is class 0). "
            "Received: non-finite model outputs"
        )


class _Attack:
    """A resolved attack: name, kind, settings and ``run(model, x, y, seed)``."""

    def __init__(self, name, kind, settings, run):
        self.name, self.kind, self.settings, self.run = name, kind, settings, run


def _iterative(prefix, loss, steps, eps, norm):
    step_size = eps / 4 if eps > 0 else 1.0  # a zero ball returns x anyway

    def run(model, x, y, seed):
        return pgd(model, x, y, eps, step_size, steps, norm=norm, loss=loss, seed=seed)

    settings = {
        "attack": "pgd",
        "loss": loss,
        "norm": norm,
        "steps": steps,
        "step_size": float(step_size if eps > 0 else 0.0),
        "random_start": True,
        "restarts": 1,
    }
    return _Attack(f"{prefix}{steps}", "iterative", settings, run)


def _resolve(spec, eps, norm, batch_size, logs):
    """Turns an attack name or callable into an `_Attack`."""
    if callable(spec):
        name = getattr(spec, "__name__", type(spec).__name__)

        def run_callable(model, x, y, seed):
            return spec(model, x, y, eps)

        return _Attack(
            name, "custom", {"attack": "callable", "name": name}, run_callable
        )
    if not isinstance(spec, str):
        raise TypeError(
            f"Argument `attacks` must hold attack names {NAMED_ATTACKS} or callables "
            f"attack(model, x, y, eps) -> x_adv. Received: attacks entry={spec!r}"
        )
    if spec == "clean":
        return _Attack("clean", "clean", {}, lambda model, x, y, seed: x)
    if spec == "fgsm":
        settings = {
            "attack": "fgsm",
            "loss": "ce",
            "norm": norm,
            "step_size": float(eps),
        }
        return _Attack(
            "fgsm",
            "single_step",
            settings,
            lambda model, x, y, seed: fgsm(model, x, y, eps, norm),
        )
    match = re.fullmatch(r"(pgd|cw)(\d+)", spec)
    if match and int(match.group(2)) >= 1:
        loss = "ce" if match.group(1) == "pgd" else "cw"
        return _iterative(match.group(1), loss, int(match.group(2)), eps, norm)
    if spec == "autoattack":

        def run_autoattack(model, x, y, seed):
            from specformer_keras.attacks.autoattack import autoattack

            x_adv, log = autoattack(
                model,
                x,
                y,
                eps,
                norm=norm,
                version="standard",
                seed=0 if seed is None else seed,
                batch_size=batch_size,
                return_log=True,
            )
            logs.append(log)
            return x_adv

        settings = {"attack": "autoattack", "version": "standard", "norm": norm}
        return _Attack("autoattack", "iterative", settings, run_autoattack)
    match = re.fullmatch(r"square(\d*)", spec)
    if match and (not match.group(1) or int(match.group(1)) >= 1):
        queries = int(match.group(1) or 5000)

        def run_square(model, x, y, seed):
            from specformer_keras.attacks.square import square

            return square(model, x, y, eps, norm=norm, n_queries=queries, seed=seed)

        settings = {
            "attack": "square",
            "norm": norm,
            "n_queries": queries,
            "p_init": 0.8,
        }
        return _Attack("square", "gradient_free", settings, run_square)
    raise ValueError(
        f"Argument `attacks` must hold attack names {NAMED_ATTACKS} (N >= 1 steps) or "
        f"callables attack(model, x, y, eps) -> x_adv. Received: attacks entry={spec!r}"
    )


def _check_arguments(attacks, eps, norm, batch_size, seed, sanity_points):
    if isinstance(attacks, (str, bytes)) or callable(attacks):
        attacks = (attacks,)
    try:
        attacks = tuple(attacks)
    except TypeError:
        raise TypeError(
            f"Argument `attacks` must be a sequence of attack names or callables. "
            f"Received: attacks={attacks!r}"
        ) from None
    if not attacks:
        raise ValueError(
            f"Argument `attacks` must not be empty. Received: attacks={attacks!r}"
        )
    check_eps(eps)
    check_norm(norm)
    check_int("batch_size", batch_size)
    check_seed("seed", seed)
    check_int("sanity_points", sanity_points)
    return attacks


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
    attacks = _check_arguments(attacks, eps, norm, batch_size, seed, sanity_points)
    eps = float(eps)
    autoattack_logs = []
    resolved = [
        _resolve(spec, eps, norm, batch_size, autoattack_logs) for spec in attacks
    ]
    names = [attack.name for attack in resolved]
    for index, attack in enumerate(resolved):
        if names.count(attack.name) > 1:
            attack.name = f"{attack.name}_{index}"
    names = [attack.name for attack in resolved]
    extra = {}
    if check_more_steps:
        for attack in resolved:
            if re.fullmatch(r"(pgd|cw)\d+", attack.name):
                prefix = attack.name.rstrip("0123456789")
                more = _iterative(
                    prefix,
                    attack.settings["loss"],
                    5 * attack.settings["steps"],
                    eps,
                    norm,
                )
                extra[attack.name] = more

    correct = {name: [] for name in names}
    clean_correct, extra_correct = [], {name: [] for name in extra}
    unavailable, seconds, outside = (
        {},
        dict.fromkeys(names, 0.0),
        dict.fromkeys(names, 0),
    )
    generator, total = _batches(data, batch_size)
    progress = _progress(generator, total, verbose)
    n = 0
    checked = None
    needs_gradient = any(attack.kind in GRADIENT_KINDS for attack in resolved)
    for batch_index, (x, y) in enumerate(progress):
        y = _labels(y)
        x_np, y_np, _ = prepare_inputs(model, x, y, eps)
        batch_seed = None if seed is None else seed + batch_index
        clean_logits = predict_logits(model, x_np)
        if checked is None:  # before any number is computed
            checked = preflight(
                model,
                x_np,
                y_np,
                logits=clean_logits,
                needs_gradient=needs_gradient,
                context="evaluate_robustness",
            )
        else:
            check_finite_logits(clean_logits, "evaluate_robustness")
        clean = clean_logits.argmax(axis=-1) == y_np
        clean_correct.append(clean)
        for attack in resolved:
            if attack.name in unavailable:
                continue
            start = time.perf_counter()
            try:
                x_adv = np.asarray(attack.run(model, x_np, y_np, batch_seed), "float32")
            except NotImplementedError as error:
                unavailable[attack.name] = str(error)
                continue
            seconds[attack.name] += time.perf_counter() - start
            valid = within_budget(x_adv, x_np, eps, norm)
            outside[attack.name] += int((~valid).sum())
            fooled = (predict_labels(model, x_adv) != y_np) & valid
            correct[attack.name].append(clean & ~fooled)
        for name, attack in extra.items():
            room = sanity_points - n
            if room > 0 and name not in unavailable:
                x_part, y_part = x_np[:room], y_np[:room]
                x_adv = attack.run(model, x_part, y_part, batch_seed)
                fooled = predict_labels(model, x_adv) != y_part
                extra_correct[name].append(clean[:room] & ~fooled)
        n += x_np.shape[0]
        if verbose and hasattr(progress, "set_postfix"):
            progress.set_postfix(
                {k: f"{np.concatenate(v).mean():.3f}" for k, v in correct.items() if v}
            )
    if n == 0:
        raise ValueError(
            "Argument `data` must hold at least one example. Received: empty data"
        )

    per_point = {
        name: np.concatenate(v)
        for name, v in correct.items()
        if name not in unavailable
    }
    accuracy = {
        name: (float(per_point[name].mean()) if name in per_point else None)
        for name in names
    }
    worst = np.concatenate(clean_correct)
    for values in per_point.values():
        worst = worst & values
    report = {
        "accuracy": accuracy,
        "n": int(n),
        "eps": eps,
        "norm": norm,
        "seed": seed,
        "settings": {attack.name: attack.settings for attack in resolved},
        "worst_case": float(worst.mean()),
        "unavailable": unavailable,
        "seconds": {k: float(v) for k, v in seconds.items() if k not in unavailable},
        "backend": keras.config.backend(),
        "preflight": {k: v for k, v in checked.items() if k != "warnings"},
    }
    if autoattack_logs:
        broken = {}
        for log in autoattack_logs:
            for component, count in log["broken_by"].items():
                broken[component] = broken.get(component, 0) + int(count)
        report["autoattack_broken_by"] = broken
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
    if more_steps:
        report["more_steps_check"] = more_steps
    report["sanity_checks"], report["warnings"] = _sanity_checks(
        report, resolved, per_point, outside, more_steps, n
    )
    report["sanity_checks"]["zero_input_gradient"] = bool(
        checked["zero_gradient_points"]
    )
    report["warnings"] = checked["warnings"] + report["warnings"]
    if verbose:
        _print_report(report)
    return report


def _progress(generator, total, verbose):
    if not verbose:
        return generator
    from tqdm.auto import tqdm

    return tqdm(generator, total=total, desc="robustness", unit="batch")


def _sanity_checks(report, resolved, per_point, outside, more_steps, n):
    """Flags (True = failed, None = not run) and warning lines."""
    tolerance = SANITY_TOLERANCE + 2.0 / n
    accuracy, warnings = report["accuracy"], []
    clean = float(np.mean(per_point["clean"])) if "clean" in per_point else None
    kinds = {
        attack.name: attack.kind for attack in resolved if attack.name in per_point
    }
    checks = {}

    raised = [
        name for name in per_point if clean is not None and accuracy[name] > clean
    ]
    checks["attack_raises_accuracy"] = bool(raised) if clean is not None else None
    for name in raised:
        warnings.append(
            f"{name} accuracy {accuracy[name]:.4f} is above the clean accuracy {clean:.4f}."
        )

    violating = [name for name, count in outside.items() if count]
    checks["outside_budget"] = bool(violating)
    for name in violating:
        warnings.append(
            f"{name} returned {outside[name]} inputs outside the eps ball or [0, 1]; "
            "they were not counted as successful attacks."
        )

    iterative = [name for name, kind in kinds.items() if kind == "iterative"]
    if "fgsm" in per_point and iterative:
        weaker = [
            name for name in iterative if accuracy[name] > accuracy["fgsm"] + tolerance
        ]
        checks["iterative_weaker_than_fgsm"] = bool(weaker)
        for name in weaker:
            warnings.append(
                f"Iterative attack {name} ({accuracy[name]:.4f}) is weaker than FGSM "
                f"({accuracy['fgsm']:.4f}): a sign of gradient masking or a broken attack."
            )
    else:
        checks["iterative_weaker_than_fgsm"] = None

    if more_steps:
        higher = [
            name
            for name, check in more_steps.items()
            if check["accuracy"]
            > check["accuracy_with_fewer_steps"]
            + SANITY_TOLERANCE
            + 2.0 / check["points"]
        ]
        checks["more_steps_raise_accuracy"] = bool(higher)
        for name in higher:
            check = more_steps[name]
            warnings.append(
                f"{name} with {check['steps']} steps gives a higher accuracy "
                f"({check['accuracy']:.4f}) than with fewer steps "
                f"({check['accuracy_with_fewer_steps']:.4f}) on {check['points']} points."
            )
    else:
        checks["more_steps_raise_accuracy"] = None

    gradient = [
        name
        for name, kind in kinds.items()
        if kind in ("iterative", "single_step") and name != "autoattack"
    ]
    if "square" in per_point and gradient:
        best_gradient = min(accuracy[name] for name in gradient)
        flagged = accuracy["square"] < best_gradient - GRADIENT_FREE_MARGIN
        checks["gradient_free_beats_gradient"] = bool(flagged)
        if flagged:
            warnings.append(
                f"Gradient-free Square ({accuracy['square']:.4f}) beats the best gradient "
                f"attack ({best_gradient:.4f}) by more than {GRADIENT_FREE_MARGIN}: a sign "
                "of gradient masking."
            )
    elif (
        "autoattack_broken_by" in report and "square" in report["autoattack_broken_by"]
    ):
        share = report["autoattack_broken_by"]["square"] / n
        flagged = share > GRADIENT_FREE_MARGIN
        checks["gradient_free_beats_gradient"] = bool(flagged)
        if flagged:
            warnings.append(
                f"Inside AutoAttack, gradient-free Square broke {share:.2%} of the points "
                "that the gradient attacks left robust: a sign of gradient masking."
            )
    else:
        checks["gradient_free_beats_gradient"] = None

    for name, reason in report["unavailable"].items():
        warnings.append(f"{name} was not run (NotImplementedError): {reason}")
    return checks, warnings


def _print_report(report):
    print(
        f"Robust accuracy at eps={report['eps']:.5f} ({report['norm']}), n={report['n']}:"
    )
    for name, value in report["accuracy"].items():
        shown = "unavailable" if value is None else f"{value:.4f}"
        print(f"  {name:>12}: {shown}")
    print(f"  {'worst case':>12}: {report['worst_case']:.4f}")
    for line in report["warnings"]:
        print(f"  WARNING: {line}")


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
        plot_path: PNG path for an accuracy-vs-eps plot, or None.
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
    warnings = list(preflight_warnings)
    order = np.argsort(eps_values, kind="stable")
    sorted_accuracy = np.asarray(accuracies)[order]
    tolerance = SANITY_TOLERANCE + 2.0 / n
    if np.any(np.diff(sorted_accuracy) > tolerance):
        warnings.append(
            f"{name} accuracy rises with eps: {dict(zip(eps_values, accuracies))}."
        )
    large = [i for i, e in enumerate(eps_values) if e >= LARGE_EPS[norm]]
    for i in large:
        if accuracies[i] > LARGE_EPS_ACCURACY:
            warnings.append(
                f"{name} accuracy {accuracies[i]:.4f} at the very large eps={eps_values[i]:.4f} "
                f"does not fall towards 0: a sign of gradient masking or a broken attack."
            )
    curve = {
        "eps": eps_values,
        "accuracy": {name: accuracies},
        "clean_accuracy": clean,
        "attack": name,
        "norm": norm,
        "n": n,
        "large_eps_checked": bool(large),
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
