"""Robustness evaluation: accuracy under several attacks, with sanity checks.

One module per concern: `specs` (attack names resolved to runnable attacks),
`model_checks` (`preflight`, `check_finite_logits`), `sanity` (the sanity
checks), `report` (`evaluate_robustness`, `print_report`), `sources` (the
data: ``(x, y)`` or batches, decided by structure), `store` (the per-batch
result files that make an evaluation resumable), `stale` (temporary files a
killed write left) and `curve` (`robustness_curve`, sharded and resumable the
same way). Every public name is importable from here. The
evaluation returns data; `specformer_keras.plots` draws.

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
``report["sanity_checks"]``; it never raises (see `sanity_checks`).

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

from specformer_keras.evaluation.curve import robustness_curve
from specformer_keras.evaluation.model_checks import (
    PROBABILITY_TOLERANCE,
    PreflightError,
    check_finite_logits,
    preflight,
)
from specformer_keras.evaluation.report import evaluate_robustness, print_report
from specformer_keras.evaluation.sanity import (
    GRADIENT_FREE_MARGIN,
    LARGE_EPS,
    LARGE_EPS_ACCURACY,
    SANITY_TOLERANCE,
    curve_sanity_checks,
    sanity_checks,
)
from specformer_keras.evaluation.specs import (
    DEFAULT_ATTACKS,
    GRADIENT_KINDS,
    NAMED_ATTACKS,
    AttackSpec,
    resolve_attack,
)

__all__ = [
    "DEFAULT_ATTACKS",
    "GRADIENT_FREE_MARGIN",
    "GRADIENT_KINDS",
    "LARGE_EPS",
    "LARGE_EPS_ACCURACY",
    "NAMED_ATTACKS",
    "PROBABILITY_TOLERANCE",
    "SANITY_TOLERANCE",
    "AttackSpec",
    "PreflightError",
    "check_finite_logits",
    "curve_sanity_checks",
    "evaluate_robustness",
    "preflight",
    "print_report",
    "resolve_attack",
    "robustness_curve",
    "sanity_checks",
]
