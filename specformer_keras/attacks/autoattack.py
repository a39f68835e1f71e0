"""AutoAttack (Croce & Hein, ICML 2020): the "standard" ensemble of four attacks.

``version="standard"`` runs, for ``norm="linf"``, exactly the published
protocol of fra31/auto-attack: APGD-CE (100 iterations, 1 restart) ->
APGD-T (9 targets, 100 iterations) -> FAB-T (9 targets, 100 iterations,
``alpha_max=0.1, eta=1.05, beta=0.9``) -> Square (5000 queries,
``p_init=0.8``). Each attack starts from the clean input and runs only on the
points that every previous attack failed on; a point counts as robust only if
it survives all four, so the result is the per-point worst case. If a standard
component is not available (e.g. Square for ``norm="l2"``), ``"standard"``
raises instead of running a weaker set; ``version="custom"`` runs a chosen
subset with chosen settings and says so in its log.

Paper: https://arxiv.org/abs/2003.01690
"""

import time

import numpy as np

from specformer_keras.attacks.apgd import apgd, apgd_targeted
from specformer_keras.attacks.fab import fab_targeted
from specformer_keras.attacks.inputs import prepare_inputs, restore_type
from specformer_keras.attacks.norms import check_norm, within_budget
from specformer_keras.attacks.randomness import check_example_ids
from specformer_keras.attacks.runner import RobustPoints, predict_labels
from specformer_keras.attacks.square import square
from specformer_keras.utils.validation import check_choice, check_int, check_seed

STANDARD_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
KNOWN_ATTACKS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square")
VERSIONS = ("standard", "custom")

# Published settings of AutoAttack "standard" (Linf and L2).
STANDARD_SETTINGS = {
    "apgd-ce": {"steps": 100, "restarts": 1},
    "apgd-dlr": {"steps": 100, "restarts": 1},
    "apgd-t": {"steps": 100, "n_target_classes": 9, "restarts": 1},
    "fab-t": {
        "steps": 100,
        "n_target_classes": 9,
        "alpha_max": 0.1,
        "eta": 1.05,
        "beta": 0.9,
        "restarts": 1,
    },
    "square": {"n_queries": 5000, "p_init": 0.8, "restarts": 1},
}


def _apgd_ce(model, x, y, eps, norm, seed, **settings):
    return apgd(model, x, y, eps, norm=norm, loss="ce", seed=seed, **settings)


def _apgd_dlr(model, x, y, eps, norm, seed, **settings):
    return apgd(model, x, y, eps, norm=norm, loss="dlr", seed=seed, **settings)


def _apgd_t(model, x, y, eps, norm, seed, **settings):
    return apgd_targeted(model, x, y, eps, norm=norm, seed=seed, **settings)


def _fab_t(model, x, y, eps, norm, seed, **settings):
    return fab_targeted(model, x, y, eps, norm=norm, seed=seed, **settings)


def _square(model, x, y, eps, norm, seed, **settings):
    return square(model, x, y, eps, norm=norm, seed=seed, **settings)


# name -> (runner, norms it supports). A component missing for a norm makes
# version="standard" refuse that norm.
COMPONENTS = {
    "apgd-ce": (_apgd_ce, ("linf", "l2")),
    "apgd-dlr": (_apgd_dlr, ("linf", "l2")),
    "apgd-t": (_apgd_t, ("linf", "l2")),
    "fab-t": (_fab_t, ("linf", "l2")),
    "square": (_square, ("linf",)),
}


def _missing_components(names, norm):
    missing = []
    for name in names:
        entry = COMPONENTS.get(name)
        if entry is None or entry[0] is None or norm not in entry[1]:
            missing.append(name)
    return missing


