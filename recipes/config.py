"""Every recipe setting, written once: default, help text and checks.

`Config` is a frozen dataclass; each field's metadata holds the help text of
its absl flag (`flags.py` generates the flags from it) and the rules its value
must follow. A recipe is `get_config(variant)` returning a `Config`
(its paper-scale defaults, and the quick and smoke variants of `variants.py`).

`validate(config, recipe)` checks every value and the combinations that need
no model or data, and returns the config with paths made absolute. It imports
`specformer_keras` (so Keras): call it after the backend is chosen. Example:

```python
import dataclasses
from recipes.config import Config, RecipeError, validate

config = dataclasses.replace(Config(), dataset="cifar10", eps=-1.0)
try:
    validate(config, "cifar10_adv")
except RecipeError as error:
    assert str(error).startswith("--eps must be")
```
"""

import dataclasses
import math
import os
import typing

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# = specformer_keras.data.TFDS_DATASETS (a test keeps them equal).
TFDS_NAMES = ("cifar10", "cifar100", "imagenette", "imagenet2012")


class RecipeError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def setting(default, help, **rules):
    """A `Config` field: its default, its flag's help text and its rules.

    Args:
        default: Paper-scale default (tuples for lists).
        help: The flag's help text.
        **rules: `choices`, `minimum`, `maximum`, `above` (exclusive minimum),
            `lengths` (allowed tuple lengths), `pixels` (shown as k/255),
            `repeatable` (a multi-string flag), `resumable` (may change when a
            run is resumed).
    """
    return dataclasses.field(default=default, metadata={"help": help, **rules})


NONNEGATIVE = {"minimum": 0}
POSITIVE = {"minimum": 1}


