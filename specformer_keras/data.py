"""Image classification data as batched `tf.data` pipelines for `fit` on any backend.

Sources:

* TFDS names (`"cifar10"`, `"cifar100"`, `"imagenette"`, `"imagenet2012"`) through
  `tensorflow_datasets` (downloads on first use; `imagenet2012` needs its manual
  download, as TFDS documents).
* A local folder of class sub-folders, with split folders (`train/`, `test/`, ...)
  or without (then pass `split=None`), read with
  `keras.utils.image_dataset_from_directory`.
* A `.tar.gz`/`.tgz`/`.tar`/`.zip` archive of such a folder, extracted once into a
  cache folder (`~/.cache/specformer_keras` or `cache_dir`).

Pipelines yield `(images, labels)` with float32 images in [0, 1] (NHWC) and int32
labels (one-hot float32 labels when MixUp/CutMix is on). `tf.data` is the input
pipeline on every backend: Keras feeds it to `fit` on TensorFlow and JAX alike,
and the Keras preprocessing layers used for augmentation run inside it on any
backend.

Augmentation uses Keras core preprocessing layers only (`RandomCrop` after
4-pixel zero padding, `RandomFlip`, optional `RandAugment`, `MixUp`, `CutMix`),
not keras-cv: Keras core has every layer these recipes need and they run inside
`tf.data` on every backend, while keras-cv is frozen (superseded by KerasHub and
Keras core), TF-only inside, and needs float32 labels for RandAugment/CutMix.
Nothing here imports keras-cv.

Subsets (`subset=N`) of local folders are class-balanced and deterministic for a
given seed: a cached folder of links to the chosen files is read by
`image_dataset_from_directory`, so only those images are ever decoded.
"""

import hashlib
import os
import shutil
import tarfile
import uuid
import zipfile

import keras
import numpy as np


class _LazyTensorFlow:
    """Imports TensorFlow on first use, so `import specformer_keras` stays light."""

    def __getattr__(self, name):
        import tensorflow

        return getattr(tensorflow, name)


tf = _LazyTensorFlow()

TFDS_DATASETS = {
    # name: (train split, test split, native image size or None)
    "cifar10": ("train", "test", 32),
    "cifar100": ("train", "test", 32),
    "imagenette": ("train", "validation", None),
    "imagenet2012": ("train", "validation", None),
}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "test": ("test", "val", "validation", "valid"),
    "validation": ("validation", "val", "valid", "test"),
}
_COMPLETE_MARKER = ".specformer_keras_complete"


class DatasetUnavailableError(RuntimeError):
    """Raised when a TFDS dataset cannot be downloaded or prepared."""


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

    Extraction goes to a temporary sibling folder that is renamed into place
    only when complete, so an interrupted extraction is never mistaken for a
    finished one, and concurrent callers agree on one result. Calling it again
    returns the existing folder without reading the archive.

    Args:
        archive_path: Path to a `.tar.gz`, `.tgz`, `.tar` or `.zip` file.
        cache_dir: Folder to extract into (default: `default_cache_dir()`).

    Returns:
        The path of the extracted folder.

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
    if os.path.exists(os.path.join(target, _COMPLETE_MARKER)):
        return target
    os.makedirs(cache_dir, exist_ok=True)
    partial = f"{target}.partial-{uuid.uuid4().hex[:8]}"
    os.makedirs(partial)
    try:
        if archive_path.lower().endswith(".zip"):
            _extract_zip(archive_path, partial)
        else:
            with tarfile.open(archive_path) as tar:
                tar.extractall(partial, filter="data")
        with open(os.path.join(partial, _COMPLETE_MARKER), "w") as marker:
            marker.write(archive_path + "\n")
        if os.path.exists(target) and not os.path.exists(
            os.path.join(target, _COMPLETE_MARKER)
        ):
            # Leftover of an older, incomplete layout: replace it.
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(partial, target)
        except OSError:
            # Another process finished first; its result is complete.
            if not os.path.exists(os.path.join(target, _COMPLETE_MARKER)):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


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


def _list_class_files(folder):
    class_names = sorted(
        e for e in os.listdir(folder) if os.path.isdir(os.path.join(folder, e))
    )
    if not class_names:
        raise ValueError(
            "A local dataset folder must contain one sub-folder per class. "
            f"Received: folder={folder!r}"
        )
    files = {}
    for name in class_names:
        class_dir = os.path.join(folder, name)
        files[name] = sorted(
            f
            for f in os.listdir(class_dir)
            if f.lower().endswith((".jpg", ".jpeg", ".png", ".bmp", ".gif"))
        )
    return class_names, files


