"""Temporary files that a killed writer left in an evaluation folder.

`specformer_keras.utils.io` writes every file through a hidden temporary file
``.<name>~<host>~<pid>.<random>.tmp`` renamed into place; a writer killed
mid-write (``kill -9``) leaves it behind. `remove_stale_temporaries` deletes
those whose writer is certainly gone and lists the others in a warning.

Example:

```python
import os, tempfile
from specformer_keras.evaluation.stale import remove_stale_temporaries
from specformer_keras.utils.io import writer_host

folder = tempfile.mkdtemp()
gone = os.path.join(folder, f".a.json~{writer_host()}~999999999.x1.tmp")
open(gone, "w").close()  # process 999999999 does not exist
assert remove_stale_temporaries(folder, min_age=0) == ([gone], [])
```
"""

import os
import time
import warnings

from specformer_keras.utils.io import temporary_writer, writer_host

__all__ = ["remove_stale_temporaries"]


def _running(pid):
    """Whether process ``pid`` of this host may be running (True when unsure)."""
    if os.name != "posix" or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: another user's running process
        return True
    return True


def remove_stale_temporaries(folder, min_age=60.0):
    """Deletes the temporary files a killed writer left in ``folder``; warns of the rest.

    A hidden temporary file of `specformer_keras.utils.io` names its writer's
    host and process id. It is deleted only when that host is this one, no
    process of that id runs, and it was last written ``min_age`` seconds ago
    or more (a guard for a writer in another process namespace under the same
    host name). Any other temporary file (another host's, a running
    process's, a recent one, or one without a writer in its name) is left and
    listed in a warning. Subfolders holding their own ``manifest.json`` are
    other evaluations and are left to them.

    Args:
        folder: the evaluation folder.
        min_age: seconds since the last write below which a file is kept.

    Returns:
        ``(removed, kept)``: lists of paths.

    Example:

    ```python
    import tempfile
    from specformer_keras.evaluation.stale import remove_stale_temporaries

    assert remove_stale_temporaries(tempfile.mkdtemp()) == ([], [])
    ```
    """
    removed, kept, host, now = [], [], writer_host(), time.time()
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(
            d
            for d in dirs
            if not os.path.exists(os.path.join(root, d, "manifest.json"))
        )
        for name in sorted(names):
            if not (name.startswith(".") and name.endswith(".tmp")):
                continue
            path, writer = os.path.join(root, name), temporary_writer(name)
            try:
                recent = now - os.stat(path).st_mtime < min_age
                if writer is None or writer[1] != host or recent or _running(writer[2]):
                    kept.append(path)
                    continue
                os.remove(path)
            except FileNotFoundError:  # renamed or removed meanwhile
                continue
            removed.append(path)
    if kept:
        shown = ", ".join(kept[:10])
        if len(kept) > 10:
            shown += f" and {len(kept) - 10} more"
        warnings.warn(
            f"{len(kept)} temporary file(s) in the evaluation folder {folder} "
            "may belong to a running writer (another host, a running process, "
            f"written less than {min_age:g} s ago, or no writer named): {shown}. They are never read; delete them "
            "once nothing writes there.",
            stacklevel=3,
        )
    return removed, kept
