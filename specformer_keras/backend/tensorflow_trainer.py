"""TensorFlow train/test steps of `AdversarialTrainer` (live model + GradientTape).

The attack runs inside the traced train step: an inner `GradientTape` that
watches only the input gives `d loss / d x` with the classifier in inference
mode; the outer tape covers the single training-mode forward pass and
`compute_loss` (which includes the `add_loss` terms). Works under
`tf.distribute` strategies: the attack is per replica, the loss is scaled by
Keras for the number of replicas.
"""

import keras
import tensorflow as tf


class TensorFlowAdversarialSteps:
    """Mixin with the TF `train_step`/`test_step` of `AdversarialTrainer`."""

    def input_value_and_grad_fn(self):
        """`(x, target) -> (per-example attack loss, d loss / dx)`, inference mode."""

        def value_and_grad_fn(x, target):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                per_example = self.attack_loss(
                    target, self.classifier(x, training=False)
                )
            return per_example, tape.gradient(per_example, x)

        return value_and_grad_fn

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x = tf.cast(x, "float32")

        # 1. Inner maximization, inference mode (no u/v update, no penalty).
        replica_context = tf.distribute.get_replica_context()
        num_replicas = (
            1 if replica_context is None else replica_context.num_replicas_in_sync
        )
        replica_id = (
            0 if num_replicas == 1 else replica_context.replica_id_in_sync_group
        )
        x_start = self.random_start_point(x, replica_id, num_replicas)
        x_train, clean_logits = self.adversarial_step_inputs(
            x, y, self.inference_logits, self.input_value_and_grad_fn(), x_start
        )

        # 2. One training-mode forward pass and the optimizer step.
        x_train = tf.stop_gradient(x_train)
        with tf.GradientTape() as tape:
            y_pred = self(x_train, training=True)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            self._loss_tracker.update_state(
                loss * tf.cast(replicas, loss.dtype), sample_weight=tf.shape(x)[0]
            )
            if self.optimizer is not None:
                loss = self.optimizer.scale_loss(loss)
        trainable_weights = self.trainable_weights
        gradients = tape.gradient(loss, trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, trainable_weights))
        return self.update_training_metrics(
            x, y, y_pred, sample_weight, clean=clean_logits
        )

    def test_step(self, data):
        return self.filter_test_logs(super().test_step(data))


AdversarialSteps = TensorFlowAdversarialSteps
