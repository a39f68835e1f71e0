"""The main of every recipe, in stages as big_vision's train.py reads.

settings (flags -> validated `Config`, before any data or model) -> output
folder (lock; fresh, resume, evaluate or refuse) -> input -> model and update
step -> checkpoints and fit -> evaluation -> report. A recipe file is only
`get_config(variant)` and `start(NAME, get_config)`.

Reproducibility: `keras.utils.set_random_seed(--seed)` runs before the data
and the model are made, and every random part gets the seed (weights, data
order, augmentation, attack starts). What stays non-deterministic is listed
in docs/recipes.md ("Same seed, same run").
"""

import dataclasses
import json
import os
import shutil
import sys
import time

from absl import app
from absl import flags as absl_flags

from recipes import backends, flags, run_dir
from recipes.config import TFDS_NAMES, RecipeError, validate


def log(message):
    print(message, flush=True)


# === Settings: every check before any data is loaded or model built =======


def settings_from_flags(recipe, get_config):
    """The validated `Config` and its JSON settings; Keras imported, nothing built."""
    config = flags.config_from_flags(get_config)
    backend = backends.choose_backend(config.backend)
    if config.deterministic:  # before Keras runs any op (JAX reads XLA_FLAGS once)
        backends.make_deterministic(backend)
    config = validate(dataclasses.replace(config, backend=backend), recipe)
    from recipes import modeling, report

    modeling.check_model_settings(config)
    report.check_attack_names(config)
    backends.check_backend_supports(backend, needs_trainer=config.method != "standard")
    settings = {"recipe": recipe, "config": flags.FLAGS.config}
    settings.update(json.loads(json.dumps(dataclasses.asdict(config))))
    return config, settings


# === The run ==============================================================


def run(recipe, config, settings, mode):
    """Everything after the output folder is prepared: returns the results dict."""
    import keras

    from recipes import checkpoints, modeling, report
    from specformer_keras.utils.io import atomic_write_json

    started = time.time()
    out = config.output_dir
    paths = run_dir.run_paths(out)
    backends.keep_tensorflow_unimported(tf_data=config.dataset in TFDS_NAMES)
    keras.utils.set_random_seed(config.seed)
    if config.precision != "float32":
        keras.config.set_dtype_policy(config.precision)
    scope, distribution, replicas = backends.select_distribution(config.backend)
    jit_compile = backends.resolve_jit_compile(
        config.jit_compile, config.backend, replicas
    )
    log(f"{recipe}: {mode} run in {out} on {config.backend}, {distribution}")

    # -- Input
    train, val, evaluation = load_data(config, training=mode != "evaluate")
    if backends.spans_processes():
        slice_for_processes(config, train, val)
    log(
        f"data: {train.num_examples if train else 0} train / "
        f"{val.num_examples if val else 0} val / {evaluation.num_examples} eval "
        f"examples, {evaluation.num_classes} classes, {evaluation.image_size}px"
    )

    if mode == "evaluate":
        backends.leave_multi_process_distribution()
        classifier = checkpoints.load_classifier(paths["final"], out)
        train_seconds = 0.0
        log(f"training finished earlier: evaluating {paths['final']}")
    else:
        # -- Model and update step
        steps_per_epoch = len(train)
        with scope():
            classifier = modeling.build_classifier(
                config, train.num_classes, train.image_size
            )
            trainable = modeling.build_trainable(
                config, classifier, steps_per_epoch, jit_compile
            )
        log(
            f"model: {config.preset} {config.model_overrides}, "
            f"{classifier.count_params():,} parameters"
        )

        # -- Checkpoints and training
        checkpoints.trim_csv_log(paths["csv"], paths["backup"])
        history = trainable.fit(
            train,
            validation_data=val,
            epochs=config.epochs,
            callbacks=make_callbacks(config, classifier, paths, checkpoints),
            verbose=fit_verbosity(config.verbose),
            shuffle=False,  # the input pipeline shuffles every epoch
        )
        losses = history.history.get("loss", [])
        if trainable.stop_training or (
            losses and checkpoints.diverged({"loss": losses[-1]})
        ):
            raise RecipeError(diverged_message(history, paths))
        checkpoints.save_model(classifier, paths["final"])
        train_seconds = time.time() - started
        atomic_write_json(paths["trained"], {"train_seconds": round(train_seconds, 1)})
        shutil.rmtree(paths["backup"], ignore_errors=True)
        if backends.leave_multi_process_distribution():
            # The evaluation is sharded by evaluate_robustness: one local model
            # per process, the weights the processes trained together.
            classifier = checkpoints.load_classifier(paths["final"], out)

    # -- Evaluation
    results = report.evaluate(config, classifier, evaluation, paths)

    # -- Report
    results.update(
        {
            "settings": settings,
            "distribution": distribution,
            "train_seconds_this_session": round(train_seconds, 1),
            "total_seconds_this_session": round(time.time() - started, 1),
            "final_spectral_norms": report.final_spectral_norms(classifier),
            "files": {k: os.path.relpath(v, out) for k, v in paths.items()},
            "notes": report.dataset_note(config.dataset),
        }
    )
    report.make_plots(paths, recipe)
    atomic_write_json(paths["results"], results)  # last: marks a finished run
    log(f"done in {time.time() - started:.0f} s; results in {paths['results']}")
    return results


