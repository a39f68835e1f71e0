"""Atomic file writes: a reader never sees half a file, a kill never leaves one.

`atomic_write_bytes`, `atomic_write_text` and `atomic_write_json` write data;
`atomic_path` lends a temporary path to any writer that takes a file name
(`model.save`, `save_weights`, `np.savez`) and renames it into place.
`temporary_writer` names the host and process of a temporary file that a
killed writer left behind.

Example:

```python
import os, tempfile
from specformer_keras.utils.io import atomic_write_json, read_json

path = os.path.join(tempfile.mkdtemp(), "report.json")
atomic_write_json(path, {"clean": 0.5})
assert read_json(path) == {"clean": 0.5}
```
"""

import contextlib
import json
import os
import re
import socket
import tempfile
import uuid

import numpy as np


class CorruptFileError(ValueError):
    """A file the package wrote earlier cannot be read back."""


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_TEMPORARY = re.compile(
    r"^\.(?P<name>.+)~(?P<host>[A-Za-z0-9.-]*)~(?P<pid>[0-9]+)\.[A-Za-z0-9_]+\.tmp$"
)


def temporary_prefix(path):
    """``.<name>~<host>~<pid>.``: how `atomic_write_bytes` names its temporary file.

    The writer's host name and process id make a temporary file left by a
    killed writer identifiable (see `temporary_writer`).

    Args:
        path: The file being written.

    Returns:
        The prefix of the hidden temporary file beside ``path``.
    """
    return f".{os.path.basename(path)}~{writer_host()}~{os.getpid()}."


def writer_host():
    """This machine's host name as `temporary_prefix` writes it (``[A-Za-z0-9.-]``).

    Returns:
        The host name, other characters replaced by ``-``.
    """
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())


def temporary_writer(name):
    """``(target name, host, pid)`` of a temporary file of `atomic_write_bytes`, or None.

    Args:
        name: A file name (no folder).

    Returns:
        The name of the file being written, the writer's host name and process
        id; None if ``name`` is not such a temporary file.

    Example:

    ```python
    from specformer_keras.utils.io import temporary_prefix, temporary_writer

    name = temporary_prefix("/folder/report.json") + "k3j2x9.tmp"
    assert temporary_writer(name)[0] == "report.json"
    ```
    """
    match = _TEMPORARY.match(name)
    if match is None:
        return None
    return match["name"], match["host"], int(match["pid"])


def atomic_write_bytes(path, data):
    """Writes ``data`` to ``path`` through a temporary file in the same folder.

    The folder is created if needed; the temporary file is fsynced, renamed onto
    ``path`` and removed if anything fails.

    Args:
        path: The file to write.
        data: The bytes to write.

    Raises:
        OSError: If the folder or the file cannot be written.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix=temporary_prefix(path), suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path``, renamed onto ``path`` if the block succeeds.

    For writers that take a file name instead of bytes. The temporary name is
    ``.tmp-<pid>-<random>.<name of path>`` in the same folder, so it ends as
    ``path`` does (Keras checks for ``.keras`` and ``.weights.h5``, NumPy
    appends ``.npz`` otherwise). If the block raises, the temporary file is
    removed and ``path`` is left as it was.

    Args:
        path: The file to write.

    Yields:
        The temporary path to write to.

    Raises:
        OSError: If the folder cannot be created or the rename fails.

    Example:

    ```python
    import os, tempfile
    import numpy as np
    from specformer_keras.utils.io import atomic_path

    path = os.path.join(tempfile.mkdtemp(), "arrays.npz")
    with atomic_path(path) as tmp:
        np.savez(tmp, x=np.zeros(3))
    assert os.listdir(os.path.dirname(path)) == ["arrays.npz"]
    ```
    """
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}.{name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path, text):
    """Writes the string ``text`` to ``path`` atomically (UTF-8).

    Args:
        path: The file to write.
        text: The string to write.
    """
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, data, indent=2):
    """Writes ``data`` as JSON (NumPy scalars and arrays allowed) atomically.

    Args:
        path: The file to write.
        data: A JSON-serializable object; NumPy scalars and arrays become
            numbers and lists.
        indent: JSON indentation. Defaults to 2.

    Raises:
        TypeError: If ``data`` holds an object JSON cannot represent.
    """
    atomic_write_text(
        path, json.dumps(data, indent=indent, default=_json_default) + "\n"
    )


def read_json(path, hint=None):
    """Reads a JSON file; a corrupt one raises `CorruptFileError` naming it.

    Args:
        path: The file.
        hint: Optional advice appended to the message (e.g. "rerun with --overwrite").

    Returns:
        The decoded JSON value.

    Raises:
        CorruptFileError: If the file is not valid JSON (the message names it).
        FileNotFoundError: If the file does not exist.
    """
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        message = f"{path} is not valid JSON ({error})."
        if hint:
            message += f" {hint}"
        raise CorruptFileError(message) from None
