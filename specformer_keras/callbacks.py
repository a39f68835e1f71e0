"""`SpectralNormMonitor`: every attention layer's sigma over training, per epoch."""

import csv
import json
import os

import keras
import numpy as np

REDUCTIONS = ("max", "mean")


def _spectral_norms(model, exact):
    """`{layer: {projection: per-head array}}` for `model` or a model wrapping one."""
    if hasattr(model, "spectral_norms"):
        return model.spectral_norms(exact=exact)
    inner = getattr(model, "model", None)  # e.g. AdversarialTrainer.model
    if inner is not None and hasattr(inner, "spectral_norms"):
        return inner.spectral_norms(exact=exact)
    from specformer_keras.models.spectral_vit import collect_spectral_norms

    return collect_spectral_norms(model, exact=exact)


def flatten_spectral_norms(norms, reduction="max"):
    """Flat `{"sigma/<layer>/<projection>": float}` from `spectral_norms()` output.

    Args:
        norms: `{layer_name: {"query": array(num_heads), ...}}`.
        reduction: `"max"` or `"mean"` over heads.

    Returns:
        A dict of Python floats, keys sorted by layer then projection.

    Example:

    ```python
    import numpy as np
    from specformer_keras.callbacks import flatten_spectral_norms

    flat = flatten_spectral_norms({"block_0": {"query": np.array([1.0, 3.0])}})
    assert flat == {"sigma/block_0/query": 3.0}
    ```
    """
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"`reduction` must be one of {REDUCTIONS}. Received: reduction={reduction!r}"
        )
    reduce = np.max if reduction == "max" else np.mean
    flat = {}
    for layer in sorted(norms):
        for projection in sorted(norms[layer]):
            values = np.asarray(norms[layer][projection], dtype="float64")
            flat[f"sigma/{layer}/{projection}"] = float(reduce(values))
    return flat


