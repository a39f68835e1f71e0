"""JAX train/test steps of `AdversarialTrainer` (stateless, jit-compatible).

The attack differentiates `stateless_call(trainable, non_trainable, x,
training=False)` with respect to `x` (no state comes back from inference
mode); the weights are updated with `jax.value_and_grad` over Keras'
`compute_loss_and_updates` on the single training-mode forward pass, whose
returned non-trainable values carry the one power-iteration step of u/v.
The random start and the metric updates run in `keras.StatelessScope`s so
their state (seed, metric variables) comes back out of the traced step.
Works under `keras.distribution.DataParallel` (the batch is sharded, the
step is the same program).
"""

import jax
import keras
from keras import ops


class JAXAdversarialSteps:
    """Mixin with the JAX `train_step`/`test_step` of `AdversarialTrainer`."""

    def input_value_and_grad_fn(self, trainable_variables, non_trainable_variables):
        """`(x, target) -> (per-example attack loss, d loss / dx)`, inference mode."""

        def value_and_grad_fn(x, target):
            def total_loss(inputs):
                logits, _ = self.stateless_call(
                    trainable_variables, non_trainable_variables, inputs, training=False
                )
                per_example = self.attack_loss(target, logits)
                return ops.sum(per_example), per_example

            (_, per_example), grad = jax.value_and_grad(total_loss, has_aux=True)(x)
            return per_example, grad

        return value_and_grad_fn

    def _stateless_random_start(self, non_trainable_variables, x):
        """`random_start_point(x)` with the seed state threaded through."""
        if not self.random_start:
            return x, non_trainable_variables
        mapping = list(zip(self.non_trainable_variables, non_trainable_variables))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            x_start = self.random_start_point(x)
        updated = []
        for ref, value in zip(self.non_trainable_variables, non_trainable_variables):
            new_value = scope.get_current_value(ref)
            updated.append(value if new_value is None else new_value)
        return x_start, updated

    def train_step(self, state, data):
        (
            trainable_variables,
            non_trainable_variables,
            optimizer_variables,
            metrics_variables,
        ) = state
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = ops.cast(x, "float32")

        def logits_fn(inputs):
            logits, _ = self.stateless_call(
                trainable_variables, non_trainable_variables, inputs, training=False
            )
            return logits

        # 1. Inner maximization, inference mode (no u/v update, no penalty).
        x_start, non_trainable_variables = self._stateless_random_start(
            non_trainable_variables, x
        )
        x_train, clean_logits = self.adversarial_step_inputs(
            x,
            y,
            logits_fn,
            self.input_value_and_grad_fn(trainable_variables, non_trainable_variables),
            x_start,
        )

        # 2. One training-mode forward pass (u/v step, add_loss) and the update.
        x_train = jax.lax.stop_gradient(x_train)
        grad_fn = jax.value_and_grad(self.compute_loss_and_updates, has_aux=True)
        (_, aux), grads = grad_fn(
            trainable_variables,
            non_trainable_variables,
            metrics_variables,
            x_train,
            y,
            sample_weight,
            training=True,
            optimizer_variables=optimizer_variables,
        )
        unscaled_loss, y_pred, non_trainable_variables, metrics_variables = aux
        trainable_variables, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, grads, trainable_variables
        )

        mapping = list(zip(self.metrics_variables, metrics_variables))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            self._loss_tracker.update_state(unscaled_loss, sample_weight=x.shape[0])
            logs = self.update_training_metrics(
                x, y, y_pred, sample_weight, clean=clean_logits
            )
        new_metrics_variables = []
        for ref, value in zip(self.metrics_variables, metrics_variables):
            new_value = scope.get_current_value(ref)
            new_metrics_variables.append(value if new_value is None else new_value)

        state = (
            trainable_variables,
            non_trainable_variables,
            optimizer_variables,
            new_metrics_variables,
        )
        return logs, state

    def test_step(self, state, data):
        logs, state = super().test_step(state, data)
        return self.filter_test_logs(logs), state


AdversarialSteps = JAXAdversarialSteps