def balanced_subset(labels, size, seed=0):
    """Indices of a deterministic, class-balanced subset of `size` examples.

    Each class gets `size // num_classes` examples (the first
    `size % num_classes` classes one more), drawn without replacement with a
    NumPy generator seeded by `seed`; classes with too few examples give all
    they have. Indices are returned sorted.

    Args:
        labels: 1-D array of integer labels.
        size: Number of examples wanted (positive int).
        seed: Seed of the draw.

    Returns:
        A sorted int64 NumPy array of indices.

    Example:

    ```python
    import numpy as np
    from specformer_keras.data import balanced_subset

    labels = np.repeat(np.arange(4), 10)
    idx = balanced_subset(labels, 8, seed=0)
    assert np.bincount(labels[idx]).tolist() == [2, 2, 2, 2]
    ```
    """
    _check_positive_int("size", size)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    rng = np.random.default_rng(seed)
    per_class = np.full(len(classes), size // len(classes))
    per_class[: size % len(classes)] += 1
    chosen = []
    for count, label in zip(per_class, classes):
        members = np.flatnonzero(labels == label)
        take = min(int(count), len(members))
        chosen.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen)).astype("int64")


def _subset_folder(split_dir, subset, seed, cache_dir):
    """A cached folder of links to a class-balanced subset of `split_dir`."""
    class_names, files = _list_class_files(split_dir)
    paths = [(name, f) for name in class_names for f in files[name]]
    labels = np.array([class_names.index(name) for name, _ in paths])
    if subset >= len(paths):
        return split_dir, class_names
    indices = balanced_subset(labels, subset, seed=seed)
    digest = hashlib.sha256(os.path.abspath(split_dir).encode()).hexdigest()[:10]
    target = os.path.join(
        cache_dir,
        "subsets",
        f"{os.path.basename(split_dir)}-{digest}-n{subset}-seed{seed}",
    )
    if os.path.exists(os.path.join(target, _COMPLETE_MARKER)):
        return target, class_names
    partial = f"{target}.partial-{uuid.uuid4().hex[:8]}"
    for name in class_names:
        os.makedirs(os.path.join(partial, name))
    try:
        for index in indices:
            name, filename = paths[index]
            source = os.path.abspath(os.path.join(split_dir, name, filename))
            link = os.path.join(partial, name, filename)
            try:
                os.symlink(source, link)
            except OSError:  # e.g. no symlink permission on Windows
                shutil.copyfile(source, link)
        open(os.path.join(partial, _COMPLETE_MARKER), "w").close()
        try:
            os.rename(partial, target)
        except OSError:
            if not os.path.exists(os.path.join(target, _COMPLETE_MARKER)):
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target, class_names


def _first_image_size(split_dir, class_names, files):
    for name in class_names:
        if files[name]:
            raw = tf.io.read_file(os.path.join(split_dir, name, files[name][0]))
            shape = tf.io.decode_image(raw, channels=3, expand_animations=False).shape
            return int(shape[0])
    raise ValueError(
        f"No images found under {split_dir!r}. Received: path={split_dir!r}"
    )


