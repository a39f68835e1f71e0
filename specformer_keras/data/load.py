"""`load_dataset`: one entry point, a `tf.data` or a NumPy pipeline per backend."""

import importlib.util
import os

import keras

from specformer_keras.data.archives import (
    ARCHIVE_SUFFIXES,
    default_cache_dir,
    extract_archive,
    is_archive,
)
from specformer_keras.data.decode import read_image, read_images
from specformer_keras.data.sources import (
    TFDS_DATASETS,
    TFDS_INSTALL_HINT,
    index_split,
)
from specformer_keras.data.subsets import balanced_subset
from specformer_keras.utils.validation import (
    check_arguments,
    check_bool,
    check_choice,
    check_int,
)

PIPELINES = ("auto", "tf", "numpy")
# The True/False switches of `load_dataset`.
SWITCHES = (
    "augment",
    "rand_augment",
    "mixup",
    "cutmix",
    "drop_remainder",
    "repeat",
    "one_hot",
)
# The arguments both pipelines take as they are (`ImageDataset` and
# `tf_pipeline.finish_pipeline`).
BATCH_OPTIONS = (
    "batch_size",
    "augment",
    "rand_augment",
    "mixup",
    "cutmix",
    "one_hot",
    "drop_remainder",
    "seed",
)
_CACHE_LIMIT_BYTES = 2e9


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
    one_hot=False,
    pipeline="auto",
):
    """Loads an image classification dataset as batches for `fit` on any backend.

    On TensorFlow the result is a batched, prefetched `tf.data.Dataset`; on JAX
    and torch it is an `ImageDataset` (a `keras.utils.PyDataset` of NumPy
    batches) and nothing imports TensorFlow. Both yield the same images,
    labels and class names for the same source and arguments (images are
    decoded by PIL on every backend), and both carry the attributes
    `class_names`, `num_classes`, `num_examples` and `image_size`;
    `len(dataset)` is the number of batches per epoch on both.

    Every split of a local dataset uses the training split's class list: a
    class missing from the test split keeps every other class's id, and a
    class folder that the training split lacks is refused.

    Args:
        name_or_path: A TFDS name (`"cifar10"`, `"cifar100"`, `"imagenette"`,
            `"imagenet2012"`; needs tensorflow-datasets), a folder of class
            sub-folders (optionally inside split folders such as `train/` and
            `test/`), or a `.tar.gz`/`.tgz`/`.tar`/`.zip` archive of one.
        split: `"train"`, `"test"` or `"validation"` (mapped to the split the
            source has), or None to read a local folder as one split.
        batch_size: Examples per batch.
        image_size: Side length to resize to; None keeps the native size (the
            first image's height for folders; required for TFDS datasets of
            varying size).
        subset: Number of examples to keep (None = all): a deterministic
            class-balanced draw with `seed` (`balanced_subset`), for local and
            TFDS sources.
        augment: Training augmentation (random crop with 4-pixel zero padding,
            horizontal flip).
        shuffle: Shuffle every epoch; defaults to `split == "train"`.
        seed: Seed for the shuffle, the subset and augmentation.
        cache_dir: Where archives are extracted (default
            `default_cache_dir()`); for TFDS names, the TFDS `data_dir`.
        rand_augment: Add `keras.layers.RandAugment` to the augmentation.
        mixup: Apply `keras.layers.MixUp` per batch (labels become one-hot float32).
        cutmix: Apply `keras.layers.CutMix` per batch (labels become one-hot float32).
        drop_remainder: Drop the last incomplete batch.
        cache_in_memory: Decode every image once and keep the uint8 images in
            memory: True, False (decode each batch from its files), or `"auto"`
            (when they take under 2 GB).
        repeat: Repeat forever (then pass `steps_per_epoch` to `fit`).
        one_hot: One-hot float32 labels (for validation data next to
            MixUp/CutMix training data); implied by `mixup`/`cutmix`.
        pipeline: `"auto"` (`"tf"` on the TensorFlow backend and for TFDS
            names, `"numpy"` otherwise), `"tf"` (a `tf.data.Dataset`; needs TensorFlow) or
            `"numpy"` (an `ImageDataset`). TFDS names always use `"tf"`.

    Returns:
        Batches of `(images, labels)`: float32 images in [0, 1] of shape
        `(batch, image_size, image_size, 3)` and int32 labels (one-hot float32
        with MixUp/CutMix or `one_hot`), with the attributes above.

    Raises:
        DatasetUnavailableError: A TFDS dataset could not be loaded
            (tensorflow-datasets missing, or no download possible).
        ValueError: An argument is invalid (the message names it), a file
            cannot be decoded or an archive cannot be extracted (the message
            names the file), or a split has a class the training split lacks.

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
    assert len(train) == 2
    ```
    """
    if not isinstance(name_or_path, (str, os.PathLike)) or not str(name_or_path):
        raise TypeError(
            "`name_or_path` must be a TFDS name or a path to a folder or archive. "
            f"Received: name_or_path={name_or_path!r}"
        )
    batch_size = check_int("batch_size", batch_size)
    if image_size is not None:
        image_size = check_int("image_size", image_size)
    if subset is not None:
        subset = check_int("subset", subset)
    seed = check_int("seed", seed, minimum=0)
    if split is not None and not isinstance(split, str):
        raise TypeError(f"`split` must be a string or None. Received: split={split!r}")
    if cache_in_memory not in (True, False, "auto"):
        raise ValueError(
            "`cache_in_memory` must be True, False or 'auto'. "
            f"Received: cache_in_memory={cache_in_memory!r}"
        )
    check_arguments(((check_bool, SWITCHES),), locals())
    if shuffle is None:
        shuffle = split == "train"
    shuffle = check_bool("shuffle", shuffle)
    check_choice("pipeline", pipeline, PIPELINES)
    if pipeline == "auto":
        tfds_name = str(name_or_path) in TFDS_DATASETS
        tensorflow = keras.config.backend() == "tensorflow"
        pipeline = "tf" if tfds_name or tensorflow else "numpy"
    values = locals()
    options = {name: values[name] for name in BATCH_OPTIONS}

    source = os.path.expanduser(str(name_or_path))
    if str(name_or_path) in TFDS_DATASETS:
        if split is None:
            raise ValueError(
                "TFDS datasets need a split ('train', 'test' or 'validation'). "
                "Received: split=None"
            )
        if pipeline != "tf":
            raise ValueError(
                "TFDS datasets are read through tf.data; pass pipeline='tf' or "
                "'auto' (TFDS needs TensorFlow), or a local folder or archive for "
                f"pipeline='numpy'. Received: pipeline={pipeline!r}"
            )
        return _tfds_dataset(
            str(name_or_path), split, image_size, subset, shuffle, cache_dir,
            cache_in_memory, repeat, options,
        )  # fmt: skip
    if not (os.path.isdir(source) or (os.path.isfile(source) and is_archive(source))):
        raise ValueError(
            f"`name_or_path` must be one of the TFDS names {sorted(TFDS_DATASETS)}, "
            "an existing folder of class sub-folders, or an existing "
            f"{'/'.join(ARCHIVE_SUFFIXES)} archive of one. "
            f"Received: name_or_path={str(name_or_path)!r}"
        )
    if pipeline == "tf" and importlib.util.find_spec("tensorflow") is None:
        raise ValueError(
            "pipeline='tf' needs TensorFlow, which is not installed: "
            f"{TFDS_INSTALL_HINT}, or use pipeline='numpy' (the default on JAX "
            f"and torch). Received: pipeline={pipeline!r}"
        )
    folder = source
    if os.path.isfile(source):
        cache = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))
        folder = extract_archive(source, cache)
    paths, labels, class_names = index_split(folder, split)
    if subset is not None and subset < len(paths):
        chosen = balanced_subset(labels, subset, seed=seed)
        paths, labels = [paths[i] for i in chosen], labels[chosen]
    if image_size is None:
        image_size = int(read_image(paths[0]).shape[0])
    if cache_in_memory == "auto":
        cache_in_memory = len(paths) * image_size * image_size * 3 < _CACHE_LIMIT_BYTES
    images = read_images(paths, image_size) if cache_in_memory else None

    if pipeline == "numpy":
        from specformer_keras.data.array_pipeline import ImageDataset

        return ImageDataset(
            paths, labels, class_names, image_size, images=images, shuffle=shuffle,
            repeat=repeat, **options,
        )  # fmt: skip
    from specformer_keras.data import tf_pipeline

    dataset = tf_pipeline.index_pipeline(
        paths, labels, image_size, images, shuffle, seed, repeat
    )
    dataset = tf_pipeline.finish_pipeline(
        dataset, len(class_names), image_size, **options
    )
    return _annotate(dataset, class_names, len(paths), image_size)


def _tfds_dataset(
    name, split, image_size, subset, shuffle, cache_dir, cache_in_memory, repeat,
    options,
):  # fmt: skip
    from specformer_keras.data import tf_pipeline

    dataset, class_names, num_examples, image_size = tf_pipeline.load_tfds(
        name, split, image_size, subset, options["seed"], cache_dir
    )
    if cache_in_memory == "auto":
        cache_in_memory = (
            num_examples * image_size * image_size * 3 < _CACHE_LIMIT_BYTES
        )
    if cache_in_memory:
        dataset = dataset.cache()
    if shuffle:
        buffer = min(num_examples, 10_000 if image_size <= 64 else 1_000)
        dataset = dataset.shuffle(
            max(buffer, 1), seed=options["seed"], reshuffle_each_iteration=True
        )
    if repeat:
        dataset = dataset.repeat()
    dataset = tf_pipeline.finish_pipeline(
        dataset, len(class_names), image_size, **options
    )
    return _annotate(dataset, class_names, num_examples, image_size)


def _annotate(dataset, class_names, num_examples, image_size):
    dataset.class_names = list(class_names)
    dataset.num_classes = len(class_names)
    dataset.num_examples = int(num_examples)
    dataset.image_size = int(image_size)
    return dataset
