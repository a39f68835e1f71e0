"""CIFAR-100 adversarial training (PGD-AT or TRADES) of a SpectralViT with MSVP.

    python recipes/cifar100_adv.py --output_dir=runs/c100_pgd_at
    python recipes/cifar100_adv.py --dataset=/data/cifar100-folders --config=quick
    python recipes/cifar100_adv.py --dataset=/data/cifar100-folders --config=smoke

TFDS cifar100 downloads on first use (the quick and smoke variants keep it);
offline, pass a folder or archive with train/<class>/ and test/<class>/
sub-folders. Every flag: `--helpfull`.
"""

import dataclasses
import os
import sys

if __name__ == "__main__" and not __package__:  # python recipes/cifar100_adv.py
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from recipes import train  # noqa: E402
from recipes.config import Config
from recipes.variants import quick, select, smoke  # noqa: E402


def get_config(variant="default"):
    """This recipe's `Config`: "default" (paper scale), "quick" or "smoke"."""
    default = Config(dataset="cifar100", preset="vit_base_patch4_32", method="pgd_at")
    return select(
        variant,
        default=default,
        quick=dataclasses.replace(quick(default), dataset=default.dataset),
        smoke=dataclasses.replace(smoke(default), dataset=default.dataset),
    )


if __name__ == "__main__":
    train.start("cifar100_adv", get_config)
