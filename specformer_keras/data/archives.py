"""Archives of image folders, extracted once into a cache folder.

`extract_archive` extracts a `.tar.gz`/`.tgz`/`.tar`/`.zip` into a temporary
sibling folder renamed into place when complete (marked by the file
`COMPLETE_MARKER`), so an interrupted or concurrent extraction is never
mistaken for a finished one. Nothing here imports TensorFlow.
"""

import hashlib
import os
import shutil
import tarfile
import uuid
import zipfile

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
# The file that marks an extracted folder as complete.
COMPLETE_MARKER = ".specformer_keras_complete"
_PARTIAL = ".partial-"


class CorruptArchiveError(ValueError):
    """An archive is empty, truncated or not an archive; the message names it."""


def default_cache_dir():
    """The folder where archives are extracted: `~/.cache/specformer_keras`.

    Honors `SPECFORMER_KERAS_CACHE` and `XDG_CACHE_HOME` when set.

    Example:

    ```python
    from specformer_keras.data import default_cache_dir

    print(default_cache_dir())
    ```
    """
    if os.environ.get("SPECFORMER_KERAS_CACHE"):
        return os.environ["SPECFORMER_KERAS_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return os.path.join(base, "specformer_keras")


def is_archive(path):
    """Whether `path` names a supported archive (by its suffix)."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive_path, cache_dir=None):
    """Extracts `archive_path` once into the cache and returns the folder.

    Extraction goes to a temporary sibling folder (`<target>.partial-<pid>-...`)
    that is renamed into place only when complete, so an interrupted
    extraction is never mistaken for a finished one, and concurrent callers
    agree on one result. Leftovers of a killed extraction (their process is
    gone) are removed by the next call. Calling it again returns the existing
    folder without reading the archive.

    Args:
        archive_path: Path to a `.tar.gz`, `.tgz`, `.tar` or `.zip` file.
        cache_dir: Folder to extract into (default: `default_cache_dir()`).

    Returns:
        The path of the extracted folder.

    Raises:
        ValueError: `archive_path` is not an existing archive file.
        CorruptArchiveError: The archive is empty, truncated or corrupt (the
            message names the file); nothing is left in the cache.

    Example:

    ```python
    import os, tarfile, tempfile
    import numpy as np
    import keras
    from specformer_keras.data import extract_archive

    root = tempfile.mkdtemp()
    os.makedirs(os.path.join(root, "images", "cat"))
    keras.utils.save_img(os.path.join(root, "images", "cat", "0.png"),
                         np.zeros((4, 4, 3)))
    with tarfile.open(os.path.join(root, "tiny.tar.gz"), "w:gz") as tar:
        tar.add(os.path.join(root, "images"), arcname="images")
    folder = extract_archive(os.path.join(root, "tiny.tar.gz"), root + "/cache")
    assert os.path.isdir(os.path.join(folder, "images", "cat"))
    ```
    """
    archive_path = os.path.abspath(os.path.expanduser(str(archive_path)))
    if not os.path.isfile(archive_path):
        raise ValueError(
            "`archive_path` must be an existing .tar.gz/.tgz/.tar/.zip file. "
            f"Received: archive_path={archive_path!r}"
        )
    if not is_archive(archive_path):
        raise ValueError(
            f"`archive_path` must end with one of {ARCHIVE_SUFFIXES}. "
            f"Received: archive_path={archive_path!r}"
        )
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))
    target = os.path.join(cache_dir, _archive_key(archive_path))
    if os.path.exists(os.path.join(target, COMPLETE_MARKER)):
        return target
    os.makedirs(cache_dir, exist_ok=True)
    _remove_stale_partials(target)
    if os.path.getsize(archive_path) == 0:
        raise CorruptArchiveError(
            f"Cannot extract {archive_path}: the file is empty (0 bytes). "
            "Download or copy it again."
        )
    partial = f"{target}{_PARTIAL}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.makedirs(partial)
    try:
        try:
            if archive_path.lower().endswith(".zip"):
                _extract_zip(archive_path, partial)
            else:
                with tarfile.open(archive_path) as tar:
                    tar.extractall(partial, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
            raise CorruptArchiveError(
                f"Cannot extract {archive_path}: it is truncated or not a valid "
                f"{_suffix(archive_path)} archive ({type(error).__name__}: {error}). "
                "Download or copy it again."
            ) from None
        if not os.listdir(partial):
            raise CorruptArchiveError(
                f"Cannot use {archive_path}: the archive holds no files."
            )
        with open(os.path.join(partial, COMPLETE_MARKER), "w") as marker:
            marker.write(archive_path + "\n")
        if os.path.exists(target) and not os.path.exists(
            os.path.join(target, COMPLETE_MARKER)
        ):
            # Leftover of an older, incomplete layout: replace it.
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(partial, target)
        except OSError:
            # Another process finished first; its result is complete.
            if not os.path.exists(os.path.join(target, COMPLETE_MARKER)):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _suffix(path):
    return next(s for s in ARCHIVE_SUFFIXES if path.lower().endswith(s))


def _remove_stale_partials(target):
    """Removes `<target>.partial-<pid>-*` folders whose process is gone."""
    folder, name = os.path.split(target)
    for entry in os.listdir(folder):
        if not entry.startswith(name + _PARTIAL):
            continue
        pid = entry[len(name + _PARTIAL) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and _process_alive(int(pid)):
            continue  # another process is extracting right now
        shutil.rmtree(os.path.join(folder, entry), ignore_errors=True)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _archive_key(archive_path):
    stat = os.stat(archive_path)
    name = os.path.basename(archive_path)
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    digest = hashlib.sha256(f"{archive_path}|{stat.st_size}".encode()).hexdigest()
    return f"{name}-{digest[:10]}"


def _extract_zip(archive_path, destination):
    destination = os.path.realpath(destination)
    with zipfile.ZipFile(archive_path) as archive:
        for member in archive.namelist():
            path = os.path.realpath(os.path.join(destination, member))
            if os.path.commonpath([destination, path]) != destination:
                raise ValueError(
                    "Refusing to extract a zip entry outside the target folder. "
                    f"Received: member={member!r}"
                )
        archive.extractall(destination)
