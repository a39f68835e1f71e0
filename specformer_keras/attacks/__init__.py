"""Attacks on models that take images in [0, 1] and return logits.

Example:

```python
from specformer_keras.attacks import autoattack
```
"""

from specformer_keras.attacks.apgd import apgd, apgd_targeted
from specformer_keras.attacks.autoattack import autoattack
from specformer_keras.attacks.fab import fab_targeted
from specformer_keras.attacks.fgsm import fgsm
from specformer_keras.attacks.pgd import pgd
from specformer_keras.attacks.square import square

__all__ = [
    "apgd",
    "apgd_targeted",
    "autoattack",
    "fab_targeted",
    "fgsm",
    "pgd",
    "square",
]
