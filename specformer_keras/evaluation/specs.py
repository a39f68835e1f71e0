"""Attack specifications: attack names (or callables) resolved to runnable attacks.

Names: ``"clean"``, ``"fgsm"``, ``"pgdN"`` (PGD, N steps, step ``eps / 4``,
random start), ``"cwN"`` (the same PGD on the CW margin loss),
``"autoattack"`` (standard AutoAttack), ``"square"`` (Square Attack, 5000
queries; ``"squareN"``: N queries; reported as ``"square"``), or a callable
``attack(model, x, y, eps) -> x_adv``.
"""

import re

from specformer_keras.attacks.fgsm import fgsm
from specformer_keras.attacks.pgd import pgd

DEFAULT_ATTACKS = ("clean", "fgsm", "pgd20", "cw20", "autoattack")
NAMED_ATTACKS = ("clean", "fgsm", "pgdN", "cwN", "autoattack", "square", "squareN")
# Attack kinds that follow the input gradient (refused on an all-zero gradient).
GRADIENT_KINDS = ("single_step", "iterative")


class AttackSpec:
    """A resolved attack: ``name``, ``kind``, ``settings`` and ``run``.

    ``run(model, x, y, seed, example_ids)`` returns ``(x_adv, log)``: the
    adversarial inputs and a dict of what the attack reports about itself
    (AutoAttack's ``{"broken_by": {component: points}, ...}``), or None.
    ``example_ids`` are the points' indices in the evaluated set: the named
    attacks draw their random numbers per example from ``seed`` and these ids
    (`specformer_keras.attacks.randomness`), so a point's verdict does not
    depend on its batch, shard or resume point.
    ``kind`` is one of ``"clean"``, ``"single_step"``, ``"iterative"``,
    ``"gradient_free"`` and ``"custom"``.
    """

    def __init__(self, name, kind, settings, run):
        self.name, self.kind, self.settings, self.run = name, kind, settings, run


def iterative_attack(prefix, loss, steps, eps, norm):
    """The `AttackSpec` of ``"pgdN"`` (``loss="ce"``) or ``"cwN"`` (``loss="cw"``)."""
    step_size = eps / 4 if eps > 0 else 1.0  # a zero ball returns x anyway

    def run(model, x, y, seed, example_ids=None):
        x_adv = pgd(
            model,
            x,
            y,
            eps,
            step_size,
            steps,
            norm=norm,
            loss=loss,
            seed=seed,
            example_ids=example_ids,
        )
        return x_adv, None

    settings = {
        "attack": "pgd",
        "loss": loss,
        "norm": norm,
        "steps": steps,
        "step_size": float(step_size if eps > 0 else 0.0),
        "random_start": True,
        "restarts": 1,
    }
    return AttackSpec(f"{prefix}{steps}", "iterative", settings, run)


def _callable_attack(spec, eps):
    name = getattr(spec, "__name__", type(spec).__name__)

    def run(model, x, y, seed, example_ids=None):
        return spec(model, x, y, eps), None

    return AttackSpec(name, "custom", {"attack": "callable", "name": name}, run)


def _fgsm_attack(eps, norm):
    settings = {"attack": "fgsm", "loss": "ce", "norm": norm, "step_size": float(eps)}

    def run(model, x, y, seed, example_ids=None):
        return fgsm(model, x, y, eps, norm), None

    return AttackSpec("fgsm", "single_step", settings, run)


def _autoattack(eps, norm, batch_size):
    def run(model, x, y, seed, example_ids=None):
        from specformer_keras.attacks.autoattack import autoattack

        return autoattack(
            model,
            x,
            y,
            eps,
            norm=norm,
            version="standard",
            seed=0 if seed is None else seed,
            batch_size=batch_size,
            return_log=True,
            example_ids=example_ids,
        )

    settings = {"attack": "autoattack", "version": "standard", "norm": norm}
    return AttackSpec("autoattack", "iterative", settings, run)


def _square_attack(queries, eps, norm):
    def run(model, x, y, seed, example_ids=None):
        from specformer_keras.attacks.square import square

        x_adv = square(
            model,
            x,
            y,
            eps,
            norm=norm,
            n_queries=queries,
            seed=seed,
            example_ids=example_ids,
        )
        return x_adv, None

    settings = {"attack": "square", "norm": norm, "n_queries": queries, "p_init": 0.8}
    return AttackSpec("square", "gradient_free", settings, run)


def _clean_run(model, x, y, seed, example_ids=None):
    return x, None


def resolve_attack(spec, eps, norm, batch_size):
    """Turns an attack name or callable into an `AttackSpec`.

    Raises:
        TypeError: if ``spec`` is neither a string nor a callable.
        ValueError: for an unknown attack name.
    """
    if callable(spec):
        return _callable_attack(spec, eps)
    if not isinstance(spec, str):
        raise TypeError(
            f"Argument `attacks` must hold attack names {NAMED_ATTACKS} or callables "
            f"attack(model, x, y, eps) -> x_adv. Received: attacks entry={spec!r}"
        )
    if spec == "clean":
        return AttackSpec("clean", "clean", {}, _clean_run)
    if spec == "fgsm":
        return _fgsm_attack(eps, norm)
    match = re.fullmatch(r"(pgd|cw)(\d+)", spec)
    if match and int(match.group(2)) >= 1:
        loss = "ce" if match.group(1) == "pgd" else "cw"
        return iterative_attack(match.group(1), loss, int(match.group(2)), eps, norm)
    if spec == "autoattack":
        return _autoattack(eps, norm, batch_size)
    match = re.fullmatch(r"square(\d*)", spec)
    if match and (not match.group(1) or int(match.group(1)) >= 1):
        return _square_attack(int(match.group(1) or 5000), eps, norm)
    raise ValueError(
        f"Argument `attacks` must hold attack names {NAMED_ATTACKS} (N >= 1 steps) or "
        f"callables attack(model, x, y, eps) -> x_adv. Received: attacks entry={spec!r}"
    )


def normalize_attacks(attacks):
    """``attacks`` as a non-empty tuple (a single name or callable is wrapped)."""
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
    return attacks


def resolve_attacks(attacks, eps, norm, batch_size, check_more_steps=False):
    """`AttackSpec` per entry of ``attacks`` (unique names) and the more-steps runs.

    Returns:
        ``(resolved, extra)``: the list of `AttackSpec` (a repeated name gets
        ``_<index>`` appended) and ``{name: AttackSpec}`` of every ``pgdN`` /
        ``cwN`` rerun with ``5 N`` steps when ``check_more_steps``.
    """
    resolved = [resolve_attack(spec, eps, norm, batch_size) for spec in attacks]
    names = [attack.name for attack in resolved]
    for index, attack in enumerate(resolved):
        if names.count(attack.name) > 1:
            attack.name = f"{attack.name}_{index}"
    extra = {}
    if check_more_steps:
        for attack in resolved:
            if re.fullmatch(r"(pgd|cw)\d+", attack.name):
                prefix = attack.name.rstrip("0123456789")
                extra[attack.name] = iterative_attack(
                    prefix,
                    attack.settings["loss"],
                    5 * attack.settings["steps"],
                    eps,
                    norm,
                )
    return resolved, extra
