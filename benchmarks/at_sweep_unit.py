"""One PGD-AT sweep unit's computation: its data, trainer and stages.

`benchmarks/adversarial_sweep.py` runs the units (resume, locks, record); this
module is what a unit computes, from its ``config`` (the sweep's ``DEFAULTS``
plus ``penalty`` and ``seed``):

    from at_sweep_unit import build_data, stage_train, stage_eval

    data = build_data(config, archive)
    model = stage_train(config, state, data, directory)   # None while paused
    report = stage_eval(config, data, model)

Every stage returns JSON-ready dicts; nothing here reads or writes the record.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_common  # noqa: E402


# === Data (the same for every unit; class-balanced everywhere) ===
def build_data(config, archive):
    x_train, y_train, x_test, y_test, _ = sweep_common.load_cifar_arrays(archive)
    s = config["data_seed"]
    train_idx = sweep_common.interleaved_balanced(y_train, config["train_size"], s)
    held_idx = sweep_common.interleaved_balanced(
        y_train, config["heldout_size"], s + 1, exclude=train_idx
    )
    test_idx = sweep_common.interleaved_balanced(y_test, config["test_size"], s + 2)
    # AutoAttack and Lipschitz sets: balanced prefixes of the (interleaved) test set.
    return {
        "train": (x_train[train_idx], y_train[train_idx]),
        "heldout": (x_train[held_idx] / 255.0, y_train[held_idx]),
        "test": (x_test[test_idx] / 255.0, y_test[test_idx]),
    }


def _float32(xy):
    return xy[0].astype("float32"), xy[1]


# === Model, trainer and optimizer ===
def build_trainer(config):
    import keras

    from specformer_keras import AdversarialTrainer, SpectralViT

    keras.utils.set_random_seed(config["seed"])
    model = SpectralViT.from_preset(
        config["preset"], penalty=config["penalty"], seed=config["seed"]
    )
    steps_per_epoch = -(-config["train_size"] // config["batch_size"])
    total = config["epochs"] * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0,
        total,
        warmup_target=config["learning_rate"],
        warmup_steps=max(int(config["warmup_fraction"] * total), 1),
    )
    eps = config["train_eps"] / 255
    trainer = AdversarialTrainer(
        model,
        method="pgd_at",
        eps=eps,
        # Madry et al.'s rule of thumb for few steps: 2.5 * eps / steps.
        step_size=2.5 * eps / config["attack_steps"],
        steps=config["attack_steps"],
        seed=config["seed"],
    )
    trainer.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=config["weight_decay"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    trainer.optimizer.build(trainer.trainable_variables)
    return model, trainer


def sigma_summary(model):
    norms = model.spectral_norms(exact=True)
    per_layer = {
        layer: {p: [float(v) for v in vals] for p, vals in d.items()}
        for layer, d in norms.items()
    }
    flat = [max(v) for d in per_layer.values() for v in d.values()]
    return per_layer, sum(flat) / len(flat)


# === Stages ===
def seed_generators(trainer):
    """Every SeedGenerator of the trainer and its layers, in a fixed order."""
    found = []
    for layer in [trainer] + list(trainer._flatten_layers(include_self=False)):
        for generator in getattr(layer, "_seed_generators", []):
            if all(generator is not g for g in found):
                found.append(generator)
    return found


def stage_train(config, state, data, directory, max_epochs=None):
    import numpy as np
    from keras import ops as keras_ops

    from specformer_keras.evaluation import evaluate_robustness
    from specformer_keras.utils.io import atomic_path, atomic_write_json

    model, trainer = build_trainer(config)
    checkpoint = os.path.join(directory, "checkpoint.weights.h5")
    generators = seed_generators(trainer)
    done = state.setdefault("epochs_done", 0)
    if done:
        trainer.load_weights(checkpoint)
        # Weight files hold no SeedGenerator state (the attack's random start).
        for generator, value in zip(generators, state["seed_states"]):
            generator.state.assign(np.asarray(value, dtype=generator.state.dtype))
        print(f"  resumed after epoch {done}", flush=True)
    x, y = data["train"]
    held = _float32(data["heldout"])
    stop = (
        config["epochs"]
        if max_epochs is None
        else min(done + max_epochs, config["epochs"])
    )
    for epoch in range(done, stop):
        rng = np.random.default_rng([config["seed"], epoch])
        order = rng.permutation(len(x))
        x_epoch = sweep_common.augment(x[order], rng).astype("float32") / 255.0
        start = time.time()
        history = trainer.fit(
            x_epoch, y[order], batch_size=config["batch_size"], epochs=epoch + 1,
            initial_epoch=epoch, shuffle=False, verbose=0,
        )  # fmt: skip
        train_seconds = time.time() - start
        report = evaluate_robustness(
            model, held, attacks=("clean", config["monitor_attack"]),
            eps=config["eval_eps"] / 255, batch_size=250, seed=10_000 + epoch,
            verbose=False,
        )  # fmt: skip
        _, mean_sigma = sigma_summary(model)
        row = {k: float(v[-1]) for k, v in history.history.items()}
        row.update(
            epoch=epoch + 1,
            train_seconds=train_seconds,
            heldout_clean=report["accuracy"]["clean"],
            heldout_robust=report["accuracy"][config["monitor_attack"]],
            mean_sigma_max=mean_sigma,
        )
        with atomic_path(checkpoint) as tmp:
            trainer.save_weights(tmp)
        state["epochs_done"] = epoch + 1
        state["seed_states"] = [
            np.asarray(keras_ops.convert_to_numpy(g.state.value)).tolist()
            for g in generators
        ]
        state.setdefault("epochs", []).append(row)
        atomic_write_json(os.path.join(directory, "state.json"), state)
        print(
            f"  epoch {epoch + 1}/{config['epochs']}: {train_seconds:.0f}s "
            f"loss {row['loss']:.3f} adv-acc {row['adversarial_accuracy']:.3f} "
            f"held-out clean {row['heldout_clean']:.3f} "
            f"{config['monitor_attack']} {row['heldout_robust']:.3f} "
            f"sigma {mean_sigma:.3f}",
            flush=True,
        )
    if state["epochs_done"] < config["epochs"]:
        return None
    model.save(os.path.join(directory, "model.keras"))
    return model


def load_model(directory):
    import keras

    return keras.saving.load_model(os.path.join(directory, "model.keras"))


def stage_lipschitz(config, data, model):
    from specformer_keras.diagnostics import lipschitz_report

    x, _ = _float32(data["test"])
    report = lipschitz_report(
        model, x[: config["lipschitz_size"]],
        iterations=config["lipschitz_iterations"], seed=config["seed"],
        batch_size=50,
    )  # fmt: skip
    per_layer, mean_sigma = sigma_summary(model)
    report["sigma_exact"] = per_layer
    report["mean_sigma_max"] = mean_sigma
    return report


def stage_blocks(config, data, model):
    from specformer_keras.diagnostics import block_lipschitz_report

    x, _ = _float32(data["test"])
    return block_lipschitz_report(
        model, x[: config["lipschitz_size"]],
        iterations=config["lipschitz_iterations"], seed=config["seed"],
        batch_size=50,
    )  # fmt: skip


def stage_eval(config, data, model):
    from specformer_keras.evaluation import evaluate_robustness

    return evaluate_robustness(
        model, _float32(data["test"]), attacks=("clean", "pgd20", "cw20"),
        eps=config["eval_eps"] / 255, batch_size=250, seed=config["seed"],
        verbose=False,
    )  # fmt: skip


def stage_autoattack_chunk(config, data, model, chunk):
    from specformer_keras.evaluation import evaluate_robustness

    x, y = _float32(data["test"])
    size = config["autoattack_chunk"]
    sl = slice(chunk * size, (chunk + 1) * size)
    return evaluate_robustness(
        model, (x[sl], y[sl]), attacks=("clean", "autoattack"),
        eps=config["eval_eps"] / 255, batch_size=size, seed=config["seed"],
        verbose=False,
    )  # fmt: skip