def autoattack(
    model,
    x,
    y,
    eps,
    norm="linf",
    version="standard",
    attacks_to_run=None,
    attack_settings=None,
    seed=0,
    batch_size=256,
    verbose=False,
    return_log=False,
    example_ids=None,
):
    """AutoAttack: APGD-CE -> APGD-T -> FAB-T -> Square, per-point worst case.

    Args:
        model: Keras model mapping images in ``[0, 1]`` to logits; run with
            ``training=False``.
        x: images ``(batch, height, width, channels)`` in ``[0, 1]``.
        y: integer labels ``(batch,)``.
        eps: budget (pixel units, e.g. ``8/255``).
        norm: ``"linf"`` (all four standard components) or ``"l2"`` (only in
            ``version="custom"``: Square L2 is not implemented, so
            ``"standard"`` refuses).
        version: ``"standard"`` (the published protocol; `attacks_to_run` and
            `attack_settings` must be None) or ``"custom"``.
        attacks_to_run: for ``"custom"``: names among ``"apgd-ce"``,
            ``"apgd-dlr"``, ``"apgd-t"``, ``"fab-t"``, ``"square"``, run in that
            order (default: the standard four).
        attack_settings: for ``"custom"``: ``{name: {argument: value}}``
            overriding the standard settings, e.g.
            ``{"apgd-ce": {"steps": 10}, "square": {"n_queries": 100}}``.
        seed: seed of every component (each gets the same seed, as in the
            reference implementation).
        batch_size: points per compiled call.
        verbose: print the robust accuracy after each attack.
        return_log: also return a dict with the clean and per-attack robust
            accuracy, the points each attack broke, timings and settings.
        example_ids: the points' indices in the evaluated set (distinct ints
            >= 0; None: ``0 .. batch - 1``), passed to every component: a
            point's random draws depend only on ``seed`` and its id, so its
            verdict does not depend on its batch, shard or resume point.

    Returns:
        Adversarial inputs of x's shape and dtype (the clean input for points
        no attack broke), or ``(x_adv, log)`` with ``return_log=True``.

    Raises:
        NotImplementedError: ``version="standard"`` and a standard component is
            not available for ``norm``.

    Example:

    ```python
    import keras, numpy as np
    from specformer_keras.attacks import autoattack

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(5)])
    x = np.random.default_rng(0).uniform(size=(4, 4, 4, 1)).astype("float32")
    x_adv, log = autoattack(
        model, x, np.array([0, 1, 2, 3]), eps=8 / 255, version="custom",
        attack_settings={"apgd-ce": {"steps": 5}, "apgd-t": {"steps": 5},
                         "fab-t": {"steps": 5}, "square": {"n_queries": 10}},
        return_log=True)
    ```
    """
    check_choice("version", version, VERSIONS)
    check_norm(norm)
    if version == "standard":
        if attacks_to_run is not None or attack_settings is not None:
            raise ValueError(
                "Arguments `attacks_to_run` and `attack_settings` are only used "
                "with version='custom'; version='standard' runs the published "
                f"protocol. Received: attacks_to_run={attacks_to_run!r}, "
                f"attack_settings={attack_settings!r}"
            )
        names = list(STANDARD_ATTACKS)
        missing = _missing_components(names, norm)
        if missing:
            raise NotImplementedError(
                f"AutoAttack version='standard' needs {list(STANDARD_ATTACKS)}, but "
                f"{missing} is not available for this norm, and a weaker set is not "
                "'standard'. Use version='custom' with attacks_to_run to run the "
                f"available attacks, saying so in your report. Received: norm={norm!r}"
            )
    else:
        names = list(STANDARD_ATTACKS if attacks_to_run is None else attacks_to_run)
        if not names or any(name not in KNOWN_ATTACKS for name in names):
            raise ValueError(
                f"Argument `attacks_to_run` must be a non-empty list of names among "
                f"{KNOWN_ATTACKS}. Received: attacks_to_run={attacks_to_run!r}"
            )
        missing = _missing_components(names, norm)
        if missing:
            raise NotImplementedError(
                f"Attacks {missing} are not available for norm={norm!r}. "
                f"Received: attacks_to_run={attacks_to_run!r}"
            )
    settings = {name: dict(STANDARD_SETTINGS[name]) for name in names}
    for name, overrides in (attack_settings or {}).items():
        if name not in settings or not isinstance(overrides, dict):
            raise ValueError(
                "Argument `attack_settings` must map names of the attacks run to "
                f"dicts of arguments. Received: attack_settings={attack_settings!r}"
            )
        settings[name].update(overrides)
    seed = check_seed("seed", seed)
    batch_size = check_int("batch_size", batch_size)

    x_np, y_np, dtype = prepare_inputs(model, x, y, eps)
    n = x_np.shape[0]
    ids = check_example_ids(example_ids, n)
    robust = predict_labels(model, x_np) == y_np
    points = RobustPoints(x_np, robust)
    log = {
        "version": version,
        "norm": norm,
        "eps": float(eps),
        "seed": seed,
        "n": int(n),
        "attacks": names,
        "settings": settings,
        "clean_accuracy": float(robust.mean()),
        "robust_accuracy": {},
        "broken_by": {},
        "seconds": {},
    }
    if verbose:
        print(
            f"AutoAttack {version} ({', '.join(names)}), clean accuracy {robust.mean():.2%}"
        )
    for name in names:
        start = time.perf_counter()
        broken = 0
        runner = COMPONENTS[name][0]
        for _, chunk in points.batches(batch_size=batch_size):
            candidate = np.asarray(
                runner(
                    model,
                    x_np[chunk],
                    y_np[chunk],
                    eps,
                    norm,
                    seed,
                    example_ids=ids[chunk],
                    **settings[name],
                )
            )
            wrong = predict_labels(model, candidate) != y_np[chunk]
            fooled = wrong & within_budget(candidate, x_np[chunk], eps, norm)
            broken += points.record(chunk, fooled, candidate)
        robust = points.robust
        log["robust_accuracy"][name] = float(robust.mean())
        log["broken_by"][name] = broken
        log["seconds"][name] = time.perf_counter() - start
        if verbose:
            print(
                f"  after {name}: robust accuracy {robust.mean():.2%} "
                f"({broken} broken, {log['seconds'][name]:.1f} s)"
            )
    log["final_robust_accuracy"] = float(points.robust.mean())
    result = restore_type(points.result, x, dtype)
    if return_log:
        return result, log
    return result
