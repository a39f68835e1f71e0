"""A small evaluation run in a subprocess: the resume and multi-process tests.

`template_classifier()` is a nearest-template linear model with weights from
NumPy (no training, the same in every process); `evaluate_task(...)` runs
`evaluate_robustness` on `toy_data` and returns what the tests compare.

    python tests/evaluation_task.py OUTPUT_DIR [--initialize] [--attacks a,b]

prints one JSON line (``OUTPUT_DIR`` ``-``: nothing kept on disk).
"""

import argparse
import json

# tests/ is on the path: this file's folder when run as a script, pytest's too.
from testing import TOY_CLASSES, TOY_IMAGE, toy_data, toy_templates

ATTACKS = ("clean", "pgd5", "autoattack")
EPS = 0.14


def template_classifier():
    """Logits ``x . c_k - |c_k|^2 / 2`` for the class templates of `toy_data`."""
    import keras

    centers = toy_templates()
    weights = 8.0 * centers.reshape(TOY_CLASSES, -1).T
    bias = -8.0 * 0.5 * (centers.reshape(TOY_CLASSES, -1) ** 2).sum(1)
    model = keras.Sequential(
        [
            keras.Input((TOY_IMAGE, TOY_IMAGE, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(TOY_CLASSES),
        ]
    )
    model.layers[-1].set_weights([weights.astype("float32"), bias.astype("float32")])
    return model


def evaluate_task(
    output_dir=None, n=24, batch_size=4, attacks=ATTACKS, initialize=False, data_seed=7
):
    """`evaluate_robustness` of `template_classifier` on ``n`` toy points.

    Returns:
        dict of the report's ``accuracy``, ``per_point``, ``n``,
        ``worst_case``, ``layout``, ``sanity_checks``, ``warnings`` and
        ``autoattack_broken_by``.
    """
    from specformer_keras import distributed
    from specformer_keras.evaluation import evaluate_robustness

    if initialize:
        distributed.initialize()
    x, y = toy_data(n=n, seed=data_seed)
    report = evaluate_robustness(
        template_classifier(),
        (x, y),
        attacks=tuple(attacks),
        eps=EPS,
        batch_size=batch_size,
        seed=1,
        verbose=False,
        output_dir=output_dir,
    )
    keys = ("accuracy", "per_point", "n", "worst_case", "layout", "sanity_checks")
    keys += ("warnings", "autoattack_broken_by")
    return {key: report.get(key) for key in keys}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--initialize", action="store_true")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--data_seed", type=int, default=7)
    args = parser.parse_args()
    result = evaluate_task(
        None if args.output_dir == "-" else args.output_dir,
        n=args.n,
        batch_size=args.batch_size,
        attacks=args.attacks.split(","),
        initialize=args.initialize,
        data_seed=args.data_seed,
    )
    print(json.dumps(result))
