"""The `tf.data` pipeline (TensorFlow users) and TFDS datasets.

Imported only when a `tf.data` pipeline is asked for: on JAX and torch the
default pipeline (`array_pipeline`) never imports TensorFlow.
"""

import keras
import numpy as np

from specformer_keras.data.decode import read_image
from specformer_keras.data.sources import (
    TFDS_DATASETS,
    TFDS_INSTALL_HINT,
    DatasetUnavailableError,
)
from specformer_keras.data.subsets import balanced_subset


def _tf():
    import tensorflow as tf

    return tf


def training_augmentation(
    image_size,
    padding=4,
    flip=True,
    rand_augment=False,
    seed=None,
):
    """The per-image and per-batch Keras augmentation of the `tf.data` pipeline.

    Random crop after zero padding (`padding` pixels each side) and horizontal
    flip, as in the CIFAR recipes of the paper; optionally RandAugment.
    Everything is a Keras core preprocessing layer, which runs inside `tf.data`
    on every backend (keras-cv is not needed). The pipeline without TensorFlow
    (`specformer_keras.data.ImageDataset`) applies the same augmentation.

    Args:
        image_size: Output side length in pixels.
        padding: Zero padding before the random crop (0 disables the crop).
        flip: Random horizontal flip.
        rand_augment: Apply `keras.layers.RandAugment` (2 ops, magnitude 0.5).
        seed: Seed for the layers' random generators.

    Returns:
        `(per_image_fn, per_batch_fn)`: functions on `(image, label)` tf
        tensors (images float32 in [0, 1]).

    Example:

    ```python
    import numpy as np
    from specformer_keras.data import training_augmentation

    per_image, per_batch = training_augmentation(8, seed=0)
    image, _ = per_image(np.zeros((8, 8, 3), "float32"), 0)
    assert tuple(image.shape) == (8, 8, 3)
    ```
    """
    tf = _tf()
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


def index_pipeline(paths, labels, image_size, images, shuffle, seed, repeat):
    """`tf.data` of uint8 `(image, label)` from decoded `images` or from `paths`.

    Shuffling happens on indices (a full-size buffer costs 8 bytes an image).
    Without `images`, files are decoded by PIL (`read_image`) in parallel, so a
    corrupt file's error names it, as on the other backends.
    """
    tf = _tf()
    n = len(labels)
    dataset = tf.data.Dataset.range(n)
    if shuffle:
        dataset = dataset.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    label_table = tf.constant(np.asarray(labels, dtype="int32"))
    if images is not None:
        image_table = tf.constant(images)

        def lookup(i):
            return tf.gather(image_table, i), tf.gather(label_table, i)

    else:
        path_table = tf.constant([str(p) for p in paths])

        def decode(path):
            return read_image(path, image_size)

        def lookup(i):
            image = tf.numpy_function(decode, [tf.gather(path_table, i)], tf.uint8)
            image = tf.ensure_shape(image, (image_size, image_size, 3))
            return image, tf.gather(label_table, i)

    return dataset.map(lookup, num_parallel_calls=tf.data.AUTOTUNE)


def finish_pipeline(
    dataset,
    num_classes,
    image_size,
    batch_size,
    augment,
    rand_augment,
    mixup,
    cutmix,
    one_hot,
    drop_remainder,
    seed,
):
    """uint8 `(image, label)` elements -> float batches with augmentation."""
    tf = _tf()
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
            _mixing_fn(num_classes, mixup, cutmix, seed),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    elif one_hot:
        dataset = dataset.map(
            lambda x, y: (x, tf.one_hot(y, num_classes, dtype=tf.float32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _mixing_fn(num_classes, mixup, cutmix, seed):
    tf = _tf()
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


def import_tfds(name):
    """`tensorflow_datasets`, or one line naming the extra to install."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DatasetUnavailableError(
            f"The TFDS dataset {name!r} needs tensorflow-datasets, which is not "
            f"installed: {TFDS_INSTALL_HINT}, or pass a local folder or "
            ".tar.gz/.zip archive of class sub-folders instead."
        ) from None
    return tfds


def load_tfds(name, split, image_size, subset, seed, data_dir):
    """`(uint8 dataset, class_names, num_examples, image_size)` of a TFDS split.

    A `subset` of a TFDS split is class-balanced (`balanced_subset` over the
    split's labels, read without decoding the images), as for local folders.
    """
    tfds = import_tfds(name)
    tf = _tf()
    train_split, test_split, native_size = TFDS_DATASETS[name]
    tfds_split = {"train": train_split, "test": test_split, "validation": test_split}
    tfds_split = tfds_split.get(split, split)
    try:
        dataset, info = tfds.load(
            name,
            split=tfds_split,
            as_supervised=True,
            with_info=True,
            data_dir=data_dir,
            shuffle_files=False,
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
    if subset is not None and subset < num_examples:
        labels = np.array([int(y) for _, y in dataset.as_numpy_iterator()])
        chosen = balanced_subset(labels, subset, seed=seed)
        num_examples = len(chosen)
        keep = tf.constant(chosen)
        dataset = (
            dataset.enumerate()
            .filter(lambda i, xy: tf.reduce_any(tf.equal(keep, i)))
            .map(lambda i, xy: xy)
        )
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
