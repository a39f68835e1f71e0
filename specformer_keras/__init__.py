"""specformer-keras: SpecFormer's MSVP for robust Vision Transformers in Keras 3.

Example:

```python
from specformer_keras import SpectralViT

model = SpectralViT.from_preset("vit_micro_patch4_32", penalty=1e-3)
```
"""

from specformer_keras.attacks.fgsm import fgsm
from specformer_keras.attacks.pgd import pgd
from specformer_keras.callbacks import SpectralNormMonitor
from specformer_keras.data import DatasetUnavailableError, load_dataset
from specformer_keras.evaluation import evaluate_robustness, robustness_curve
from specformer_keras.layers.spectral_attention import SpectralMultiHeadAttention
from specformer_keras.models.convert import apply_msvp
from specformer_keras.models.spectral_vit import SpectralViT
from specformer_keras.plots import (
    plot_accuracy_vs_eps,
    plot_sigma,
    plot_training_curves,
)
from specformer_keras.training.adversarial_trainer import AdversarialTrainer

__version__ = "0.1.0"

__all__ = [
    "AdversarialTrainer",
    "DatasetUnavailableError",
    "SpectralNormMonitor",
    "load_dataset",
    "plot_accuracy_vs_eps",
    "plot_sigma",
    "plot_training_curves",
    "SpectralMultiHeadAttention",
    "SpectralViT",
    "apply_msvp",
    "evaluate_robustness",
    "fgsm",
    "pgd",
    "robustness_curve",
]
