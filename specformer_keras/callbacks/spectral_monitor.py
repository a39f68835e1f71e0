"""`SpectralNormMonitor`: every attention layer's sigma per epoch.

Also `flatten_spectral_norms` (the flat `sigma/<layer>/<projection>` logs)
and `load_sigma_history` (its JSON or CSV record read back).
"""

import csv
import json
import os
import warnings

import keras
import numpy as np

from specformer_keras.callbacks.event_writer import EventWriter, require_writer
from specformer_keras.utils.io import atomic_write_json, atomic_write_text
from specformer_keras.utils.validation import check_bool, check_choice

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
    check_choice("reduction", reduction, REDUCTIONS)
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
    * writes per-head values as TensorBoard scalars to `<log_dir>/sigma` when
      given (`EventWriter`: tensorboardX or tensorboard, no TensorFlow, on
      every backend);
    * saves the whole per-head record to `json_path` and a flat table to
      `csv_path` after every epoch (for `specformer_keras.plots`).

    NaN or inf weights (a diverged run) never crash it: their sigma is NaN
    everywhere it is recorded, `diverged` becomes True, and a `RuntimeWarning`
    says that training diverged; with `stop_on_nan=True` it also stops
    training (`model.stop_training = True`) at the end of that epoch.

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
        stop_on_nan: Stop training when a sigma is not finite.

    Attributes:
        history: List of `{"epoch": int, "norms": {layer: {projection:
            [per-head floats]}}}`; epoch -1 is the state before training.
        diverged: Whether a recorded sigma was NaN or inf.

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
        stop_on_nan=False,
    ):
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        exact = check_bool("exact", exact)
        self.stop_on_nan = check_bool("stop_on_nan", stop_on_nan)
        if log_dir:
            require_writer("SpectralNormMonitor")
        self.diverged = False
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
        with warnings.catch_warnings():
            # One warning below names the epoch and layers instead.
            warnings.simplefilter("ignore", RuntimeWarning)
            norms = _spectral_norms(self._target(), self.exact)
        bad = sorted(
            f"{layer}/{projection}"
            for layer, values in norms.items()
            for projection, heads in values.items()
            if not np.isfinite(np.asarray(heads, dtype="float64")).all()
        )
        if bad:
            self.diverged = True
            when = "before training" if epoch < 0 else f"after epoch {epoch + 1}"
            warnings.warn(
                f"SpectralNormMonitor: sigma is NaN or inf {when} in {bad}: the "
                "weights are not finite, training diverged. Stop and restart from "
                "the last good checkpoint (e.g. with a lower learning rate).",
                RuntimeWarning,
                stacklevel=2,
            )
            if self.stop_on_nan and self.model is not None:
                self.model.stop_training = True
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
            self._writer.close()
            self._writer = None

    def _write_tensorboard(self, entry):
        if not self.log_dir:
            return
        if self._writer is None:
            self._writer = EventWriter(os.path.join(self.log_dir, "sigma"))
        step = entry["epoch"] + 1  # 0 = before training
        reduce = np.max if self.reduction == "max" else np.mean
        for layer, values in entry["norms"].items():
            for projection, heads in values.items():
                for head, sigma in enumerate(heads):
                    self._writer.scalar(
                        f"sigma/{layer}/{projection}/head_{head}", sigma, step
                    )
                self._writer.scalar(
                    f"sigma_{self.reduction}/{layer}/{projection}",
                    float(reduce(np.asarray(heads, dtype="float64"))),
                    step,
                )
        self._writer.flush()

    def _save(self):
        if self.json_path:
            atomic_write_json(
                self.json_path, {"exact": self.exact, "history": self.history}, indent=1
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
            atomic_write_text(self.csv_path, "\n".join(rows) + "\n")


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
