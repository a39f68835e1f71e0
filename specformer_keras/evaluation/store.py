"""Resumable evaluation: per-batch results on disk, and the settings they belong to.

`evaluate_robustness(..., output_dir=...)` keeps its results in ``output_dir``:

    output_dir/
      manifest.json                    {"format": 1, "settings": {...}}
      batches/<NN>-<attack>/<start>-<stop>.json
      report.json                      the final report (written by process 0)

``settings`` holds everything a per-point verdict depends on: the attacks and
their settings, ``eps``, ``norm``, ``seed``, ``batch_size``, the more-steps
check, the Keras backend, the package version, a fingerprint of the model
(SHA-256 of every weight) and of the data (SHA-256 of ``x`` and ``y`` for
arrays; per batch for iterables). A rerun whose settings differ is refused,
naming what differs; a rerun with the same settings reads the finished
batches back and computes only the others.

One file per (attack, batch): ``NN`` is the attack's position in ``attacks``
and ``<start>-<stop>`` the batch's global range of points (zero-padded to 9
digits), so files do not depend on which process wrote them and a rerun on
another number of processes reuses them. A file holds
``{"format", "attack", "start", "stop", "data_sha256", "unavailable",
"robust", "within_budget", "seconds", "log"}`` (``robust`` and
``within_budget`` as strings of ``0``/``1``, one per point); the more-steps
reruns are stored the same way under ``batches/more_steps-<attack>/``. Files
are written through a temporary file, fsync and rename
(`specformer_keras.utils.io`), so a killed run (even ``kill -9``) leaves either
a whole file or none (plus, at most, a hidden temporary file
``.<name>~<host>~<pid>.<random>.tmp`` that is never read); a file that does
not parse, or whose fields do not fit its batch, raises
`specformer_keras.utils.io.CorruptFileError` naming it. When an existing
folder is resumed, `specformer_keras.evaluation.stale.remove_stale_temporaries` deletes the temporary files
whose writer is certainly gone (this host, process id not running) and lists
the others in a warning; it never deletes a running writer's file.

Example:

```python
import os, tempfile
import numpy as np
from specformer_keras.evaluation.store import ResultStore

folder = tempfile.mkdtemp()
store = ResultStore(folder, {"eps": 0.1}, resume=True)
entry = {"robust": np.array([True, False]), "within_budget": np.array([True, True]),
         "seconds": 0.5, "log": None, "unavailable": None}
store.save(0, "pgd5", 0, 2, "abc", entry)
assert store.load(0, "pgd5", 0, 2, "abc")["robust"].tolist() == [True, False]
```
"""

import hashlib
import json
import os
import re

import keras
import numpy as np

from specformer_keras.evaluation.stale import remove_stale_temporaries
from specformer_keras.utils.io import CorruptFileError, atomic_write_json, read_json

FORMAT = 1
__all__ = [
    "FORMAT",
    "ResultStore",
    "check_output_dir",
    "data_fingerprint",
    "data_settings",
    "model_fingerprint",
    "run_settings",
]


def check_output_dir(output_dir, seed):
    """Refuses an ``output_dir`` that is not a path, or one given with ``seed=None``.

    Raises:
        TypeError: ``output_dir`` is neither None, a str nor an os.PathLike.
        ValueError: ``seed`` is None with an ``output_dir`` (a resumed run
            must draw the same random starts again).
    """
    if output_dir is None:
        return
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(
            "Argument `output_dir` must be a folder path (str or os.PathLike) "
            f"or None. Received: output_dir={output_dir!r}"
        )
    if seed is None:
        raise ValueError(
            "Argument `seed` must be an integer when `output_dir` is given: a "
            "resumed evaluation must draw the same random starts again. "
            "Received: seed=None"
        )


def run_settings(model, source, norm, seed, batch_size):
    """The manifest entries every evaluation shares: threat model, run, model, data.

    ``{"norm", "seed", "batch_size", "backend", "specformer_keras", "model",
    "data"}``: the Keras backend, the package version, `model_fingerprint` and
    `data_settings` of the `DataSource` ``source``.
    """
    import specformer_keras

    return {
        "norm": norm,
        "seed": seed,
        "batch_size": batch_size,
        "backend": keras.config.backend(),
        "specformer_keras": specformer_keras.__version__,
        "model": model_fingerprint(model),
        "data": data_settings(source),
    }


