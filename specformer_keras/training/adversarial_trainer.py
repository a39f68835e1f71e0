"""`AdversarialTrainer`: PGD-AT and TRADES inside `model.fit`, on TF, JAX and torch.

The trainer wraps a classifier (images in [0, 1] -> logits). Each training
step has two phases:

1. Inner maximization with the classifier in inference mode
   (`training=False`: no dropout, no MSVP power-iteration update, no penalty):
   `steps` signed-gradient steps of size `step_size` inside the L-inf ball of
   radius `eps`, clipped to [0, 1]. PGD-AT maximizes the cross-entropy
   (random start uniform in the ball); TRADES maximizes
   `KL(p_clean || p_adv)` (random start `0.001 * normal`).
2. ONE training-mode forward pass and one optimizer step. PGD-AT trains on
   `x_adv`; TRADES runs the classifier once on `concat([x, x_adv])` so the
   power iteration runs once and the MSVP `add_loss` terms are counted once.

The per-backend train steps live in `specformer_keras/backend/` (the mixin
is picked once by `specformer_keras.backend.backend_module("trainer")`, like
Keras picks its trainer); phase 1 is `InnerMaximization`
(`specformer_keras.training.inner_maximization`); everything here is
`keras.ops`.
"""

import numbers

import keras
from keras import ops

from specformer_keras.backend import backend_module
from specformer_keras.training.inner_maximization import (
    TRADES_RANDOM_START_STDDEV,
    InnerMaximization,
)
from specformer_keras.training.input_checks import check_first_batch
from specformer_keras.training.objectives import TradesKLDivergence, sparse_labels
from specformer_keras.utils.validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    layer_arguments,
    reject_unknown_kwargs,
)

METHODS = ("pgd_at", "trades")
__all__ = ["METHODS", "TRADES_RANDOM_START_STDDEV", "AdversarialTrainer"]

try:
    _BackendSteps = backend_module("trainer").AdversarialSteps
except NotImplementedError as _error:  # e.g. KERAS_BACKEND=numpy: fail on use
    _UNSUPPORTED = str(_error)

    class _BackendSteps:
        def __init__(self, *args, **kwargs):
            raise NotImplementedError(_UNSUPPORTED)


