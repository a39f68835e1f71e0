"""Imagenette adversarial training (PGD-AT or TRADES) of a SpectralViT with MSVP.

224x224 images, DeiT-S-like ViT/16, eps 4/255 as usual on ImageNet-scale data:

    python recipes/imagenette_adv.py --output_dir=runs/imagenette_pgd_at
    python recipes/imagenette_adv.py --dataset=/data/imagenette2 --config=quick
    python recipes/imagenette_adv.py --dataset=/data/imagenette2 --config=smoke

TFDS imagenette downloads on first use (the quick and smoke variants keep it);
offline, pass a folder or archive with train/<class>/ and test/ (or val/)
sub-folders. Every flag: `--helpfull`.
"""

import dataclasses
import os
import sys

if __name__ == "__main__" and not __package__:  # python recipes/imagenette_adv.py
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from recipes import train  # noqa: E402
from recipes.config import Config
from recipes.variants import quick, select, smoke  # noqa: E402


def get_config(variant="default"):
    """This recipe's `Config`: "default" (paper scale), "quick" or "smoke"."""
    default = Config(
        image_size=224,  # ImageNet-scale: 224x224 images, ViT/16, eps 4/255
        dataset="imagenette",
        preset="vit_small_patch16_224",
        eps=4 / 255,
        step_size=1 / 255,
        eval_eps=4 / 255,
        curve_eps=(0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 64 / 255),
        optimizer="adamw",
        learning_rate=5e-4,
        weight_decay=0.05,
        warmup_epochs=5.0,
        batch_size=64,
        eval_batch_size=64,
        method="pgd_at",
    )
    small_model = (
        "patch_size=8",
        "hidden_dim=32",
        "depth=2",
        "num_heads=2",
        "mlp_dim=64",
    )
    return select(
        variant,
        default=default,
        quick=dataclasses.replace(
            quick(default),
            dataset=default.dataset,
            image_size=64,
            model_override=small_model,
        ),
        smoke=dataclasses.replace(
            smoke(default), dataset=default.dataset, image_size=32
        ),
    )


if __name__ == "__main__":
    train.start("imagenette_adv", get_config)
