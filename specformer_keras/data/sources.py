"""Where images come from: folders of class sub-folders, TFDS names, archives.

Archives are extracted by `specformer_keras.data.archives`. Nothing here
imports TensorFlow. A local dataset is indexed into `(paths, labels,
class_names)` with ONE class list for all its splits: the training split's
(see `dataset_class_names`).
"""

import os

TFDS_DATASETS = {
    # name: (train split, test split, native image size or None)
    "cifar10": ("train", "test", 32),
    "cifar100": ("train", "test", 32),
    "imagenette": ("train", "validation", None),
    "imagenet2012": ("train", "validation", None),
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "test": ("test", "val", "validation", "valid"),
    "validation": ("validation", "val", "valid", "test"),
}
TFDS_INSTALL_HINT = 'pip install "specformer-keras[tensorflow]"'


class DatasetUnavailableError(RuntimeError):
    """Raised when a TFDS dataset cannot be loaded (not installed, not downloadable)."""


def _find_dataset_root(folder):
    """Descends through single-sub-folder wrappers (e.g. `cifar10/train/...`)."""
    while True:
        entries = [e for e in os.listdir(folder) if not e.startswith(".")]
        subdirs = [e for e in entries if os.path.isdir(os.path.join(folder, e))]
        files = [e for e in entries if os.path.isfile(os.path.join(folder, e))]
        if len(subdirs) == 1 and not files and not _split_folders(folder):
            inner = os.path.join(folder, subdirs[0])
            if any(os.path.isdir(os.path.join(inner, e)) for e in os.listdir(inner)):
                folder = inner
                continue
        return folder


def _split_folders(folder):
    names = {alias for aliases in SPLIT_ALIASES.values() for alias in aliases}
    return sorted(
        e
        for e in os.listdir(folder)
        if e in names and os.path.isdir(os.path.join(folder, e))
    )


def resolve_split_folder(root, split):
    """Returns the class-folder directory for `split` inside a local dataset.

    Args:
        root: Folder holding split folders (`train/`, `test/`) or class folders.
        split: `"train"`, `"test"`, `"validation"`, another sub-folder name, or
            None to read `root` itself as one split.

    Returns:
        The path of the folder whose sub-folders are the classes.

    Raises:
        ValueError: No folder for `split` (the message lists what exists).

    Example:

    ```python
    import os, tempfile
    from specformer_keras.data import resolve_split_folder

    root = tempfile.mkdtemp()
    os.makedirs(os.path.join(root, "val", "cat"))
    assert resolve_split_folder(root, "test") == os.path.join(root, "val")
    ```
    """
    root = _find_dataset_root(root)
    if split is None:
        return root
    candidates = SPLIT_ALIASES.get(split, (split,))
    for candidate in candidates:
        path = os.path.join(root, candidate)
        if os.path.isdir(path):
            return path
    available = _split_folders(root)
    hint = (
        f"Split folders found: {available}."
        if available
        else "No split folders found; pass split=None to read the folder as one split."
    )
    raise ValueError(
        f"No folder for split {split!r} (looked for {list(candidates)}) in {root!r}. "
        f"{hint} Received: split={split!r}"
    )


def _class_folders(folder):
    return sorted(
        e
        for e in os.listdir(folder)
        if not e.startswith(".") and os.path.isdir(os.path.join(folder, e))
    )


def dataset_class_names(root, split):
    """The one class list of a local dataset: its training split's folder names.

    Every split of a dataset uses the class list (sorted folder names) of its
    training split, so a test folder that lacks a class keeps every other
    class's id ('dog' is 1 in train and in test). Without a training split
    (or with `split=None`), the split's own folders are the classes.

    Args:
        root: The dataset folder (with or without split folders).
        split: The split being read (None: `root` is one split).

    Returns:
        `(class_names, origin)`: the sorted class names and the folder they
        were read from.

    Raises:
        ValueError: The folder has no class sub-folders.

    Example:

    ```python
    import os, tempfile
    from specformer_keras.data import dataset_class_names

    root = tempfile.mkdtemp()
    for path in ("train/cat", "train/dog", "test/dog"):
        os.makedirs(os.path.join(root, path))
    names, _ = dataset_class_names(root, "test")
    assert names == ["cat", "dog"]
    ```
    """
    origin = resolve_split_folder(root, split)
    if split is not None:
        try:
            origin = resolve_split_folder(root, "train")
        except ValueError:
            pass  # no training split: the split is its own reference
    class_names = _class_folders(origin)
    if not class_names:
        raise ValueError(
            "A local dataset folder must contain one sub-folder per class. "
            f"Received: folder={origin!r}"
        )
    return class_names, origin


def index_split(root, split):
    """Lists `(paths, labels, class_names)` of one split of a local dataset.

    Labels index `dataset_class_names(root, split)` (the training split's
    classes). A class folder in this split that the training split does not
    have is refused; classes missing from this split are simply absent.
    Files are ordered by class, then by file name.

    Args:
        root: The dataset folder (with or without split folders).
        split: `"train"`, `"test"`, `"validation"`, a folder name or None.

    Returns:
        `(paths, labels, class_names)`: a list of file paths, an int32 NumPy
        array of labels and the list of class names.

    Raises:
        ValueError: No images, no class folders, or a class folder that is
            not a class of the training split (the message names it).

    Example:

    ```python
    import os, tempfile
    import numpy as np
    import keras
    from specformer_keras.data import index_split

    root = tempfile.mkdtemp()
    for path in ("train/cat", "train/dog", "test/dog"):
        os.makedirs(os.path.join(root, path))
        keras.utils.save_img(os.path.join(root, path, "0.png"), np.zeros((4, 4, 3)))
    paths, labels, names = index_split(root, "test")
    assert names == ["cat", "dog"] and labels.tolist() == [1]
    ```
    """
    import numpy as np

    split_dir = resolve_split_folder(root, split)
    class_names, origin = dataset_class_names(root, split)
    present = _class_folders(split_dir)
    unknown = sorted(set(present) - set(class_names))
    if unknown:
        raise ValueError(
            f"Split {split!r} ({split_dir}) has class folder(s) {unknown} that the "
            f"training split ({origin}) does not have; every split uses the training "
            f"split's classes {class_names}. Remove or rename those folders, or add "
            "them to the training split."
        )
    paths, labels = [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(split_dir, name)
        if not os.path.isdir(class_dir):
            continue
        for f in sorted(os.listdir(class_dir)):
            if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."):
                paths.append(os.path.join(class_dir, f))
                labels.append(label)
    if not paths:
        raise ValueError(
            f"No images ({'/'.join(IMAGE_SUFFIXES)}) found under {split_dir!r}. "
            f"Received: path={split_dir!r}"
        )
    return paths, np.asarray(labels, dtype="int32"), class_names
