"""The model and its update step: SpectralViT, loss, optimizer, trainer.

Imports Keras: import this module after `backends.choose_backend`.

Example:

```python
import dataclasses
from recipes.config import Config
from recipes.modeling import build_optimizer

optimizer = build_optimizer(dataclasses.replace(Config(), epochs=2), 10)
assert optimizer.global_clipnorm == 1.0
```
"""

import inspect

import keras

from recipes.config import RecipeError
from specformer_keras import SpectralViT

# SpectralViT arguments the recipe sets itself: an override would be silently
# replaced, so it is refused with the way to set it.
OWNED_ARGUMENTS = {
    "penalty": "use --penalty",
    "seed": "use --seed",
    "image_size": "use --image_size",
    "num_classes": "it is the dataset's number of classes",
    "channels": "the data is RGB (3 channels)",
}


def model_arguments():
    """The keyword arguments of SpectralViT's constructor (from its signature)."""
    parameters = inspect.signature(SpectralViT.__init__).parameters.values()
    return sorted(
        p.name
        for p in parameters
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    )


def check_model_settings(config):
    """Refuses an unknown `--preset` and bad `--model_override` keys (no model built)."""
    if config.preset not in SpectralViT.presets:
        raise RecipeError(
            f"--preset must be one of {list(SpectralViT.presets)}. "
            f"Received: preset={config.preset!r}"
        )
    check_model_overrides(config.model_overrides)


def check_model_overrides(overrides):
    """Refuses overrides that are not SpectralViT arguments or that have a flag.

    Args:
        overrides: `{key: value}` of `--model_override`.

    Raises:
        RecipeError: naming the keys, with the allowed ones or the flag to use.
    """
    for key, value in overrides.items():
        if key in OWNED_ARGUMENTS:
            raise RecipeError(
                f"--model_override cannot set {key}: {OWNED_ARGUMENTS[key]}. "
                f"Received: model_override={key}={value}"
            )
    allowed = [a for a in model_arguments() if a not in OWNED_ARGUMENTS]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise RecipeError(
            f"--model_override names unknown SpectralViT arguments {unknown}. "
            f"Allowed: {allowed}. Received: model_override="
            + ",".join(f"{k}={overrides[k]}" for k in unknown)
        )


def build_classifier(config, num_classes, image_size):
    """The SpectralViT of `--preset`, `--model_override` and `--penalty`, built."""
    arguments = dict(config.model_overrides)
    arguments.update(
        num_classes=num_classes,
        image_size=image_size,
        seed=config.seed,
        penalty=config.model_penalty,
    )
    try:
        model = SpectralViT.from_preset(config.preset, **arguments)
    except (TypeError, ValueError) as error:
        raise RecipeError(
            f"Invalid model settings (--preset, --model_override): {error}"
        ) from None
    model.build((None, image_size, image_size, 3))
    return model


def build_trainable(config, classifier, steps_per_epoch, jit_compile):
    """The model `fit` trains (the classifier, or an AdversarialTrainer), compiled."""
    if config.method == "standard":
        trainable = classifier
    else:
        from specformer_keras.training import AdversarialTrainer

        trainable = AdversarialTrainer(
            classifier,
            method=config.method,
            eps=config.eps,
            step_size=config.step_size,
            steps=config.steps,
            beta=config.beta,
            seed=config.seed,
        )
    if config.soft_labels:  # MixUp/CutMix: one-hot mixtures (and one-hot validation)
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainable.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        loss=loss,
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    return trainable


def build_optimizer(config, steps_per_epoch):
    """SGD (momentum) or AdamW with linear warmup, then cosine or constant."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
    peak = config.learning_rate
    if config.schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else peak,
            decay_steps=total - warmup,
            warmup_target=peak if warmup else None,
            warmup_steps=warmup,
        )
    else:
        schedule = constant_with_warmup(peak, warmup)
    clip = {"global_clipnorm": config.grad_clip} if config.grad_clip > 0 else {}
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            learning_rate=schedule,
            momentum=config.momentum,
            weight_decay=config.weight_decay or None,
            **clip,
        )
    return keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=config.weight_decay, **clip
    )


def constant_with_warmup(peak, warmup):
    """`peak * (step + 1) / warmup` for the first `warmup` steps, then `peak`."""
    if warmup <= 1:
        return peak
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=list(range(warmup - 1)),
        values=[peak * (i + 1) / warmup for i in range(warmup)],
    )