def _load_local(path, split, image_size, subset, seed, shuffle, cache_dir):
    folder = path
    if os.path.isfile(path):
        folder = extract_archive(path, cache_dir)
    split_dir = resolve_split_folder(folder, split)
    class_names, files = _list_class_files(split_dir)
    if image_size is None:
        image_size = _first_image_size(split_dir, class_names, files)
    if subset is not None:
        split_dir, class_names = _subset_folder(split_dir, subset, seed, cache_dir)
    dataset = keras.utils.image_dataset_from_directory(
        split_dir,
        labels="inferred",
        label_mode="int",
        class_names=class_names,
        color_mode="rgb",
        batch_size=None,
        image_size=(image_size, image_size),
        shuffle=shuffle,
        seed=seed,
        follow_links=True,
        verbose=False,
    )
    num_examples = len(dataset.file_paths)
    # Pixels come back as float32 in [0, 255]; keep uint8 until augmentation.
    dataset = dataset.map(
        lambda x, y: (tf.cast(tf.round(x), tf.uint8), tf.cast(y, tf.int32)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset, class_names, num_examples, image_size


def _load_tfds(name, split, image_size, subset, seed, shuffle, data_dir):
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:  # pragma: no cover - declared dependency
        raise DatasetUnavailableError(
            "tensorflow-datasets is not installed; install it or pass a local "
            "folder or archive of class sub-folders instead."
        ) from error
    train_split, test_split, native_size = TFDS_DATASETS[name]
    tfds_split = {"train": train_split, "test": test_split, "validation": test_split}
    tfds_split = tfds_split.get(split, split)
    if subset is not None:
        tfds_split = f"{tfds_split}[:{subset}]"
    try:
        dataset, info = tfds.load(
            name,
            split=tfds_split,
            as_supervised=True,
            with_info=True,
            data_dir=data_dir,
            shuffle_files=shuffle,
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
    except Exception as error:
        raise DatasetUnavailableError(
            f"Could not load the TFDS dataset {name!r} (split {tfds_split!r}): "
            f"{type(error).__name__}: {str(error)[:300]}. TFDS needs a network "
            "connection to download it once (imagenet2012 also needs a manual "
            "download). Without one, pass a local folder of class sub-folders "
            "(with train/ and test/ split folders) or a .tar.gz/.zip of it, e.g. "
            "load_dataset('/data/cifar10-jpeg.tar.gz') or "
            "--dataset=/data/cifar10-jpeg.tar.gz in the recipes."
        ) from error
    class_names = list(info.features["label"].names)
    num_examples = int(dataset.cardinality().numpy())
    if image_size is None:
        if native_size is None:
            raise ValueError(
                f"TFDS dataset {name!r} has images of varying size; pass "
                f"image_size (e.g. 224). Received: image_size=None"
            )
        image_size = native_size
    resize = image_size != native_size

    def standardize(image, label):
        if resize:
            image = tf.image.resize(image, (image_size, image_size), antialias=True)
            image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        image = tf.ensure_shape(image, (image_size, image_size, 3))
        return image, tf.cast(label, tf.int32)

    dataset = dataset.map(standardize, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset, class_names, num_examples, image_size


def training_augmentation(
    image_size,
    padding=4,
    flip=True,
    rand_augment=False,
    seed=None,
):
    """The per-image and per-batch Keras augmentation layers used for training.

    Random crop after zero padding (`padding` pixels each side) and horizontal
    flip, as in the CIFAR recipes of the paper; optionally RandAugment.
    Everything is a Keras core preprocessing layer, which runs inside `tf.data`
    on every backend (keras-cv is not needed: see the module docs).

    Args:
        image_size: Output side length in pixels.
        padding: Zero padding before the random crop (0 disables the crop).
        flip: Random horizontal flip.
        rand_augment: Apply `keras.layers.RandAugment` (2 ops, magnitude 0.5).
        seed: Seed for the layers' random generators.

    Returns:
        `(per_image_fn, per_batch_fn)`: functions on `(image, label)` tf
        tensors (images float32 in [0, 1]).
    """
    crop = (
        keras.layers.RandomCrop(image_size, image_size, seed=seed) if padding else None
    )
    per_batch_layers = []
    if flip:
        per_batch_layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if rand_augment:
        per_batch_layers.append(
            keras.layers.RandAugment(value_range=(0.0, 1.0), seed=seed)
        )

    def per_image(image, label):
        if crop is not None:
            # RandomCrop draws one offset per call: map it per image.
            image = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
            image = crop(image)
        return image, label

    def per_batch(images, labels):
        for layer in per_batch_layers:
            images = layer(images)
        return tf.clip_by_value(images, 0.0, 1.0), labels

    return per_image, per_batch


def load_dataset(
    name_or_path,
    split="train",
    batch_size=128,
    image_size=None,
    subset=None,
    augment=False,
    shuffle=None,
    seed=0,
    cache_dir=None,
    rand_augment=False,
    mixup=False,
    cutmix=False,
    drop_remainder=False,
    cache_in_memory="auto",
    repeat=False,
):
    """Loads an image classification dataset as a batched, prefetched `tf.data` pipeline.

    Args:
        name_or_path: A TFDS name (`"cifar10"`, `"cifar100"`, `"imagenette"`,
            `"imagenet2012"`), a folder of class sub-folders (optionally inside
            split folders such as `train/` and `test/`), or a
            `.tar.gz`/`.tgz`/`.tar`/`.zip` archive of one.
        split: `"train"`, `"test"` or `"validation"` (mapped to the split the
            source has), or None to read a local folder as one split.
        batch_size: Examples per batch.
        image_size: Side length to resize to; None keeps the native size
            (required for TFDS datasets of varying size).
        subset: Number of examples to keep for quick runs (None = all). Local
            sources: deterministic class-balanced draw with `seed`; TFDS: the
            first `subset` examples of the split (`"train[:N]"`).
        augment: Training augmentation (random crop with 4-pixel padding,
            horizontal flip; see `training_augmentation`).
        shuffle: Shuffle every epoch; defaults to `split == "train"`.
        seed: Seed for the shuffle, the subset and augmentation.
        cache_dir: Where archives and subsets are extracted
            (default `default_cache_dir()`); for TFDS names, the TFDS `data_dir`.
        rand_augment: Add `keras.layers.RandAugment` to the augmentation.
        mixup: Apply `keras.layers.MixUp` per batch (labels become one-hot float32).
        cutmix: Apply `keras.layers.CutMix` per batch (labels become one-hot float32).
        drop_remainder: Drop the last incomplete batch.
        cache_in_memory: Keep decoded uint8 images in memory after the first
            epoch: True, False, or `"auto"` (when they take under 2 GB).
        repeat: Repeat forever (then pass `steps_per_epoch` to `fit`).

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: float32 images in [0, 1] of
        shape `(batch, image_size, image_size, 3)` and int32 labels (one-hot
        float32 with MixUp/CutMix). It carries the attributes `class_names`,
        `num_classes`, `num_examples` and `image_size`.

    Raises:
        DatasetUnavailableError: A TFDS dataset could not be downloaded.
        ValueError: An argument is invalid (the message names it).

    Example:

    ```python
    import os, tempfile
    import numpy as np
    import keras
    from specformer_keras.data import load_dataset

    root = tempfile.mkdtemp()
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            os.makedirs(os.path.join(root, split, label))
            for i in range(3):
                keras.utils.save_img(os.path.join(root, split, label, f"{i}.png"),
                                     np.random.rand(8, 8, 3) * 255)
    train = load_dataset(root, split="train", batch_size=4, augment=True)
    images, labels = next(iter(train))
    assert images.shape == (4, 8, 8, 3) and train.class_names == ["cat", "dog"]
    ```
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path):
        raise TypeError(
            "`name_or_path` must be a TFDS name or a path to a folder or archive. "
            f"Received: name_or_path={name_or_path!r}"
        )
    _check_positive_int("batch_size", batch_size)
    if image_size is not None:
        _check_positive_int("image_size", image_size)
    if subset is not None:
        _check_positive_int("subset", subset)
    if split is not None and not isinstance(split, str):
        raise TypeError(f"`split` must be a string or None. Received: split={split!r}")
    if cache_in_memory not in (True, False, "auto"):
        raise ValueError(
            "`cache_in_memory` must be True, False or 'auto'. "
            f"Received: cache_in_memory={cache_in_memory!r}"
        )
    if shuffle is None:
        shuffle = split == "train"
    source = os.path.expanduser(str(name_or_path))
    if str(name_or_path) in TFDS_DATASETS:
        if split is None:
            raise ValueError(
                "TFDS datasets need a split ('train', 'test' or 'validation'). "
                "Received: split=None"
            )
        dataset, class_names, num_examples, image_size = _load_tfds(
            str(name_or_path), split, image_size, subset, seed, shuffle, cache_dir
        )
    elif os.path.isdir(source) or (os.path.isfile(source) and is_archive(source)):
        cache = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))
        dataset, class_names, num_examples, image_size = _load_local(
            source, split, image_size, subset, seed, shuffle, cache
        )
    else:
        raise ValueError(
            f"`name_or_path` must be one of the TFDS names {sorted(TFDS_DATASETS)}, "
            "an existing folder of class sub-folders, or an existing "
            f"{'/'.join(ARCHIVE_SUFFIXES)} archive of one. "
            f"Received: name_or_path={str(name_or_path)!r}"
        )

    if cache_in_memory == "auto":
        cache_in_memory = num_examples * image_size * image_size * 3 < 2e9
    if cache_in_memory:
        dataset = dataset.cache()
    if shuffle:
        buffer = min(num_examples, 10_000 if image_size <= 64 else 1_000)
        dataset = dataset.shuffle(
            max(buffer, 1), seed=seed, reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(
        lambda x, y: (tf.cast(x, tf.float32) / 255.0, y),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    per_batch = None
    if augment or rand_augment:
        per_image, per_batch = training_augmentation(
            image_size,
            padding=4 if augment else 0,
            flip=bool(augment),
            rand_augment=rand_augment,
            seed=seed,
        )
        dataset = dataset.map(per_image, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if per_batch is not None:
        dataset = dataset.map(per_batch, num_parallel_calls=tf.data.AUTOTUNE)
    if mixup or cutmix:
        dataset = dataset.map(
            _mixing_fn(len(class_names), mixup, cutmix, seed),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    dataset.class_names = list(class_names)
    dataset.num_classes = len(class_names)
    dataset.num_examples = num_examples
    dataset.image_size = image_size
    return dataset


def _mixing_fn(num_classes, mixup, cutmix, seed):
    layers = []
    if mixup:
        layers.append(keras.layers.MixUp(seed=seed))
    if cutmix:
        layers.append(keras.layers.CutMix(seed=seed))

    def mix(images, labels):
        data = {"images": images, "labels": tf.one_hot(labels, num_classes)}
        if len(layers) == 1:
            data = layers[0](data)
        else:  # one of the two per batch, as in DeiT's recipe
            data = tf.cond(
                tf.random.uniform(()) < 0.5,
                lambda: layers[0](data),
                lambda: layers[1](data),
            )
        return data["images"], tf.cast(data["labels"], tf.float32)

    return mix


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
