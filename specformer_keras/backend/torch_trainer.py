"""PyTorch train/test steps of `AdversarialTrainer` (live model + autograd).

Shaped like Keras' own `TorchTrainer.train_step`
(`keras/src/backend/torch/trainer.py`): forward, `zero_grad`,
`_compute_loss`, `backward`, `optimizer.apply` under `torch.no_grad`. Before
that, the attack runs with the classifier in inference mode: input gradients
come from `torch.autograd.grad` with respect to a detached copy of the input
inside `torch.enable_grad()` (see `torch_attacks.input_value_and_grad`), so no
weight `.grad` is written and u/v (`requires_grad=False`) are never
differentiated. The random start draws from the trainer's `SeedGenerator`,
whose state advances eagerly. Data-parallel training is not supported on
torch (Keras 3.15's `keras.distribution` is JAX-only).
"""

import warnings

import keras
import torch
from keras import ops

from specformer_keras.backend.torch_attacks import (
    input_gradients_only,
    input_value_and_grad,
)


class TorchAdversarialSteps:
    """Mixin with the torch `train_step`/`test_step` of `AdversarialTrainer`."""

    def input_value_and_grad_fn(self):
        """`(x, target) -> (per-example attack loss, d loss / dx)`, inference mode."""

        def value_and_grad_fn(x, target):
            def forward(inputs):
                logits = self.classifier(inputs, training=False)
                return self.attack_loss(target, logits), None

            per_example, grad, _ = input_value_and_grad(forward, x)
            return per_example, grad

        return value_and_grad_fn

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = ops.cast(x, "float32")

        # 1. Inner maximization, inference mode (no u/v update, no penalty).
        with torch.no_grad(), input_gradients_only(self):
            x_train, clean_logits = self.adversarial_step_inputs(
                x,
                y,
                self.inference_logits,
                self.input_value_and_grad_fn(),
                self.random_start_point(x),
            )
            x_train = x_train.detach()

        # 2. One training-mode forward pass and the optimizer step.
        y_pred = self(x_train, training=True)
        self.zero_grad()
        loss = self._compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        self._loss_tracker.update_state(loss, sample_weight=x.shape[0])
        if self.optimizer is not None:
            loss = self.optimizer.scale_loss(loss)
        if self.trainable_weights:
            loss.backward()
            trainable_weights = self.trainable_weights[:]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
        else:
            warnings.warn(
                "The model does not have any trainable weights.", stacklevel=2
            )
        with torch.no_grad():
            return self.update_training_metrics(
                x, y, y_pred.detach(), sample_weight, clean=clean_logits
            )

    def test_step(self, data):
        return self.filter_test_logs(super().test_step(data))


AdversarialSteps = TorchAdversarialSteps
