"""Phase 1 of an adversarial train step, in `keras.ops`: the inner maximization.

`InnerMaximization` is the part of `AdversarialTrainer` that the per-backend
train steps (`specformer_keras/backend/*_trainer.py`) call before the
training forward pass: the random start, the attack's target and loss, and
`steps` signed-gradient steps inside the L-inf ball (the PGD loop of
`specformer_keras.attacks.pgd.pgd_body`), all with the classifier in
inference mode. It reads the trainer's `method`, `eps`, `step_size`,
`steps`, `random_start`, `track_clean_accuracy` and `seed_generator`.
"""

import keras
from keras import ops

from specformer_keras.attacks.pgd import pgd_body
from specformer_keras.training.objectives import kl_from_probabilities, sparse_labels

TRADES_RANDOM_START_STDDEV = 0.001


class InnerMaximization:
    """Mixin of `AdversarialTrainer`: random start, attack target, loss and steps."""

    def inference_logits(self, inputs):
        """The classifier's logits in inference mode (what the attack sees)."""
        return self.classifier(inputs, training=False)

    def adversarial_step_inputs(self, x, y, logits_fn, value_and_grad_fn, x_start):
        """Phase 1 of a train step: the inputs of the training forward pass.

        Runs the attack from `x_start` (`attack_target`, then
        `generate_adversarial`) and, when `track_clean_accuracy` is set for
        PGD-AT, the extra clean inference pass.

        Args:
            x: Clean images in [0, 1].
            y: Labels.
            logits_fn: `x -> logits` with the classifier in inference mode.
            value_and_grad_fn: `(x, target) -> (per-example loss, d loss/dx)`,
                inference mode.
            x_start: The attack's starting point (`random_start_point`).

        Returns:
            `(training_inputs(x, x_adv), clean logits or None)`.
        """
        target = self.attack_target(y, logits_fn, x)
        x_adv = self.generate_adversarial(x, x_start, target, value_and_grad_fn)
        clean_logits = None
        if self.track_clean_accuracy and self.method == "pgd_at":
            clean_logits = logits_fn(x)
        return self.training_inputs(x, x_adv), clean_logits

    def random_start_point(self, x, replica_id=0, num_replicas=1):
        """The attack's starting point: `x` or a random point near it.

        Draws from `self.seed_generator`; the JAX step calls it inside a
        `StatelessScope` so the seed state advances. Under a data-parallel
        strategy whose replicas share the seed state (tf.distribute), each
        replica passes its `replica_id`: the noise is drawn for the global
        batch and sliced, so replicas get different noise and the result
        equals a single-device run.

        Args:
            x: Clean images of one replica, in [0, 1].
            replica_id: Index of this replica (Python int or scalar tensor).
            num_replicas: Number of replicas in sync.

        Returns:
            A tensor like `x`.
        """
        if not self.random_start:
            return x
        batch = ops.shape(x)[0]
        shape = (batch * num_replicas,) + tuple(ops.shape(x)[1:])
        if self.method == "pgd_at":
            noise = keras.random.uniform(
                shape,
                minval=-self.eps,
                maxval=self.eps,
                dtype="float32",
                seed=self.seed_generator,
            )
        else:
            noise = TRADES_RANDOM_START_STDDEV * keras.random.normal(
                shape, dtype="float32", seed=self.seed_generator
            )
        if num_replicas > 1:
            noise = ops.slice(
                noise,
                [replica_id * batch] + [0] * (len(shape) - 1),
                (batch,) + shape[1:],
            )
        return ops.clip(x + noise, 0.0, 1.0)

    def attack_target(self, y, logits_fn, x):
        """What the attack's loss compares against.

        PGD-AT: integer labels. TRADES: the clean probabilities of the model
        in inference mode (a constant during the attack).
        """
        if self.method == "pgd_at":
            return sparse_labels(y)
        return ops.stop_gradient(ops.softmax(ops.cast(logits_fn(x), "float32")))

    def attack_loss(self, target, logits):
        """Per-example loss the attack maximizes."""
        if self.method == "pgd_at":
            return keras.losses.sparse_categorical_crossentropy(
                target, ops.cast(logits, "float32"), from_logits=True
            )
        return kl_from_probabilities(target, logits)

    def generate_adversarial(self, x, x_start, target, value_and_grad_fn):
        """`steps` signed-gradient steps from `x_start` inside the eps-ball of `x`.

        The iterations are `specformer_keras.attacks.pgd.pgd_body` (the same
        pure `keras.ops` loop as the PGD attack), traced into the train step.

        Args:
            x: Clean images in [0, 1].
            x_start: Starting point (from `random_start_point`).
            target: From `attack_target`.
            value_and_grad_fn: `(x, target) -> (per-example loss, d loss/dx)`
                with the classifier in inference mode.

        Returns:
            The adversarial images, without gradient.
        """
        lower = ops.maximum(x - self.eps, 0.0)
        upper = ops.minimum(x + self.eps, 1.0)
        x_start = ops.stop_gradient(ops.minimum(ops.maximum(x_start, lower), upper))
        if self.steps == 0:
            return x_start

        def evaluate(x_adv):
            per_example, grad = value_and_grad_fn(x_adv, target)
            return per_example, ops.cast(grad, x_adv.dtype), None

        x_adv = pgd_body(
            evaluate, x, x_start, self.eps, self.step_size, self.steps, norm="linf"
        )
        return ops.stop_gradient(x_adv)
