"""The output folder of a run: its files, an exclusive lock, and its state.

States, from the files present (each written atomically):

* empty (or only the lock file): a fresh run.
* `run_config.json`: a started run. With epochs finished (`backup/`), the
  same command resumes it; different settings are refused. Without any
  finished epoch (a failed start) new settings start afresh.
* `trained.json`: training finished, `final_model.keras` saved; a rerun only
  evaluates.
* `results.json`: done; refused unless `--overwrite`.

Example:

```python
import tempfile
from recipes import run_dir

out = tempfile.mkdtemp()
with run_dir.locked(out):
    assert run_dir.prepare(out, {"epochs": 2}, overwrite=False) == "fresh"
    assert run_dir.prepare(out, {"epochs": 2}, overwrite=False) == "resume"
```
"""

import contextlib
import fcntl
import os
import shutil
import sys

from recipes.config import RESUMABLE, RecipeError

RESULTS = "results.json"
RUN_CONFIG = "run_config.json"
TRAINED = "trained.json"
BACKUP = "backup"
LOCK = ".lock"
METADATA = os.path.join(BACKUP, "training_metadata.json")
WEIGHTS = os.path.join(BACKUP, "latest.weights.h5")
# May change when resuming (everything else must match).
RESUMABLE_KEYS = ("config", *RESUMABLE)


def run_paths(out):
    """`{role: path}` of every file a run writes in `out`."""
    names = {
        "backup": BACKUP,
        "csv": "training_log.csv",
        "tensorboard": "tensorboard",
        "sigma_json": "sigma.json",
        "sigma_csv": "sigma.csv",
        "best": "best_model.keras",
        "final": "final_model.keras",
        "trained": TRAINED,
        "results": RESULTS,
        "curves_png": "training_curves.png",
        "sigma_png": "sigma.png",
        "eps_png": "accuracy_vs_eps.png",
    }
    return {role: os.path.join(out, name) for role, name in names.items()}


def overwrite_hint(out):
    return (
        f"Rerun with --overwrite to start afresh (this deletes the run in {out}), "
        "or choose another --output_dir."
    )


def read_run_json(out, name):
    """A JSON file of the run; a corrupt one raises RecipeError naming it."""
    from specformer_keras.utils.io import CorruptFileError, read_json

    try:
        return read_json(os.path.join(out, name), hint=overwrite_hint(out))
    except CorruptFileError as error:
        raise RecipeError(str(error)) from None


@contextlib.contextmanager
def locked(out):
    """Holds an exclusive lock on `out` (created if needed) for the `with` block.

    The lock is an `flock` on `out/.lock`, released by the kernel when the
    process ends: a lock left by a killed run is taken over.

    Raises:
        RecipeError: another live process holds the lock (its PID is named).
    """
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        owner = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RecipeError(
            f"{out} is in use by another run (PID {owner}); wait for it to finish "
            "or stop it, or choose another --output_dir."
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def clear(out):
    """Deletes what `out` holds, except the lock file."""
    for name in os.listdir(out):
        if name == LOCK:
            continue
        path = os.path.join(out, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def has_progress(out):
    """Whether a finished epoch (or finished training) would be lost by a restart."""
    return any(os.path.exists(os.path.join(out, n)) for n in (TRAINED, METADATA))


def prepare(out, settings, overwrite):
    """Creates, resumes or refuses the run in `out` (call it holding the lock).

    Args:
        out: The run folder.
        settings: JSON-serializable settings of this run.
        overwrite: `--overwrite`: delete what `out` holds first.

    Returns:
        "fresh", "resume" (train from the last finished epoch) or "evaluate"
        (training finished: evaluate and report only).

    Raises:
        RecipeError: a finished run, a folder that is not a run, different
            settings on a run with progress, or a corrupt run file.
    """
    from specformer_keras.utils.io import atomic_write_json

    os.makedirs(out, exist_ok=True)
    if overwrite:
        clear(out)
    if set(os.listdir(out)) - {LOCK}:
        mode = _existing_run(out, settings)
        if mode is not None:
            return mode
        clear(out)
    atomic_write_json(
        os.path.join(out, RUN_CONFIG), {"settings": settings, "argv": sys.argv}
    )
    return "fresh"


def _existing_run(out, settings):
    """The mode for a folder that holds files, or None to start it afresh."""
    if os.path.exists(os.path.join(out, RESULTS)):
        raise RecipeError(
            f"{out} holds a finished run ({RESULTS} exists); pass --overwrite to "
            "replace it or choose another --output_dir."
        )
    if not os.path.exists(os.path.join(out, RUN_CONFIG)):
        raise RecipeError(
            f"{out} is not empty and holds no {RUN_CONFIG} of a recipe run; choose "
            "another --output_dir or pass --overwrite to delete its contents."
        )
    previous = read_run_json(out, RUN_CONFIG)
    if not isinstance(previous, dict) or not isinstance(previous.get("settings"), dict):
        raise RecipeError(
            f"{out}/{RUN_CONFIG} holds no settings. {overwrite_hint(out)}"
        )
    previous = previous["settings"]
    changed = sorted(
        key
        for key in set(previous) | set(settings)
        if key not in RESUMABLE_KEYS and previous.get(key) != settings.get(key)
    )
    for name in (TRAINED, METADATA, "sigma.json"):
        if os.path.exists(os.path.join(out, name)):
            read_run_json(out, name)  # corrupt: named, with --overwrite suggested
    if not changed:
        return "evaluate" if os.path.exists(os.path.join(out, TRAINED)) else "resume"
    if has_progress(out):
        raise RecipeError(
            f"{out} holds an unfinished run with different settings "
            f"({', '.join(changed)}); rerun with the same flags to resume, or pass "
            "--overwrite to start afresh."
        )
    return None  # a start that finished no epoch: the new settings replace it
