"""CIFAR-10 standard (clean) training of a SpectralViT with MSVP, attacked at small eps.

As in the paper's clean-training experiments, robustness is reported at small
budgets (eps 1/255 for results.json; the accuracy-vs-eps plot sweeps 0..4/255).

    python recipes/cifar10_standard.py --config=quick
    python recipes/cifar10_standard.py --config=smoke --output_dir=/tmp/smoke
    python recipes/cifar10_standard.py --preset=vit_small_patch4_32 --penalty=1e-5

Every flag: `python recipes/cifar10_standard.py --helpfull`.
"""

import dataclasses
import os
import sys

if __name__ == "__main__" and not __package__:  # python recipes/cifar10_standard.py
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from recipes import train  # noqa: E402
from recipes.config import Config
from recipes.variants import quick, select, smoke  # noqa: E402


def get_config(variant="default"):
    """This recipe's `Config`: "default" (paper scale), "quick" or "smoke"."""
    default = Config(
        dataset="cifar10",
        preset="vit_small_patch4_32",
        method="standard",
        eval_eps=1 / 255,
        curve_eps=(0.0, 0.5 / 255, 1 / 255, 2 / 255, 4 / 255, 64 / 255),
    )
    small_eps = {"method": "standard", "eval_eps": 1 / 255}
    return select(
        variant,
        default=default,
        quick=dataclasses.replace(
            quick(default),
            curve_eps=(0.0, 1 / 255, 2 / 255, 4 / 255, 64 / 255),
            **small_eps,
        ),
        smoke=dataclasses.replace(smoke(default), **small_eps),
    )


if __name__ == "__main__":
    train.start("cifar10_standard", get_config)
