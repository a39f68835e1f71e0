"""CIFAR-10 adversarial training (PGD-AT or TRADES) of a SpectralViT with MSVP.

Quick run on a CPU (small model, 2,000-image subset, 4 epochs; the CIFAR-10
JPEG archive at ../shared/data/cifar10-jpeg.tar.gz), and a seconds-long smoke
run (what the tests run):

    python recipes/cifar10_adv.py --config=quick
    python recipes/cifar10_adv.py --config=smoke --output_dir=/tmp/smoke

Paper-scale run for a GPU/TPU (ViT-B/4, 40 epochs, PGD-10 at eps 8/255, penalty
1e-5 on query/key/value; TFDS cifar10 downloads on first use):

    python recipes/cifar10_adv.py --backend=jax --output_dir=runs/c10_pgd_at
    python recipes/cifar10_adv.py --method=trades --penalty=1e-5,1e-5,1e-5

Every flag: `python recipes/cifar10_adv.py --helpfull`. Rerunning the same
command after an interruption resumes from the last finished epoch.
"""

import os
import sys

if __name__ == "__main__" and not __package__:  # python recipes/cifar10_adv.py
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from recipes import train  # noqa: E402
from recipes.config import Config
from recipes.variants import quick, select, smoke  # noqa: E402


def get_config(variant="default"):
    """This recipe's `Config`: "default" (paper scale), "quick" or "smoke"."""
    default = Config(dataset="cifar10", preset="vit_base_patch4_32", method="pgd_at")
    return select(variant, default=default, quick=quick(default), smoke=smoke(default))


if __name__ == "__main__":
    train.start("cifar10_adv", get_config)
