"""Image classification data for `fit` on every backend.

Sources (`sources.py`):

* TFDS names (`"cifar10"`, `"cifar100"`, `"imagenette"`, `"imagenet2012"`)
  through `tensorflow_datasets` when it is installed (the `tensorflow` extra);
  otherwise one line says what to install.
* A local folder of class sub-folders, with split folders (`train/`, `test/`,
  ...) or without (then pass `split=None`). Every split uses the training
  split's class list.
* A `.tar.gz`/`.tgz`/`.tar`/`.zip` archive of such a folder, extracted once into
  a cache folder (`~/.cache/specformer_keras` or `cache_dir`; `archives.py`).

Pipelines yield `(images, labels)` with float32 images in [0, 1] (NHWC) and
int32 labels (one-hot float32 labels with MixUp/CutMix):

* on TensorFlow, a `tf.data.Dataset` (`tf_pipeline.py`);
* on JAX and torch, an `ImageDataset`, a `keras.utils.PyDataset` of NumPy
  batches (`array_pipeline.py`): nothing imports TensorFlow.

Images are decoded by PIL on every backend (`decode.py`), so both pipelines
give the same pixels and labels; decoding and extraction errors name the file.
Augmentation uses Keras core preprocessing layers (`RandomCrop`-style crop
after 4-pixel zero padding, `RandomFlip`, optional `RandAugment`, `MixUp`,
`CutMix`), not keras-cv. Subsets (`subset=N`) are class-balanced and
deterministic for a given seed (`subsets.py`).
"""

from specformer_keras.data.archives import (
    ARCHIVE_SUFFIXES,
    COMPLETE_MARKER,
    CorruptArchiveError,
    default_cache_dir,
    extract_archive,
    is_archive,
)
from specformer_keras.data.array_pipeline import ImageDataset
from specformer_keras.data.decode import CorruptImageError, read_image, read_images
from specformer_keras.data.load import PIPELINES, load_dataset
from specformer_keras.data.sources import (
    IMAGE_SUFFIXES,
    SPLIT_ALIASES,
    TFDS_DATASETS,
    DatasetUnavailableError,
    dataset_class_names,
    index_split,
    resolve_split_folder,
)
from specformer_keras.data.subsets import balanced_subset


def training_augmentation(*args, **kwargs):
    """The `tf.data` augmentation functions (see `tf_pipeline.training_augmentation`).

    Imports TensorFlow; the pipeline without TensorFlow applies the same
    augmentation itself (`ImageDataset`).

    Example:

    ```python
    from specformer_keras.data import training_augmentation

    per_image, per_batch = training_augmentation(8, seed=0)
    ```
    """
    from specformer_keras.data.tf_pipeline import training_augmentation as build

    return build(*args, **kwargs)


__all__ = [
    "ARCHIVE_SUFFIXES",
    "COMPLETE_MARKER",
    "IMAGE_SUFFIXES",
    "PIPELINES",
    "SPLIT_ALIASES",
    "TFDS_DATASETS",
    "CorruptArchiveError",
    "CorruptImageError",
    "DatasetUnavailableError",
    "ImageDataset",
    "balanced_subset",
    "dataset_class_names",
    "default_cache_dir",
    "extract_archive",
    "index_split",
    "is_archive",
    "load_dataset",
    "read_image",
    "read_images",
    "resolve_split_folder",
    "training_augmentation",
]
