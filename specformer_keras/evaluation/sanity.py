"""Sanity checks of a robustness evaluation (Carlini et al. 2019).

After "On Evaluating Adversarial Robustness"
(https://arxiv.org/abs/1902.06705): iterative attacks must not be weaker than
FGSM, more PGD steps must not raise the accuracy, a gradient-free attack
(Square) must not beat the gradient attacks by a wide margin, no attack may
raise the accuracy above the clean accuracy, and the accuracy must fall
towards 0 at very large eps. A failed check is a flag and a warning line; the
checks never raise.
"""

import numpy as np

# Tolerance (accuracy points) of the sanity comparisons, on top of 2 examples.
SANITY_TOLERANCE = 0.01
# Square beating every gradient attack by more than this flags gradient masking.
GRADIENT_FREE_MARGIN = 0.05
# Eps from which Linf / L2 attacks should drive the accuracy towards 0.
LARGE_EPS = {"linf": 0.25, "l2": 8.0}
# Accuracy at a large eps above this is flagged.
LARGE_EPS_ACCURACY = 0.1


def sanity_checks(report, resolved, per_point, outside, more_steps, n):
    """The report's sanity checks: flags (True = failed, None = not run) and warnings.

    Args:
        report: the report so far: ``accuracy`` ``{attack: float or None}``,
            ``unavailable`` ``{attack: reason}`` and, when AutoAttack ran,
            ``autoattack_broken_by`` ``{component: points}``.
        resolved: the attacks run, objects with ``name`` and ``kind`` (see
            `specformer_keras.evaluation.specs.AttackSpec`).
        per_point: ``{attack: bool array}``, robust per point, for the
            attacks that ran.
        outside: ``{attack: count}`` of adversarial inputs outside the budget.
        more_steps: ``{attack: {"points", "steps", "accuracy",
            "accuracy_with_fewer_steps"}}`` of the more-steps reruns, or ``{}``.
        n: number of evaluated points.

    Returns:
        ``(checks, warnings)``: ``{check: bool or None}`` and a list of str.

    Example:

    ```python
    import numpy as np
    from specformer_keras.evaluation import sanity_checks
    from specformer_keras.evaluation.specs import resolve_attack

    resolved = [resolve_attack(name, 0.1, "linf", 8) for name in ("clean", "fgsm")]
    per_point = {"clean": np.ones(10, bool), "fgsm": np.arange(10) < 4}
    report = {"accuracy": {"clean": 1.0, "fgsm": 0.4}, "unavailable": {}}
    checks, warnings = sanity_checks(
        report, resolved, per_point, {"fgsm": 0}, {}, 10
    )
    assert checks["attack_raises_accuracy"] is False and warnings == []
    ```
    """
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


def curve_sanity_checks(name, eps_values, accuracies, norm, n):
    """Warnings for an accuracy-vs-eps curve, and whether a budget was large.

    Flags an accuracy that rises with eps, and an accuracy above
    `LARGE_EPS_ACCURACY` at a budget of at least ``LARGE_EPS[norm]``.

    Args:
        name: the attack's name, for the messages.
        eps_values: the budgets, in any order.
        accuracies: the accuracy at each budget.
        norm: ``"linf"`` or ``"l2"``.
        n: number of evaluated points.

    Returns:
        ``(warnings, large_eps_checked)``: a list of str and a bool.

    Example:

    ```python
    from specformer_keras.evaluation import curve_sanity_checks

    warnings, large = curve_sanity_checks("pgd20", [0.0, 0.3], [0.9, 0.5], "linf", 100)
    assert large and len(warnings) == 1
    ```
    """
    warnings = []
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
    return warnings, bool(large)
