"""Shared pieces of the sweep scripts (`adversarial_sweep.py`, `gpu_sweep.py`).

Nothing here imports TensorFlow: CIFAR-10 is read from the shared JPEG archive
with `tarfile` and Pillow into NumPy arrays (cached as one ``.npz``), augmented
in NumPy, and fed to `fit` as arrays, so the same code runs on JAX, torch and
TensorFlow.

* `load_cifar_arrays(archive)`: uint8 images and int labels of both splits.
* `augment(x, rng)`: random crop after 4-pixel zero padding + horizontal flip.
* `interleaved_balanced(labels, size, seed)`: a class-balanced subset ordered
  so that every prefix of ``k * num_classes`` points is balanced too.
* `t_interval(values)`: mean and 95% t-interval half-width.
* `UnitLock`: at most one process works on a run directory at a time.
"""

import fcntl
import hashlib
import io
import math
import os
import tarfile

import numpy as np

from specformer_keras.data import balanced_subset, default_cache_dir
from specformer_keras.utils.io import atomic_path

DEFAULT_ARCHIVE = os.path.normpath(
    os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        os.pardir,
        os.pardir,
        "shared",
        "data",
        "cifar10-jpeg.tar.gz",
    )
)

# Two-sided 95% Student-t quantiles by degrees of freedom (scipy.stats.t.ppf(0.975, df)).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365,
         8: 2.306, 9: 2.262, 10: 2.228}  # fmt: skip


def load_cifar_arrays(archive=DEFAULT_ARCHIVE, cache_dir=None):
    """Reads a class-per-folder CIFAR archive (``train/<class>/*.jpg``, ``test/...``).

    Returns:
        ``(x_train, y_train, x_test, y_test, class_names)``: uint8 NHWC images
        and int32 labels (class ids in alphabetical order of the folders).
    """
    if not os.path.exists(archive):
        raise FileNotFoundError(
            f"CIFAR archive not found. Received: archive={archive!r}"
        )
    stat = os.stat(archive)
    key = hashlib.sha1(
        f"{os.path.abspath(archive)}|{stat.st_size}".encode()
    ).hexdigest()
    cache = os.path.join(cache_dir or default_cache_dir(), f"arrays_{key[:16]}.npz")
    if os.path.exists(cache):
        with np.load(cache) as data:
            return (data["x_train"], data["y_train"], data["x_test"], data["y_test"],
                    [str(c) for c in data["class_names"]])  # fmt: skip
    from PIL import Image

    images = {"train": [], "test": []}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.strip("./").split("/")
            if not member.isfile() or len(parts) < 3:
                continue
            split, class_name = parts[-3], parts[-2]
            if split not in images:
                continue
            data = tar.extractfile(member).read()
            image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            images[split].append((class_name, parts[-1], image))
    class_names = sorted({c for c, _, _ in images["train"]})
    arrays = []
    for split in ("train", "test"):
        rows = sorted(images[split], key=lambda r: (r[0], r[1]))
        arrays.append(np.stack([r[2] for r in rows]).astype("uint8"))
        arrays.append(np.array([class_names.index(r[0]) for r in rows], "int32"))
    with atomic_path(cache) as tmp:
        np.savez(tmp, x_train=arrays[0], y_train=arrays[1], x_test=arrays[2],
                 y_test=arrays[3], class_names=np.array(class_names))  # fmt: skip
    return (*arrays, class_names)


def interleaved_balanced(labels, size, seed=0, exclude=None):
    """Class-balanced indices (via `specformer_keras.data.balanced_subset`), interleaved.

    The order is class 0, 1, ..., 9, class 0, 1, ... so any prefix (or chunk)
    of a multiple of the number of classes is balanced as well.

    Args:
        labels: 1-D integer labels.
        size: number of indices.
        seed: seed of the draw.
        exclude: optional indices that must not be drawn (e.g. the training set).
    """
    labels = np.asarray(labels)
    pool = np.arange(len(labels))
    if exclude is not None:
        pool = np.setdiff1d(pool, exclude)
    chosen = pool[balanced_subset(labels[pool], size, seed=seed)]
    rank = np.zeros(len(chosen), "int64")
    for c in np.unique(labels[chosen]):
        members = labels[chosen] == c
        rank[members] = np.arange(members.sum())
    order = np.lexsort((labels[chosen], rank))
    return chosen[order]


def augment(x, rng, pad=4):
    """Random crop after zero padding plus random horizontal flip, in NumPy (uint8 in/out)."""
    n, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy = rng.integers(0, 2 * pad + 1, size=n)
    dx = rng.integers(0, 2 * pad + 1, size=n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    flip = rng.random(n) < 0.5
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def t_interval(values):
    """``(mean, half_width)`` of the 95% Student-t interval; half_width None for n < 2."""
    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, _t975(n - 1) * std / math.sqrt(n)


def _t975(df):
    if df in _T975:
        return _T975[df]
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.975, df))


def slope_interval(xs, ys):
    """``(slope, half_width)`` of the least-squares line through ``(xs, ys)``.

    The half-width is the 95% Student-t interval of the slope (``n - 2`` degrees
    of freedom, residual scatter as the noise); None for fewer than 3 points.
    """
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    dx = x - x.mean()
    sxx = float(dx @ dx)
    if len(x) < 2 or sxx == 0.0:
        raise ValueError(
            f"slope_interval needs at least 2 distinct x values. Received: xs={xs!r}"
        )
    slope = float(dx @ (y - y.mean())) / sxx
    if len(x) < 3:
        return slope, None
    residual = y - y.mean() - slope * dx
    se = math.sqrt(float(residual @ residual) / (len(x) - 2) / sxx)
    return slope, _t975(len(x) - 2) * se


def format_interval(values, scale=100.0, digits=1, unit=""):
    """``"mean ± half (n=k)"`` of ``scale * values``; ``unit`` follows both numbers."""
    mean, half = t_interval([scale * v for v in values])
    if half is None:
        return f"{mean:.{digits}f}{unit} (n=1)"
    return f"{mean:.{digits}f}{unit} ± {half:.{digits}f}{unit} (n={len(values)})"


class UnitLock:
    """An exclusive, non-blocking lock on ``<directory>/.lock`` (released on exit)."""

    def __init__(self, directory):
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, ".lock")
        self.file = None

    def __enter__(self):
        self.file = open(self.path, "w")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise RuntimeError(
                f"Another process is working on {os.path.dirname(self.path)}; "
                "run one sweep process at a time."
            ) from None
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()
