"""`AdversarialTrainer` on two devices gives the single-device loss curve.

TF: `tf.distribute.MirroredStrategy` over 2 logical CPU devices (no XLA there:
Keras turns it off under tf.distribute). JAX: `keras.distribution.DataParallel`
over 2 host devices (`XLA_FLAGS=--xla_force_host_platform_device_count=2`).
Device setup must happen before the framework initializes, so each test runs
this file as a script in a fresh subprocess with its environment set; the
worker prints one JSON line with both runs' results.
"""

import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_DEVICES = 2
METHODS = ("pgd_at", "trades")


_RESULTS = {}


def run_worker(backend):
    """Runs both methods in one fresh process (once per pytest session)."""
    if backend in _RESULTS:
        return _RESULTS[backend]
    env = dict(os.environ)
    env.update(
        KERAS_BACKEND=backend,
        PYTHONPATH=REPO_ROOT + os.pathsep + env.get("PYTHONPATH", ""),
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={NUM_DEVICES}",
    )
    process = subprocess.run(
        [sys.executable, os.path.abspath(__file__), backend, *METHODS],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    _RESULTS[backend] = json.loads(process.stdout.strip().splitlines()[-1])
    return _RESULTS[backend]


def backend_under_test():
    import keras

    return keras.config.backend()


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_two_replicas_match_one(method):
    backend = backend_under_test()
    if backend == "torch":
        pytest.skip(
            "Keras 3.15 has no multi-device path for `fit` on torch: "
            "keras.distribution is implemented for JAX only (its torch "
            "distribution_lib is None) and torch DistributedDataParallel is "
            "only usable from a custom training loop, not from `fit`"
        )
    result = run_worker(backend)[method]
    assert result["replicas"] == [1, NUM_DEVICES]
    single, multi = result["runs"]
    assert len(single["loss"]) == 2
    for key in ("loss", "msvp_loss", "adversarial_accuracy"):
        assert all(v == v for v in multi[key]), (key, multi[key])  # no NaN
    # Same loss curve within float tolerance.
    for a, b in zip(single["loss"], multi["loss"]):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (single["loss"], multi["loss"])
    for a, b in zip(single["msvp_loss"], multi["msvp_loss"]):
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a)), (single, multi)
    assert min(single["msvp_loss"]) > 0
    assert single["adversarial_accuracy"] == multi["adversarial_accuracy"]
    # Same weights and u/v; every replica holds the same u/v. Float32 all-reduce
    # sums in another order than one device: an unseeded draw once gave 2.1e-4
    # after TRADES' four SGD steps at lr 0.1 (typically 1e-7 to 5e-7).
    assert result["max_weight_difference"] < 1e-3, result
    assert result["max_uv_difference"] < 1e-4, result
    assert result["max_uv_replica_spread"] < 1e-6, result
    assert result["uv_copies_per_variable"] == NUM_DEVICES, result


# === Worker (runs in a fresh process) ===


def _trainer_kwargs(method):
    # With a random start: the noise must also match one device.
    return dict(method=method, eps=8 / 255, step_size=2 / 255, steps=2, seed=0)


def _worker(backend, methods):
    import numpy as np

    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * NUM_DEVICES
        )
    import keras

    from specformer_keras.training import AdversarialTrainer

    sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))
    from testing import tiny_images, tiny_vit

    x, y = tiny_images()
    build = tiny_vit  # seeds the weight initializers too: every run is the same

    initial_weights = [np.array(w) for w in build().get_weights()]

    def as_numpy(value):
        return np.array(value.numpy() if hasattr(value, "numpy") else value)

    def uv_copies(model):
        """Per-device copies of every u/v variable, as NumPy arrays."""
        copies = []
        for variable in model.non_trainable_weights:
            if not variable.path.endswith(("_u", "_v")):
                continue
            value = variable.value
            if hasattr(value, "values"):  # tf.distribute per-replica variable
                copies.append([as_numpy(v) for v in value.values])
            elif hasattr(value, "addressable_shards"):  # JAX array
                copies.append([np.array(s.data) for s in value.addressable_shards])
            else:
                copies.append([as_numpy(value)])
        return copies

    def train(scope, method):
        with scope:
            model = build()
            model.set_weights(initial_weights)
            trainer = AdversarialTrainer(model, **_trainer_kwargs(method))
            trainer.compile(optimizer=keras.optimizers.SGD(0.1))
        history = trainer.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}

    import contextlib

    # Every single-device run first: DataParallel is a global setting on JAX.
    single_runs = {m: train(contextlib.nullcontext(), m) for m in methods}
    if backend == "tensorflow":
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        replicas = strategy.num_replicas_in_sync
        multi_runs = {m: train(strategy.scope(), m) for m in methods}
    else:
        import jax

        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices())
        )
        replicas = len(jax.devices())
        multi_runs = {m: train(contextlib.nullcontext(), m) for m in methods}

    results = {}
    for method in methods:
        (single_model, single), (multi_model, multi) = (
            single_runs[method],
            multi_runs[method],
        )
        weight_difference = max(
            float(np.max(np.abs(np.array(a) - np.array(b))))
            for a, b in zip(single_model.get_weights(), multi_model.get_weights())
        )
        single_uv, multi_uv = uv_copies(single_model), uv_copies(multi_model)
        uv_difference = max(
            float(np.max(np.abs(s[0] - m[0]))) for s, m in zip(single_uv, multi_uv)
        )
        spread = max(
            float(np.max(np.abs(c - copies[0]))) for copies in multi_uv for c in copies
        )
        results[method] = {
            "replicas": [1, replicas],
            "runs": [single, multi],
            "max_weight_difference": weight_difference,
            "max_uv_difference": uv_difference,
            "max_uv_replica_spread": spread,
            "uv_copies_per_variable": min(len(c) for c in multi_uv),
        }
    print(json.dumps(results))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2:])