@keras.saving.register_keras_serializable(package="specformer_keras")
class AdversarialTrainer(_BackendSteps, InnerMaximization, keras.Model):
    """Adversarial training (PGD-AT or TRADES) of a classifier with `fit`.

    A `keras.Model` wrapping `model`: `call`, `evaluate` and `predict`
    delegate to it (clean inputs, inference mode), only the train step is
    adversarial. Train the wrapper, then save and serve `trainer.model` on
    its own: the trainer holds no weights of its own.

    PGD-AT (Madry et al., 2018, https://arxiv.org/abs/1706.06083) minimizes
    `loss(y, f(x_adv)) + model.losses`, where `x_adv` maximizes the
    cross-entropy inside the L-inf ball. TRADES (Zhang et al., 2019,
    https://arxiv.org/abs/1901.08573) minimizes
    `loss(y, f(x)) + beta * KL(softmax(f(x)) || softmax(f(x_adv))) + model.losses`,
    where `x_adv` maximizes the KL term. `loss` is the loss given to
    `compile` (default: sparse categorical cross-entropy from logits).
    `model.losses` holds the MSVP penalty of a `SpectralViT`; it is added
    exactly once per step, and u/v take exactly one power-iteration step per
    training step (the attack runs with `training=False`).

    Logged during `fit`: `loss`, `adversarial_accuracy` (accuracy on `x_adv`
    in the training forward pass), `msvp_loss` (sum of `model.losses`, i.e.
    the MSVP penalty), `clean_accuracy` if `track_clean_accuracy`, and the
    metrics given to `compile`, computed on the adversarial logits.
    `evaluate` reports the usual clean metrics.

    Args:
        model: The classifier, a `keras.Model` mapping images in [0, 1] to
            logits.
        method: `"pgd_at"` or `"trades"`. Defaults to `"pgd_at"`.
        eps: L-inf radius in pixel units. Defaults to `8/255`.
        step_size: Size of each signed-gradient step. Defaults to `2/255`.
        steps: Attack steps per training step (0: no attack beyond the random
            start). Defaults to `10`.
        beta: TRADES weight of the KL term (ignored by PGD-AT). Defaults to
            `6.0`.
        random_start: Start the attack from a random point (PGD-AT: uniform
            in the ball; TRADES: `0.001 * normal`, as in the paper). Without
            it the TRADES attack cannot move (the KL gradient is zero at
            `x_adv = x`). Defaults to `True`.
        track_clean_accuracy: Also log `clean_accuracy` (for PGD-AT this
            costs one extra inference forward pass). Defaults to `False`.
        seed: Optional integer seed of the random start.
        **kwargs: `keras.Model` arguments such as `name`.

    Example:

    ```python
    import keras
    import numpy as np
    from specformer_keras import AdversarialTrainer, SpectralViT

    model = SpectralViT(image_size=8, patch_size=4, num_classes=3, hidden_dim=16,
                        depth=1, num_heads=2, mlp_dim=16, penalty=1e-3, seed=0)
    trainer = AdversarialTrainer(model, method="trades", eps=8 / 255,
                                 step_size=2 / 255, steps=2, beta=6.0, seed=0)
    trainer.compile(optimizer="adam", metrics=["accuracy"])
    x = np.random.rand(16, 8, 8, 3).astype("float32")
    y = np.random.randint(0, 3, size=(16,))
    history = trainer.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert {"loss", "adversarial_accuracy", "msvp_loss"} <= set(history.history)
    logits = trainer.model.predict(x, verbose=0)   # the classifier, on its own
    ```
    """

    def __init__(
        self,
        model,
        method="pgd_at",
        eps=8 / 255,
        step_size=2 / 255,
        steps=10,
        beta=6.0,
        random_start=True,
        track_clean_accuracy=False,
        seed=None,
        **kwargs,
    ):
        if not isinstance(model, keras.Model):
            raise TypeError(
                "`model` must be a `keras.Model` mapping images in [0, 1] to "
                f"logits. Received: model={model!r}"
            )
        reject_unknown_kwargs("AdversarialTrainer", kwargs, allowed=layer_arguments())
        check_choice("method", method, METHODS)
        eps = check_number("eps", eps, minimum=0.0)
        step_size = check_number("step_size", step_size, minimum=0.0)
        beta = check_number("beta", beta, minimum=0.0)
        steps = check_int("steps", steps, minimum=0)
        random_start = check_bool("random_start", random_start)
        track_clean_accuracy = check_bool("track_clean_accuracy", track_clean_accuracy)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
        ):
            raise TypeError(
                f"`seed` must be None or an integer. Received: seed={seed!r}"
            )
        super().__init__(**kwargs)
        self.classifier = model
        self.method = method
        self.eps = eps
        self.step_size = step_size
        self.steps = int(steps)
        self.beta = beta
        self.random_start = random_start
        self.track_clean_accuracy = track_clean_accuracy
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.trades_kl = TradesKLDivergence()
        self.adversarial_accuracy_tracker = keras.metrics.Mean(
            name="adversarial_accuracy"
        )
        self.msvp_loss_tracker = keras.metrics.Mean(name="msvp_loss")
        self._training_only_metrics = ["adversarial_accuracy", "msvp_loss"]
        if track_clean_accuracy:
            self.clean_accuracy_tracker = keras.metrics.Mean(name="clean_accuracy")
            self._training_only_metrics.append("clean_accuracy")
        if model.built:
            self.built = True

    @property
    def model(self):
        """The wrapped classifier (save and serve this one)."""
        return self.classifier

    def call(self, inputs, training=None):
        return self.classifier(inputs, training=training)

    def compile(self, optimizer="rmsprop", loss=None, **kwargs):
        """`keras.Model.compile`; `loss` defaults to sparse CE from logits."""
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        """Recompiles a trainer loaded from `.keras` (Keras skips custom `compile`s)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:  # optimizer variables, so the saved state can load into them
            self.optimizer.build(self.trainable_variables)

    # === Input checks on the first batch (backend-agnostic, before fit) ===

    def fit(self, x=None, y=None, batch_size=None, *args, **kwargs):
        """`keras.Model.fit` after checking the first batch.

        Before training starts, the first batch of ``x`` (peeked at without
        consuming it) must hold pixels in [0, 1] (tolerance
        `specformer_keras.training.input_checks.PIXEL_TOLERANCE`) and labels
        in ``[0, classes - 1]``; the classifier must return finite logits, not
        probabilities, with a non-zero input gradient (see
        `specformer_keras.evaluation.preflight`). NumPy arrays are range-checked
        whole.

        Raises:
            ValueError, TypeError: for bad pixels or labels.
            specformer_keras.evaluation.PreflightError: for the model faults.
        """
        x = self._check_inputs(x, y, batch_size)
        return super().fit(x, y, batch_size, *args, **kwargs)

    def train_on_batch(self, x, y=None, *args, **kwargs):
        """`keras.Model.train_on_batch`; the first call checks its batch as `fit` does."""
        if not getattr(self, "_first_batch_checked", False):
            self._check_inputs(x, y, None)
        return super().train_on_batch(x, y, *args, **kwargs)

    def _check_inputs(self, x, y, batch_size):
        x = check_first_batch(
            self.classifier,
            x,
            y,
            batch_size,
            needs_gradient=self.steps > 0,
            context=f"{type(self).__name__}.fit",
        )
        self._first_batch_checked = True
        return x

    # === Training forward pass and loss ===

    def training_inputs(self, x, x_adv):
        """Inputs of the single training-mode forward pass."""
        if self.method == "pgd_at":
            return x_adv
        return ops.concatenate([x, ops.cast(x_adv, x.dtype)], axis=0)

    def split_training_logits(self, y_pred):
        """`(clean_logits or None, adversarial_logits)` of the training forward."""
        if self.method == "pgd_at":
            return None, y_pred
        batch = ops.shape(y_pred)[0] // 2
        return y_pred[:batch], y_pred[batch:]

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if not training:
            return super().compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
            )
        clean_logits, adversarial_logits = self.split_training_logits(y_pred)
        # Compiled loss + all `add_loss` terms (MSVP), each counted once.
        if self.method == "pgd_at":
            loss = super().compute_loss(
                x=x, y=y, y_pred=adversarial_logits, sample_weight=sample_weight
            )
        else:
            loss = super().compute_loss(
                x=x, y=y, y_pred=clean_logits, sample_weight=sample_weight
            )
            if self.beta:
                robust = self.trades_kl(
                    clean_logits, adversarial_logits, sample_weight=sample_weight
                )
                loss = loss + ops.cast(self.beta * robust, loss.dtype)
        self.msvp_loss_tracker.update_state(self.additional_losses())
        return loss

    def additional_losses(self):
        """Sum of the classifier's `add_loss` terms from the last training call."""
        losses = [ops.sum(ops.cast(loss, "float32")) for loss in self.losses]
        if not losses:
            return ops.zeros((), "float32")
        return ops.sum(ops.stack(losses))

    def update_training_metrics(self, x, y, y_pred, sample_weight=None, clean=None):
        """Updates the adversarial (and clean) accuracy and compiled metrics.

        Args:
            x: Clean inputs.
            y: Targets.
            y_pred: Logits of the training forward pass.
            sample_weight: Optional per-example weights.
            clean: Clean logits for `clean_accuracy` (PGD-AT computes them
                with an extra inference pass; TRADES uses the training pass).

        Returns:
            The logs dict.
        """
        clean_logits, adversarial_logits = self.split_training_logits(y_pred)
        labels = sparse_labels(y)
        self.adversarial_accuracy_tracker.update_state(
            _correct(labels, adversarial_logits), sample_weight=sample_weight
        )
        if self.track_clean_accuracy:
            clean_logits = clean if clean_logits is None else clean_logits
            self.clean_accuracy_tracker.update_state(
                _correct(labels, clean_logits), sample_weight=sample_weight
            )
        return self.compute_metrics(x, y, adversarial_logits, sample_weight)

    def filter_test_logs(self, logs):
        """Drops the training-only metrics from evaluation logs."""
        return {k: v for k, v in logs.items() if k not in self._training_only_metrics}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "model": keras.saving.serialize_keras_object(self.classifier),
                "method": self.method,
                "eps": self.eps,
                "step_size": self.step_size,
                "steps": self.steps,
                "beta": self.beta,
                "random_start": self.random_start,
                "track_clean_accuracy": self.track_clean_accuracy,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        return cls(**config)


def _correct(labels, logits):
    predicted = ops.cast(ops.argmax(logits, axis=-1), "int32")
    return ops.cast(ops.equal(predicted, labels), "float32")