def data_settings(source):
    """The manifest's ``data`` entry of a `DataSource`: ``{"n", "sha256"}`` of arrays.

    An iterable's batches are fingerprinted one by one instead (``n`` and
    ``sha256`` None).
    """
    if source.arrays is None:
        return {"n": None, "sha256": None, "note": "iterable: checked per batch"}
    return {
        "n": int(source.arrays[0].shape[0]),
        "sha256": data_fingerprint(*source.arrays),
    }


def _structural_name(path):
    """A variable path without Keras' automatic numbering: ``dense_3/kernel`` ->
    ``dense/kernel``, so that a model built again (new layer names) matches."""
    return "/".join(re.sub(r"_\d+$", "", part) for part in str(path).split("/"))


def model_fingerprint(model):
    """``{"class", "parameters", "sha256"}`` of a model's weights (names, shapes, values).

    The names enter without Keras' automatic numbering (``dense_3`` counts as
    ``dense``; the weights' order still tells the layers apart), so the same
    model built twice in one process, e.g. in a notebook, has one fingerprint.

    Example:

    ```python
    import keras
    from specformer_keras.evaluation.store import model_fingerprint

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert model_fingerprint(model)["parameters"] == 8
    again = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])  # dense_1
    again.set_weights(model.get_weights())
    assert model_fingerprint(again) == model_fingerprint(model)
    ```
    """
    digest = hashlib.sha256()
    parameters = 0
    for variable in getattr(model, "weights", []):
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable))
        name = _structural_name(
            getattr(variable, "path", None) or getattr(variable, "name", "")
        )
        digest.update(f"{name}|{value.shape}|{value.dtype}|".encode())
        digest.update(value.tobytes())
        parameters += int(value.size)
    return {
        "class": type(model).__name__,
        "parameters": parameters,
        "sha256": digest.hexdigest(),
    }