class SpectralNormMonitor(keras.callbacks.Callback):
    """Records every MSVP attention layer's largest singular values each epoch.

    At the end of each epoch (and once before training) it reads
    `model.spectral_norms(exact=...)` (for a wrapper such as
    `AdversarialTrainer`, the wrapped classifier's) and:

    * adds `sigma/<layer>/<projection>` (max or mean over heads) to the epoch
      `logs`, so the values appear in `History`, `CSVLogger` and
      `keras.callbacks.TensorBoard` (put this callback before them);
    * writes per-head values as TensorBoard scalars to `log_dir` when given
      (`tf.summary`; TensorFlow is installed with every backend here);
    * saves the whole per-head record to `json_path` and a flat table to
      `csv_path` after every epoch (for `specformer_keras.plots`).

    Args:
        exact: True (default) for exact SVD values of query, key and value of
            every layer (also for penalty 0); False for the cheaper
            power-iteration estimates of the penalized projections only.
        reduction: `"max"` (default) or `"mean"` over heads for the logged value.
        log_dir: TensorBoard folder for per-head scalars, or None.
        json_path: Where to save the full record as JSON, or None.
        csv_path: Where to save a flat `epoch,layer,projection,head,sigma`
            table, or None.
        model: The model to read (default: the model being trained).

    Attributes:
        history: List of `{"epoch": int, "norms": {layer: {projection:
            [per-head floats]}}}`; epoch -1 is the state before training.

    Example:

    ```python
    import numpy as np
    from specformer_keras import SpectralViT
    from specformer_keras.callbacks import SpectralNormMonitor

    model = SpectralViT(image_size=8, patch_size=4, num_classes=2, hidden_dim=8,
                        depth=1, num_heads=2, mlp_dim=8, penalty=1e-3)
    model.compile("adam", "sparse_categorical_crossentropy")
    monitor = SpectralNormMonitor()
    history = model.fit(np.random.rand(4, 8, 8, 3), np.array([0, 1, 0, 1]),
                        epochs=2, verbose=0, callbacks=[monitor])
    assert len(history.history["sigma/" + next(iter(monitor.history[0]["norms"]))
                               + "/query"]) == 2
    ```
    """

    def __init__(
        self,
        exact=True,
        reduction="max",
        log_dir=None,
        json_path=None,
        csv_path=None,
        model=None,
    ):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"`reduction` must be one of {REDUCTIONS}. "
                f"Received: reduction={reduction!r}"
            )
        if not isinstance(exact, bool):
            raise TypeError(f"`exact` must be True or False. Received: exact={exact!r}")
        self.exact = exact
        self.reduction = reduction
        self.log_dir = log_dir
        self.json_path = json_path
        self.csv_path = csv_path
        self._monitored_model = model
        self.history = []
        self._writer = None

    def _target(self):
        return (
            self._monitored_model if self._monitored_model is not None else self.model
        )

    def _record(self, epoch):
        norms = _spectral_norms(self._target(), self.exact)
        entry = {
            "epoch": int(epoch),
            "norms": {
                layer: {p: [float(s) for s in np.ravel(v)] for p, v in values.items()}
                for layer, values in norms.items()
            },
        }
        # A resumed run re-records epochs it repeats: keep the latest value.
        self.history = [e for e in self.history if e["epoch"] != entry["epoch"]]
        self.history.append(entry)
        self.history.sort(key=lambda e: e["epoch"])
        self._write_tensorboard(entry)
        self._save()
        return norms

    def on_train_begin(self, logs=None):
        if self.json_path and os.path.exists(self.json_path) and not self.history:
            # Continue the record of an interrupted run (BackupAndRestore).
            with open(self.json_path) as f:
                self.history = json.load(f).get("history", [])
        if not any(e["epoch"] == -1 for e in self.history):
            self._record(-1)

    def on_epoch_end(self, epoch, logs=None):
        norms = self._record(epoch)
        if logs is not None:
            logs.update(flatten_spectral_norms(norms, self.reduction))

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()

    def _write_tensorboard(self, entry):
        if not self.log_dir:
            return
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, "sigma")
            )
        step = entry["epoch"] + 1  # 0 = before training
        with self._writer.as_default():
            for layer, values in entry["norms"].items():
                for projection, heads in values.items():
                    for head, sigma in enumerate(heads):
                        tf.summary.scalar(
                            f"sigma/{layer}/{projection}/head_{head}", sigma, step=step
                        )
                    reduce = max if self.reduction == "max" else np.mean
                    tf.summary.scalar(
                        f"sigma_{self.reduction}/{layer}/{projection}",
                        float(reduce(heads)),
                        step=step,
                    )
        self._writer.flush()

    def _save(self):
        if self.json_path:
            _atomic_write(
                self.json_path,
                json.dumps({"exact": self.exact, "history": self.history}, indent=1),
            )
        if self.csv_path:
            rows = ["epoch,layer,projection,head,sigma"]
            for entry in self.history:
                for layer, values in entry["norms"].items():
                    for projection, heads in values.items():
                        for head, sigma in enumerate(heads):
                            rows.append(
                                f"{entry['epoch']},{layer},{projection},{head},{sigma!r}"
                            )
            _atomic_write(self.csv_path, "\n".join(rows) + "\n")


def load_sigma_history(path):
    """Reads a `SpectralNormMonitor` JSON or CSV file back into its `history` list.

    Args:
        path: A `.json` or `.csv` file written by `SpectralNormMonitor`.

    Returns:
        `[{"epoch": int, "norms": {layer: {projection: [floats]}}}, ...]`.
    """
    path = str(path)
    if path.endswith(".json"):
        with open(path) as f:
            return json.load(f)["history"]
    by_epoch = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            norms = by_epoch.setdefault(int(row["epoch"]), {})
            heads = norms.setdefault(row["layer"], {}).setdefault(row["projection"], [])
            heads.append(float(row["sigma"]))
    return [{"epoch": e, "norms": by_epoch[e]} for e in sorted(by_epoch)]


def _atomic_write(path, text):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