@dataclasses.dataclass(frozen=True)
class Config:
    """The settings of a recipe run (paper-scale defaults of the official code).

    40 epochs, SGD lr 0.1, momentum 0.9, weight decay 1e-4, PGD-10 at eps 8/255
    with step 2/255, TRADES beta 6, gradient clipping 1.0, penalty 1e-5 on q,
    k and v.
    """

    # -- data and model
    backend: str | None = setting(
        None,
        "Keras backend: tensorflow, jax or torch (default: $KERAS_BACKEND, else "
        "the first installed of tensorflow, jax, torch).",
        choices=("tensorflow", "jax", "torch"),
    )
    dataset: str = setting(
        "cifar10",
        "TFDS name (cifar10, cifar100, imagenette, imagenet2012), or a folder / "
        ".tar.gz / .zip of class sub-folders with train/ and test/ splits.",
    )
    cache_dir: str | None = setting(
        None, "Where archives are extracted.", resumable=True
    )
    subset: int | None = setting(None, "Training examples (default: all).", **POSITIVE)
    val_subset: int | None = setting(
        None, "Test examples for per-epoch validation.", **POSITIVE
    )
    eval_subset: int | None = setting(
        None, "Test examples for the robustness evaluation.", **POSITIVE
    )
    image_size: int | None = setting(None, "Resize images to this side.", **POSITIVE)
    augment: bool = setting(True, "Random crop (padding 4) and flip.")
    rand_augment: bool = setting(False, "Add RandAugment.")
    mixup: bool = setting(False, "MixUp per batch (soft labels, categorical loss).")
    cutmix: bool = setting(
        False, "CutMix per batch (with --mixup: one of the two per batch)."
    )
    preset: str = setting("vit_base_patch4_32", "SpectralViT preset name.")
    model_override: tuple[str, ...] = setting(
        (),
        "SpectralViT argument override KEY=VALUE, repeatable (e.g. depth=2).",
        repeatable=True,
    )
    penalty: tuple[float, ...] = setting(
        (1e-5,),
        "MSVP lambda: one value for q, k and v, or three (lambda_q,lambda_k,lambda_v).",
        lengths=(1, 3),
        **NONNEGATIVE,
    )
    # -- training
    method: str = setting(
        "pgd_at", "Training method.", choices=("pgd_at", "trades", "standard")
    )
    eps: float = setting(
        8 / 255, "Training attack L-inf radius (e.g. 8/255).", pixels=True, minimum=0
    )
    step_size: float = setting(
        2 / 255, "Training attack step size.", pixels=True, minimum=0
    )
    steps: int = setting(10, "Training attack steps.", **NONNEGATIVE)
    beta: float = setting(6.0, "TRADES trade-off beta.", **NONNEGATIVE)
    epochs: int = setting(40, "Training epochs.", **POSITIVE)
    batch_size: int = setting(128, "Global batch size.", **POSITIVE)
    optimizer: str = setting(
        "sgd", "sgd (with momentum) or adamw.", choices=("sgd", "adamw")
    )
    learning_rate: float = setting(0.1, "Peak learning rate.", above=0)
    momentum: float = setting(0.9, "SGD momentum.", **NONNEGATIVE)
    weight_decay: float = setting(1e-4, "Decoupled weight decay.", **NONNEGATIVE)
    warmup_epochs: float = setting(2.0, "Linear warmup epochs.", **NONNEGATIVE)
    schedule: str = setting(
        "cosine",
        "Learning-rate schedule after warmup.",
        choices=("cosine", "constant"),
    )
    grad_clip: float = setting(
        1.0, "Global gradient-norm clipping (0: none).", **NONNEGATIVE
    )
    precision: str = setting(
        "float32",
        "Dtype policy.",
        choices=("float32", "mixed_float16", "mixed_bfloat16"),
    )
    seed: int = setting(0, "Random seed (weights, data order, attacks).", minimum=0)
    deterministic: bool = setting(
        True,
        "Deterministic kernels where the backend offers them (TensorFlow op "
        "determinism, tf.data included; torch deterministic algorithms; XLA's "
        "deterministic GPU ops on JAX): the same seed gives the same run. "
        "--nodeterministic trades that for speed.",
        resumable=True,
    )
    # -- evaluation and output
    eval_attacks: tuple[str, ...] = setting(
        ("clean", "fgsm", "pgd20", "cw20", "autoattack"),
        "Attacks for results.json (names of specformer_keras.evaluation."
        "evaluate_robustness: clean, fgsm, pgdN, cwN, autoattack, square).",
        lengths=range(1, 100),
    )
    eval_eps: float = setting(
        8 / 255, "Evaluation L-inf radius.", pixels=True, minimum=0
    )
    curve_attack: str = setting("pgd20", "Attack of the accuracy-vs-eps curve.")
    # 64/255 >= 0.25: the sweep must reach ~0% there (Carlini et al. checklist).
    curve_eps: tuple[float, ...] = setting(
        (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 64 / 255),
        "Radii for the accuracy-vs-eps plot.",
        pixels=True,
        lengths=range(1, 100),
        **NONNEGATIVE,
    )
    eval_batch_size: int = setting(256, "Evaluation batch.", **POSITIVE)
    output_dir: str | None = setting(
        None,
        "Run folder (default: runs/<recipe>). An unfinished run there is resumed.",
        resumable=True,
    )
    overwrite: bool = setting(
        False,
        "Delete what --output_dir holds (finished or not) and start afresh.",
        resumable=True,
    )
    verbose: str = setting(
        "auto",
        "fit verbosity: auto, 0, 1 or 2.",
        choices=("auto", "0", "1", "2"),
        resumable=True,
    )
    jit_compile: str = setting(
        "auto",
        "XLA-compile the train/test steps: auto (XLA on one device, TF on CPU "
        "included; Keras's choice under tf.distribute), true or false.",
        choices=("auto", "true", "false"),
        resumable=True,
    )

    @property
    def model_overrides(self):
        """`--model_override` items as `{key: value}` (numbers, bools, None parsed)."""
        return dict(parse_override(item) for item in self.model_override)

    @property
    def model_penalty(self):
        """The `penalty` argument of SpectralViT: one float or `[q, k, v]`."""
        return self.penalty[0] if len(self.penalty) == 1 else list(self.penalty)

    @property
    def soft_labels(self):
        """MixUp or CutMix: training labels are one-hot mixtures."""
        return self.mixup or self.cutmix


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
TYPES = typing.get_type_hints(Config)
RESUMABLE = tuple(name for name, f in FIELDS.items() if f.metadata.get("resumable"))


def parse_override(item):
    """`"depth=2"` -> `("depth", 2)`; values: int, float, true/false, none, or text."""
    if "=" not in item:
        raise RecipeError(
            f"--model_override must be KEY=VALUE. Received: model_override={item!r}"
        )
    key, text = (part.strip() for part in item.split("=", 1))
    for cast in (int, float):
        try:
            return key, cast(text)
        except ValueError:
            pass
    literals = {"true": True, "false": False, "none": None}
    return key, literals.get(text.lower(), text)


