"""Checkpoints of a run: epoch backups, the best and final models, the CSV log.

Every model file is written to a temporary name and renamed, so a kill never
leaves half a file; a file that cannot be read back is named with
`--overwrite` suggested. Imports Keras: import it after the backend is chosen.

Example:

```python
import os, tempfile
from recipes.checkpoints import trim_csv_log

folder = tempfile.mkdtemp()
log = os.path.join(folder, "training_log.csv")
with open(log, "w") as f:
    f.write("epoch,loss\\n0,2.0\\n1,1.5\\n")
trim_csv_log(log, os.path.join(folder, "backup"))  # no epoch backed up
assert open(log).read() == "epoch,loss\\n"
```
"""

import json
import math
import os

import keras

from recipes.config import RecipeError
from recipes.run_dir import overwrite_hint
from specformer_keras.utils.io import atomic_path, atomic_write_text


def save_model(model, path):
    """`model.save(path)` through a temporary file in the same folder."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def load_classifier(path, out):
    """The model saved at `path`; one that cannot be read raises RecipeError."""
    try:
        return keras.saving.load_model(path)
    except Exception as error:  # any unreadable file: zip, h5, JSON or config errors
        raise RecipeError(
            f"{path} cannot be loaded ({type(error).__name__}: {error}). "
            f"{overwrite_hint(out)}"
        ) from None


class EpochBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that keeps the previous epoch too and names a bad backup.

    `double_checkpoint` keeps a copy of the previous epoch's files, which Keras
    falls back to when the latest weights cannot be read (a kill while they were
    written). The backup is deleted by the recipe once `trained.json` exists,
    not at the end of `fit`, so a kill in between loses no epoch. An epoch that
    diverged (NaN loss, or training stopped by `TerminateOnNaN` or the sigma
    monitor) is not backed up: the backup stays at the last good epoch.
    """

    def __init__(self, backup_dir, out):
        super().__init__(backup_dir, double_checkpoint=True, delete_checkpoint=False)
        self.out = out

    def on_epoch_end(self, epoch, logs=None):
        if diverged(logs) or self.model.stop_training:
            return  # keep the last good epoch (the recipes stop only on divergence)
        super().on_epoch_end(epoch, logs)

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RecipeError(
                f"The epoch backup in {self.backup_dir} cannot be read "
                f"({type(error).__name__}: {error}). {overwrite_hint(self.out)}"
            ) from None


def diverged(logs):
    """Whether epoch `logs` hold a loss that is NaN or infinite."""
    loss = (logs or {}).get("loss")
    return loss is not None and not math.isfinite(float(loss))


class BestClassifierCheckpoint(keras.callbacks.Callback):
    """Saves `classifier` (not a training wrapper) when `monitor` improves.

    Args:
        classifier: The model to save.
        path: A `.keras` file.
        monitor: The log key to maximize.
        best: The best value of an earlier session (resumed runs).
    """

    def __init__(self, classifier, path, monitor="val_accuracy", best=-float("inf")):
        super().__init__()
        self.classifier = classifier
        self.path = path
        self.monitor = monitor
        self.best = best

    def on_epoch_end(self, epoch, logs=None):
        if diverged(logs) or self.model.stop_training:
            return  # a diverged model is never the best one
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            self.best = float(value)
            save_model(self.classifier, self.path)


def best_so_far(csv_path, monitor):
    """Best `monitor` value logged before a resume (so the best model is not lost)."""
    if not os.path.exists(csv_path):
        return -float("inf")
    from specformer_keras.plots import read_csv_log

    values = [v for v in read_csv_log(csv_path).get(monitor, []) if v == v]
    return max(values) if values else -float("inf")


def trim_csv_log(csv_path, backup_dir):
    """Drops CSV rows of epochs that the resumed run will train again.

    A kill between `CSVLogger` writing an epoch's row and the backup of that
    epoch leaves a row the rerun repeats; with no backup at all, every row is
    repeated. A last row cut short by a kill (no line end) is dropped too.
    """
    if not os.path.exists(csv_path):
        return
    metadata = os.path.join(backup_dir, "training_metadata.json")
    first_epoch_to_run = 0
    if os.path.exists(metadata):
        with open(metadata) as f:
            first_epoch_to_run = int(json.load(f)["epoch"])
    with open(csv_path) as f:
        text = f.read()
    lines = text.splitlines()
    if not lines:
        return
    if not text.endswith("\n") and len(lines) > 1:
        lines.pop()  # a row cut short by a kill
    width = lines[0].count(",")
    kept = lines[:1] + [
        line
        for line in lines[1:]
        if line.count(",") == width and _epoch(line) < first_epoch_to_run
    ]
    atomic_write_text(csv_path, "\n".join(kept) + "\n")


def _epoch(line):
    try:
        return int(float(line.split(",", 1)[0]))
    except ValueError:
        return float("inf")  # not a row a finished epoch wrote
