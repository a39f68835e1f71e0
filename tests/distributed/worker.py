"""One process of a multi-process test (started by launch.py); prints one JSON line.

python worker.py allgather      # allgather_objects + layout + shard_indices
"""

import json
import sys


def allgather():
    import numpy as np

    from specformer_keras import distributed

    layout = distributed.initialize()
    i = layout.process_index
    # Objects of different sizes and types per process.
    obj = {"index": i, "array": np.arange(3 + 5 * i, dtype=np.float32) * (i + 1)}
    obj["text"] = "x" * (1000 * i)
    gathered = distributed.allgather_objects(obj)
    shard = distributed.shard_indices(11, layout)
    shards = distributed.allgather_objects(shard)
    return {
        "layout": layout.to_dict(),
        "gathered": [
            {"index": g["index"], "array": g["array"].tolist(), "text": len(g["text"])}
            for g in gathered
        ],
        "shards": [s.tolist() for s in shards],
    }


GLOBAL_BATCH = 8
EXAMPLES = 16


def _build():
    import os

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from testing import TINY_VIT

    from specformer_keras import SpectralViT

    # Not testing.tiny_vit: that reseeds Keras on every call; here the weights
    # come from the first build (`initial`) and the global seed is set once.
    return SpectralViT(**TINY_VIT, penalty=1e-2, seed=0)


def _local_part(array, layout):
    """This process's slice of every global batch, batches in order."""
    import numpy as np

    per_process = GLOBAL_BATCH // layout.process_count
    starts = range(0, len(array), GLOBAL_BATCH)
    first = layout.process_index * per_process
    return np.concatenate([array[s + first : s + first + per_process] for s in starts])


def _uv_copies(model):
    """Every u/v variable's copies held by this process (per local device)."""
    import numpy as np

    copies = {}
    for variable in model.non_trainable_weights:
        if not variable.path.endswith(("_u", "_v")):
            continue
        value = variable.value
        if hasattr(value, "values"):  # tf.distribute per-replica variable
            arrays = [np.array(v.numpy()) for v in value.values]
        elif hasattr(value, "addressable_shards"):  # JAX array
            arrays = [np.array(s.data) for s in value.addressable_shards]
        else:
            arrays = [np.array(keras_to_numpy(value))]
        copies[variable.path] = [a.tolist() for a in arrays]
    return copies


def keras_to_numpy(value):
    import keras

    return keras.ops.convert_to_numpy(value)


def _weights(model):
    """Trainable weights as lists (one local copy; JAX: a local shard)."""
    import numpy as np

    out = []
    for variable in model.trainable_weights:
        value = variable.value
        if hasattr(value, "addressable_shards"):
            value = value.addressable_shards[0].data
        out.append(np.array(keras_to_numpy(value)).ravel().tolist())
    return out


def train(*methods):
    import contextlib

    import keras
    import numpy as np

    from specformer_keras import distributed
    from specformer_keras.backend import backend_module
    from specformer_keras.training import AdversarialTrainer

    layout = distributed.initialize()
    backend = keras.config.backend()
    keras.config.disable_traceback_filtering()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((EXAMPLES, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=EXAMPLES)
    initial = [np.array(keras_to_numpy(w)) for w in _build().get_weights()]
    batch_size = GLOBAL_BATCH
    scope = contextlib.nullcontext
    if backend == "tensorflow" and layout.process_count > 1:
        scope = backend_module("collectives").strategy().scope
    elif backend == "jax" and layout.process_count > 1:
        import jax

        keras.distribution.set_distribution(
            keras.distribution.DataParallel(
                devices=jax.devices(), auto_shard_dataset=False
            )
        )
        x, y = _local_part(x, layout), _local_part(y, layout)
        batch_size = GLOBAL_BATCH // layout.process_count
    elif layout.process_count > 1:
        raise RuntimeError(f"no multi-process fit on {backend}")

    results = {}
    for method in methods:
        with scope():
            model = _build()
            model.set_weights(initial)
            if method == "fit":
                trainer = model
                trainer.compile(
                    optimizer=keras.optimizers.SGD(0.1),
                    loss="sparse_categorical_crossentropy",
                )
            else:
                trainer = AdversarialTrainer(
                    model,
                    method=method,
                    eps=8 / 255,
                    step_size=2 / 255,
                    steps=2,
                    seed=0,
                )
                trainer.compile(optimizer=keras.optimizers.SGD(0.1))
        history = trainer.fit(
            x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0
        )
        results[method] = {
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "weights": _weights(model),
            "uv": _uv_copies(model),
        }
    return {
        "layout": layout.to_dict(),
        "initial_checksum": float(sum(np.abs(w).sum() for w in initial)),
        "local_examples": int(len(x)),
        "results": results,
    }


def evaluate(n="16", attacks="clean,pgd5,autoattack", batch_size="8", output_dir="-"):
    """`evaluate_robustness` on the toy task of tests/evaluation_task.py.

    After `distributed.initialize()` each process evaluates its share of the
    batches and every process returns the gathered report.
    """
    import os

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from evaluation_task import evaluate_task

    return evaluate_task(
        None if output_dir == "-" else output_dir,
        n=int(n),
        batch_size=int(batch_size),
        attacks=attacks.split(","),
        initialize=True,
    )


def recipe(folder):
    """The smoke run of recipes/cifar10_adv.py into ``folder/worker<i>``.

    On the backend of ``KERAS_BACKEND``; ``i`` is the ``TF_CONFIG`` task index
    or ``JAX_PROCESS_ID`` (0 for one process).
    """
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    index = (
        json.loads(os.environ.get("TF_CONFIG", "{}"))
        .get("task", {})
        .get("index", int(os.environ.get("JAX_PROCESS_ID", "0")))
    )
    out = os.path.join(folder, f"worker{index}")
    subprocess.run(
        [
            sys.executable,
            os.path.join(root, "recipes", "cifar10_adv.py"),
            "--config=smoke",
            f"--output_dir={out}",
            f"--backend={backend}",
        ],
        check=True,
        stdout=sys.stderr,
    )
    with open(os.path.join(out, "results.json")) as handle:
        results = json.load(handle)
    return {
        key: results[key]
        for key in ("distribution", "robustness", "final_spectral_norms")
    }


TASKS = {
    "allgather": allgather,
    "train": train,
    "evaluate": evaluate,
    "recipe": recipe,
}

if __name__ == "__main__":
    task, *args = sys.argv[1:]
    print(json.dumps(TASKS[task](*args)))