def check_value(name, value):
    """Checks one setting against its field's rules; returns it normalized."""
    rules = FIELDS[name].metadata
    if isinstance(value, tuple):
        lengths = rules.get("lengths")
        if lengths is not None and len(value) not in lengths:
            allowed = " or ".join(map(str, lengths)) if len(lengths) < 5 else ">= 1"
            raise RecipeError(
                f"--{name} takes {allowed} value(s). Received: {name}="
                + ",".join(map(str, value))
            )
        return tuple(_check_scalar(name, v, rules) for v in value)
    return _check_scalar(name, value, rules)


def _check_scalar(name, value, rules):
    # Imported here: `import specformer_keras` imports Keras, which must wait
    # until the backend is chosen.
    from specformer_keras.utils import validation

    if value is None:
        return None
    try:
        if "choices" in rules:
            return validation.check_choice(name, value, rules["choices"])
        if isinstance(value, bool):
            return validation.check_bool(name, value)
        if isinstance(value, int) and "minimum" in rules:
            return validation.check_int(name, value, minimum=rules["minimum"])
        if isinstance(value, float):
            if "above" in rules:
                return validation.check_number(
                    name, value, minimum=rules["above"], include_minimum=False
                )
            return validation.check_number(
                name, value, rules.get("minimum"), rules.get("maximum")
            )
    except (TypeError, ValueError) as error:
        raise RecipeError(flag_message(name, error)) from None
    return value


def flag_message(name, error):
    """A library message about argument `name`, said of the flag `--name`."""
    return str(error).replace(f"Argument `{name}`", f"--{name}", 1)


def validate(config, recipe):
    """Checks every value and the combinations that need no Keras.

    Args:
        config: A `Config`.
        recipe: The recipe's name (the default output folder is runs/<recipe>).

    Returns:
        The `Config` with values normalized (sorted radii, stripped attack
        names) and `dataset`, `output_dir` made absolute.

    Raises:
        RecipeError: naming the flag, the value and what to do.
    """
    values = {name: check_value(name, getattr(config, name)) for name in FIELDS}
    for item in values["model_override"]:
        parse_override(item)
    values["eval_attacks"] = tuple(
        a.strip() for a in values["eval_attacks"] if a.strip()
    )
    if not values["eval_attacks"]:
        raise RecipeError(
            "--eval_attacks must name at least one attack. Received: eval_attacks="
        )
    values["curve_eps"] = tuple(sorted(values["curve_eps"]))
    if values["warmup_epochs"] > values["epochs"]:
        raise RecipeError(
            "--warmup_epochs must be <= --epochs. Received: "
            f"warmup_epochs={values['warmup_epochs']:g}, epochs={values['epochs']}"
        )
    values["dataset"] = resolve_dataset(values["dataset"])
    values["output_dir"] = check_output_dir(
        values["output_dir"] or os.path.join("runs", recipe)
    )
    return Config(**values)


def resolve_dataset(dataset):
    """A TFDS name as is; a path made absolute, tried from the cwd then the repo root."""
    if dataset in TFDS_NAMES:
        return dataset
    path = os.path.expanduser(dataset)
    candidates = (
        [path] if os.path.isabs(path) else [path, os.path.join(REPO_ROOT, path)]
    )
    for candidate in candidates:
        if os.path.exists(candidate):
            return os.path.abspath(candidate)
    raise RecipeError(
        f"--dataset must be a TFDS name {sorted(TFDS_NAMES)} or an existing folder "
        f"or archive; {dataset!r} was not found (relative paths are tried from the "
        f"current folder and from {REPO_ROOT}). Received: dataset={dataset!r}"
    )


def check_output_dir(path):
    """The absolute run folder, refused if it is a file or cannot be written."""
    out = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(out) and not os.path.isdir(out):
        raise RecipeError(
            f"--output_dir must be a folder; {out} is a file. Choose another "
            f"--output_dir. Received: output_dir={path!r}"
        )
    existing = out
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise RecipeError(
            f"--output_dir {out} cannot be written ({existing} is not a writable "
            f"folder). Choose another --output_dir. Received: output_dir={path!r}"
        )
    return out


def render(name, value):
    """A setting as its flag text: 8/255 for pixel radii, 1e-5, True, a,b."""
    if isinstance(value, tuple):
        return [render(name, v) for v in value]
    if isinstance(value, float):
        if FIELDS[name].metadata.get("pixels") and value:
            steps = value * 255
            if math.isclose(steps, round(steps * 2) / 2, abs_tol=1e-9):
                return f"{round(steps * 2) / 2:g}/255"
        return f"{value:g}".replace("e-0", "e-").replace("e+0", "e+")
    return value
