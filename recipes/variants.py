"""The quick and smoke variants every recipe offers beside its default.

`get_config(variant)` of a recipe builds its paper-scale `Config` and passes
it through `quick` or `smoke`, changing what that recipe needs (see
`cifar10_standard.py`). Example:

```python
from recipes.config import Config
from recipes.variants import quick, select, smoke

default = Config(dataset="cifar10")
assert select("smoke", default=default, quick=quick(default),
              smoke=smoke(default)).epochs == 1
```
"""

import dataclasses
import os

from recipes.config import REPO_ROOT, RecipeError

VARIANTS = ("default", "quick", "smoke")
SHARED_CIFAR10 = os.path.join(
    os.path.dirname(REPO_ROOT), "shared", "data", "cifar10-jpeg.tar.gz"
)


def quick(config):
    """The `quick` variant: end to end on 2 CPU cores in minutes (the README command)."""
    return dataclasses.replace(
        config,
        dataset=os.path.relpath(SHARED_CIFAR10, REPO_ROOT),
        preset="vit_micro_patch4_32",
        penalty=(1e-3,),
        subset=2000,
        val_subset=500,
        eval_subset=250,
        epochs=4,
        batch_size=64,
        optimizer="adamw",
        learning_rate=1e-3,
        weight_decay=0.05,
        warmup_epochs=1.0,
        steps=3,
        step_size=3 / 255,
        eval_attacks=("clean", "fgsm", "pgd20", "cw20"),
        curve_eps=(0.0, 4 / 255, 8 / 255, 64 / 255),
        eval_batch_size=250,
    )


def smoke(config):
    """The `smoke` variant: seconds, for tests (tiny model, 64 images, one epoch)."""
    return dataclasses.replace(
        quick(config),
        model_override=("hidden_dim=16", "depth=1", "num_heads=2", "mlp_dim=16"),
        subset=64,
        val_subset=32,
        eval_subset=32,
        epochs=1,
        batch_size=16,
        weight_decay=config.weight_decay,
        warmup_epochs=0.0,
        steps=1,
        step_size=8 / 255,
        eval_attacks=("clean", "pgd20"),
        curve_eps=(0.0, 8 / 255),
        eval_batch_size=32,
        verbose="2",
    )


def select(variant, **variants):
    """`variants[variant]`, refused with the names when unknown (`get_config`'s helper)."""
    if variant not in variants:
        raise RecipeError(
            f"--config must be one of {sorted(variants)}. Received: config={variant!r}"
        )
    return variants[variant]