def data_fingerprint(*arrays):
    """SHA-256 (hex) of arrays' shapes, dtypes and bytes.

    Example:

    ```python
    import numpy as np
    from specformer_keras.evaluation.store import data_fingerprint

    assert data_fingerprint(np.zeros(2)) != data_fingerprint(np.zeros(3))
    ```
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}|{array.dtype}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _normalized(value):
    """``value`` as JSON would read it back (tuples become lists, ...)."""
    return json.loads(json.dumps(value, default=_plain))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return repr(value)


def _differences(stored, current, prefix=""):
    """Lines ``key: <stored> in the folder, <current> now`` for differing keys."""
    lines = []
    for key in sorted(set(stored) | set(current), key=str):
        old, new = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            lines += _differences(old, new, f"{prefix}{key}.")
        elif old != new:
            lines.append(f"{prefix}{key}: {old!r} in the folder, {new!r} now")
    return lines


def _bits(values):
    return "".join("1" if v else "0" for v in np.asarray(values, bool))


class ResultStore:
    """The results of one evaluation in a folder: manifest and per-batch files.

    Args:
        output_dir: the folder (created if missing).
        settings: JSON-serializable dict of everything the results depend on.
        resume: with True, a folder holding a manifest of the same settings is
            continued (its batch files are read back); with False a folder
            that already holds an evaluation is refused.
        write_manifest: write the manifest if it is missing (True on every
            process: the content is the same, and each write is atomic).

    Raises:
        ValueError: the folder holds an evaluation of other settings (the
            message lists what differs), or any evaluation with
            ``resume=False``.
        CorruptFileError: an unreadable manifest.
    """

    def __init__(self, output_dir, settings, resume=True, write_manifest=True):
        self.output_dir = os.fspath(output_dir)
        self.settings = _normalized(settings)
        self.manifest_path = os.path.join(self.output_dir, "manifest.json")
        hint = (
            "It was not written by evaluate_robustness or was damaged; delete "
            f"{self.output_dir} (or choose another output_dir) to start over."
        )
        if os.path.exists(self.manifest_path):
            if not resume:
                raise ValueError(
                    f"Argument `output_dir` already holds an evaluation "
                    f"({self.manifest_path}); pass resume=True to continue it or "
                    f"choose an empty folder. Received: output_dir={self.output_dir!r}, "
                    "resume=False"
                )
            manifest = read_json(self.manifest_path, hint=hint)
            if (
                not isinstance(manifest, dict)
                or manifest.get("format") != FORMAT
                or not isinstance(manifest.get("settings"), dict)
            ):
                raise CorruptFileError(
                    f"{self.manifest_path} is not a manifest of format {FORMAT}. {hint}"
                )
            differences = _differences(manifest["settings"], self.settings)
            if not differences:
                remove_stale_temporaries(self.output_dir)
            if differences:
                raise ValueError(
                    f"Argument `output_dir` holds an evaluation with other settings "
                    f"({self.manifest_path}); resuming it would mix results. "
                    "Differences: " + "; ".join(differences) + ". Use another "
                    "output_dir, or delete this one to start over. "
                    f"Received: output_dir={self.output_dir!r}"
                )
        elif write_manifest:
            atomic_write_json(
                self.manifest_path, {"format": FORMAT, "settings": self.settings}
            )

    def path(self, index, name, start, stop):
        """The file of attack number ``index`` called ``name`` on points ``[start, stop)``."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(name))
        folder = f"{index:02d}-{safe}" if isinstance(index, int) else f"{index}-{safe}"
        return os.path.join(
            self.output_dir, "batches", folder, f"{start:09d}-{stop:09d}.json"
        )

    def save(self, index, name, start, stop, data_sha256, entry):
        """Writes one (attack, batch) result atomically.

        ``entry``: ``{"robust", "within_budget"}`` boolean arrays (or None when
        ``"unavailable"`` holds the reason), ``"seconds"``, ``"log"``.
        """
        record = {
            "format": FORMAT,
            "attack": name,
            "start": int(start),
            "stop": int(stop),
            "data_sha256": data_sha256,
            "unavailable": entry.get("unavailable"),
            "robust": None if entry.get("robust") is None else _bits(entry["robust"]),
            "within_budget": (
                None
                if entry.get("within_budget") is None
                else _bits(entry["within_budget"])
            ),
            "seconds": float(entry.get("seconds", 0.0)),
            "log": entry.get("log"),
        }
        atomic_write_json(self.path(index, name, start, stop), record, indent=None)

    def load(self, index, name, start, stop, data_sha256, length=None):
        """The stored result of one (attack, batch), or None if not written yet.

        Args:
            length: points the entry covers (default ``stop - start``).

        Raises:
            CorruptFileError: the file does not parse or does not fit the batch.
            ValueError: the file was written for other data.
        """
        path = self.path(index, name, start, stop)
        if not os.path.exists(path):
            return None
        hint = f"Delete it to recompute that batch (output_dir={self.output_dir!r})."
        record = read_json(path, hint=hint)
        length = stop - start if length is None else length

        def corrupt(what):
            return CorruptFileError(
                f"{path} is not a valid batch result ({what}). {hint}"
            )

        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise corrupt(f"not a result of format {FORMAT}")
        if record.get("attack") != name or (
            record.get("start"),
            record.get("stop"),
        ) != (
            start,
            stop,
        ):
            raise corrupt(
                f"it names attack={record.get('attack')!r}, points "
                f"[{record.get('start')}, {record.get('stop')}), expected "
                f"attack={name!r}, points [{start}, {stop})"
            )
        if record.get("data_sha256") != data_sha256:
            raise ValueError(
                f"{path} was written for other data than points [{start}, {stop}) "
                "of this evaluation (their SHA-256 differs): the data changed or "
                "is not in the same order. Use another output_dir, or delete this "
                f"one to start over. Received: output_dir={self.output_dir!r}"
            )
        entry = {
            "unavailable": record.get("unavailable"),
            "seconds": record.get("seconds"),
            "log": record.get("log"),
            "robust": None,
            "within_budget": None,
        }
        if not isinstance(entry["seconds"], (int, float)):
            raise corrupt("seconds is not a number")
        if entry["unavailable"] is not None:
            if not isinstance(entry["unavailable"], str):
                raise corrupt("unavailable is not a string")
            return entry
        for key in ("robust", "within_budget"):
            bits = record.get(key)
            if (
                not isinstance(bits, str)
                or len(bits) != length
                or set(bits) - {"0", "1"}
            ):
                raise corrupt(f"{key} is not {length} characters 0/1")
            entry[key] = np.frombuffer(bits.encode(), "uint8") == ord("1")
        if entry["log"] is not None and not isinstance(entry["log"], dict):
            raise corrupt("log is not a dict")
        return entry

    def write_report(self, report):
        """Writes the final report to ``output_dir/report.json`` (atomically)."""
        atomic_write_json(os.path.join(self.output_dir, "report.json"), report)