def diverged_message(history, paths):
    """What to do after training diverged (the backup holds the last good epoch)."""
    epoch = history.epoch[-1] + 1 if history.epoch else 1
    message = f"training diverged: the loss or the weights became NaN in epoch {epoch}"
    metadata = os.path.join(paths["backup"], "training_metadata.json")
    if not os.path.exists(metadata):
        return (
            f"{message}, before any epoch finished. Rerun with a lower "
            "--learning_rate (or more --warmup_epochs)."
        )
    return (
        f"{message}; {paths['backup']} holds the last good epoch. Rerun with a "
        "lower --learning_rate (or more --warmup_epochs) and --overwrite, or the "
        "same flags to resume from that epoch."
    )


def load_data(config, training=True):
    """`(train, val, evaluation)` from `specformer_keras.data.load_dataset`.

    With `training=False` (a trained run being evaluated) train and val are None.
    """
    from specformer_keras.data import DatasetUnavailableError, load_dataset

    def split(name, batch_size, subset, **options):
        return load_dataset(
            config.dataset,
            split=name,
            batch_size=batch_size,
            subset=subset,
            image_size=config.image_size,
            cache_dir=config.cache_dir,
            seed=config.seed,
            **options,
        )

    try:
        evaluation = split("test", config.eval_batch_size, config.eval_subset)
        if not training:
            return None, None, evaluation
        train = split(
            "train",
            config.batch_size,
            config.subset,
            augment=config.augment,
            rand_augment=config.rand_augment,
            mixup=config.mixup,
            cutmix=config.cutmix,
            shuffle=True,
        )
        val = split(
            "test",
            config.eval_batch_size,
            config.val_subset,
            shuffle=False,
            one_hot=config.soft_labels,  # the training labels' form
        )
    except (ValueError, OSError, DatasetUnavailableError) as error:
        raise RecipeError(f"Cannot load --dataset={config.dataset}: {error}") from None
    return train, val, evaluation


def slice_for_processes(config, train, val):
    """Each JAX process feeds its block of every global batch (train and val).

    Keras's multi-process `DataParallel` (``auto_shard_dataset=False``) takes
    each process's NumPy batches as its part of the global batch; the
    evaluation set stays whole (`evaluate_robustness` shards it).
    """
    import keras

    from specformer_keras.data import ImageDataset
    from specformer_keras.distributed import process_layout

    layout = process_layout()
    devices = len(keras.distribution.list_devices())  # of every process
    for name, dataset, flag in (
        ("train", train, "batch_size"),
        ("val", val, "eval_batch_size"),
    ):
        if dataset is None:
            continue
        if not isinstance(dataset, ImageDataset):
            raise RecipeError(
                f"--dataset={config.dataset} is read through tf.data, which the "
                "recipes do not split between JAX processes; use a local folder "
                "or archive (read as NumPy batches) or --backend=tensorflow."
            )
        for size in dataset.batch_sizes():
            if size % devices:
                raise RecipeError(
                    f"The {name} split has batches of {size} examples, which "
                    f"{devices} devices ({layout.process_count} processes) cannot "
                    f"split evenly: choose --{flag} (and the subset sizes) so that "
                    f"every batch is a multiple of {devices}. Received: "
                    f"{flag}={getattr(config, flag)}, {dataset.num_examples} examples"
                )
        dataset.slice_for_process(layout)


def make_callbacks(config, classifier, paths, checkpoints):
    """NaN stop, sigma monitor, CSV log, TensorBoard scalars, best model, backup."""
    import keras

    from specformer_keras.callbacks import ScalarLogger, SpectralNormMonitor

    writer = backends.installed("tensorboardX") or backends.installed("tensorboard")
    if not writer:
        log("neither tensorboardX nor tensorboard is installed: no TensorBoard logs")
    callbacks = [
        keras.callbacks.TerminateOnNaN(),
        SpectralNormMonitor(
            model=classifier,
            log_dir=paths["tensorboard"] if writer else None,
            json_path=paths["sigma_json"],
            csv_path=paths["sigma_csv"],
            stop_on_nan=True,
        ),
        keras.callbacks.CSVLogger(paths["csv"], append=True),
        checkpoints.BestClassifierCheckpoint(
            classifier,
            paths["best"],
            best=checkpoints.best_so_far(paths["csv"], "val_accuracy"),
        ),
        checkpoints.EpochBackup(paths["backup"], config.output_dir),
    ]
    # Keras's TensorBoard callback imports TensorFlow: on the TF backend only.
    if config.backend == "tensorflow" and backends.installed("tensorboard"):
        callbacks.insert(3, keras.callbacks.TensorBoard(paths["tensorboard"]))
    elif writer:
        callbacks.insert(3, ScalarLogger(paths["tensorboard"]))
    return callbacks


def fit_verbosity(verbose):
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return int(verbose)


# === Entry point ==========================================================


def main(recipe, get_config):
    """Validates the flags, takes the output folder's lock, runs; one line on error."""
    try:
        config, settings = settings_from_flags(recipe, get_config)
        if flags.FLAGS.print_settings:
            print(json.dumps(settings, indent=2, sort_keys=True))
            return None
        with run_dir.locked(config.output_dir):
            mode = run_dir.prepare(config.output_dir, settings, config.overwrite)
            return run(recipe, config, settings, mode)
    except Exception as error:
        if not isinstance(error, user_errors()):
            raise
        print(f"{recipe}: error: {error}", file=sys.stderr)
        sys.exit(2)


def user_errors():
    """Errors about the user's flags or files: one line, no traceback."""
    if "specformer_keras" not in sys.modules:  # failed before the backend was chosen
        return (RecipeError,)
    from specformer_keras.data import (
        CorruptArchiveError,
        CorruptImageError,
        DatasetUnavailableError,
    )
    from specformer_keras.utils.io import CorruptFileError

    return (
        RecipeError,
        CorruptArchiveError,
        CorruptImageError,
        CorruptFileError,
        DatasetUnavailableError,
    )


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except absl_flags.Error as error:
        print(f"{os.path.basename(argv[0])}: error: {error}", file=sys.stderr)
        sys.exit(2)


def start(recipe, get_config):
    """Defines the flags and `app.run`s the recipe (under `if __name__ == "__main__"`)."""
    flags.define_flags(get_config)

    def app_main(argv):
        if len(argv) > 1:
            print(f"{recipe}: error: unexpected arguments {argv[1:]}", file=sys.stderr)
            sys.exit(2)
        main(recipe, get_config)

    app.run(app_main, flags_parser=_parse_flags)
