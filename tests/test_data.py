"""Data loaders: local folders, archives, the shared CIFAR-10 archive, TFDS errors."""

import os
import tarfile
import tempfile
import zipfile

import keras
import numpy as np
import pytest

from specformer_keras import data
from specformer_keras.data import (
    DatasetUnavailableError,
    balanced_subset,
    extract_archive,
    load_dataset,
)

CLASSES = ("ant", "bee", "cat")
# Shared across test runs: the CIFAR-10 archive is extracted once (about 20 s).
SHARED_CACHE = os.path.join(tempfile.gettempdir(), "specformer_keras_test_cache")


def _write_folder(root, per_class=4, size=8, splits=("train", "test")):
    """Class folders of PNGs whose pixel value encodes the class id (exactly)."""
    for split in splits:
        for label, name in enumerate(CLASSES):
            folder = (
                os.path.join(root, split, name) if split else os.path.join(root, name)
            )
            os.makedirs(folder)
            for i in range(per_class):
                value = np.full((size, size, 3), 40 * label + i, dtype="uint8")
                keras.utils.save_img(
                    os.path.join(folder, f"{i}.png"), value, scale=False
                )
    return root


def _collect(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def test_folder_loader_values_labels_and_attributes(tmp_path):
    root = _write_folder(str(tmp_path / "ds"))
    test = load_dataset(root, split="test", batch_size=5, cache_dir=str(tmp_path / "c"))
    images, labels = _collect(test)
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert images.shape == (12, 8, 8, 3)
    # Pixel value 40*label + i survives exactly, scaled to [0, 1].
    expected = (40 * labels[:, None] + np.tile(np.arange(4), 3)[:, None]) / 255.0
    np.testing.assert_allclose(images[:, 0, 0, 0][:, None], expected, atol=1e-6)
    assert test.class_names == list(CLASSES) and test.num_classes == 3
    assert test.num_examples == 12 and test.image_size == 8
    first_batch = next(iter(test))[0]
    assert first_batch.shape == (5, 8, 8, 3)


def test_train_split_shuffles_and_augments_within_range(tmp_path):
    root = _write_folder(str(tmp_path / "ds"), per_class=6)
    train = load_dataset(
        root,
        split="train",
        batch_size=18,
        augment=True,
        seed=1,
        cache_dir=str(tmp_path),
    )
    epoch_1 = [y.numpy().tolist() for _, y in train][0]
    epoch_2 = [y.numpy().tolist() for _, y in train][0]
    assert sorted(epoch_1) == sorted([0] * 6 + [1] * 6 + [2] * 6)
    assert epoch_1 != epoch_2  # reshuffled each epoch
    images = next(iter(train))[0].numpy()
    assert images.min() >= 0.0 and images.max() <= 1.0
    # Padding 4 + random crop of constant images: zero rows whose count varies
    # from image to image (one crop offset per image, not per batch).
    nonblank = images.max(axis=(1, 2, 3)) > 0
    zero_rows = (images[nonblank].max(axis=(2, 3)) == 0).sum(axis=1)
    assert len(set(zero_rows.tolist())) > 1


def test_resize_subset_and_mixup(tmp_path):
    root = _write_folder(str(tmp_path / "ds"), per_class=5)
    ds = load_dataset(
        root,
        split="train",
        batch_size=6,
        image_size=16,
        subset=6,
        mixup=True,
        cache_dir=str(tmp_path / "cache"),
    )
    images, labels = _collect(ds)
    assert images.shape == (6, 16, 16, 3)
    assert labels.shape == (6, 3) and labels.dtype == np.float32
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)


def test_subset_is_class_balanced_and_deterministic(tmp_path):
    root = _write_folder(str(tmp_path / "ds"), per_class=5)
    kwargs = dict(split="train", batch_size=32, subset=6, cache_dir=str(tmp_path / "c"))
    first = _collect(load_dataset(root, seed=3, shuffle=False, **kwargs))
    again = _collect(load_dataset(root, seed=3, shuffle=False, **kwargs))
    np.testing.assert_array_equal(np.bincount(first[1]), [2, 2, 2])
    np.testing.assert_array_equal(first[0], again[0])
    other = _collect(load_dataset(root, seed=4, shuffle=False, **kwargs))
    assert not np.array_equal(first[0], other[0])


def test_balanced_subset_counts_and_validation():
    labels = np.repeat(np.arange(3), [10, 10, 2])
    idx = balanced_subset(labels, 7, seed=0)
    assert np.bincount(labels[idx]).tolist() == [3, 2, 2]
    assert len(set(idx.tolist())) == len(idx)
    with pytest.raises(ValueError, match="Received: size=0"):
        balanced_subset(labels, 0)


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archive_is_extracted_once_and_loaded(tmp_path, kind):
    src = _write_folder(str(tmp_path / "src" / "mydata"))
    archive = str(tmp_path / f"mydata.{kind}")
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for folder, _, files in os.walk(src):
                for f in files:
                    full = os.path.join(folder, f)
                    zf.write(full, os.path.relpath(full, str(tmp_path / "src")))
    else:
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(src, arcname="mydata")
    cache = str(tmp_path / "cache")
    folder = extract_archive(archive, cache)
    marker = os.path.join(folder, data._COMPLETE_MARKER)
    mtime = os.path.getmtime(marker)
    assert extract_archive(archive, cache) == folder
    assert os.path.getmtime(marker) == mtime  # not extracted again
    # Wrapper folder "mydata/" is descended into to find train/ and test/.
    test = load_dataset(archive, split="test", batch_size=4, cache_dir=cache)
    images, labels = _collect(test)
    assert images.shape == (12, 8, 8, 3) and np.bincount(labels).tolist() == [4, 4, 4]
    leftovers = [e for e in os.listdir(cache) if ".partial-" in e]
    assert leftovers == []


def test_interrupted_extraction_is_not_reused(tmp_path, monkeypatch):
    src = _write_folder(str(tmp_path / "src"))
    archive = str(tmp_path / "d.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(os.path.join(src, "train"), arcname="train")
    cache = str(tmp_path / "cache")

    def crash(self, *args, **kwargs):
        raise KeyboardInterrupt("simulated kill during extraction")

    monkeypatch.setattr(tarfile.TarFile, "extractall", crash)
    with pytest.raises(KeyboardInterrupt):
        extract_archive(archive, cache)
    monkeypatch.undo()
    assert os.listdir(cache) == []  # partial folder removed, nothing half-done
    folder = extract_archive(archive, cache)
    assert sorted(os.listdir(os.path.join(folder, "train"))) == list(CLASSES)


def test_folder_without_splits_needs_split_none(tmp_path):
    root = _write_folder(str(tmp_path / "flat"), splits=(None,))
    with pytest.raises(ValueError, match="pass split=None"):
        load_dataset(root, split="train", cache_dir=str(tmp_path))
    ds = load_dataset(root, split=None, batch_size=12, cache_dir=str(tmp_path))
    assert _collect(ds)[0].shape == (12, 8, 8, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name_or_path": "/no/such/dir"}, "Received: name_or_path='/no/such/dir'"),
        ({"name_or_path": 3}, "Received: name_or_path=3"),
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"subset": -2}, "Received: subset=-2"),
        ({"image_size": 2.5}, "Received: image_size=2.5"),
        ({"split": "nope"}, "Received: split='nope'"),
        ({"cache_in_memory": "yes"}, "Received: cache_in_memory='yes'"),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path, kwargs, match):
    root = _write_folder(str(tmp_path / "ds"), per_class=1)
    arguments = {"name_or_path": root, "cache_dir": str(tmp_path)}
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        load_dataset(**arguments)


def test_tfds_failure_explains_offline_alternative(monkeypatch, tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Failed to resolve 'www.cs.toronto.edu'")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cifar10", split="train", cache_dir=str(tmp_path))
    message = str(info.value)
    assert "cifar10" in message and "network" in message
    assert "local folder" in message and ".tar.gz" in message
    assert isinstance(info.value.__cause__, ConnectionError)


def test_tfds_path_standardizes_images(monkeypatch, tmp_path):
    """The TFDS branch (with a stand-in for tfds.load) resizes and scales."""
    tfds = pytest.importorskip("tensorflow_datasets")
    import tensorflow as tf

    class Info:
        features = {"label": tfds.features.ClassLabel(names=["a", "b"])}

    images = np.random.default_rng(0).integers(0, 256, (6, 20, 24, 3)).astype("uint8")
    fake = tf.data.Dataset.from_tensor_slices((images, np.arange(6) % 2))
    calls = {}

    def fake_load(name, split, **kwargs):
        calls.update(name=name, split=split)
        return fake, Info()

    monkeypatch.setattr(tfds, "load", fake_load)
    ds = load_dataset("imagenette", split="test", subset=6, image_size=16, batch_size=3)
    x, y = _collect(ds)
    assert calls == {"name": "imagenette", "split": "validation[:6]"}
    assert x.shape == (6, 16, 16, 3) and 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype == np.int32 and ds.class_names == ["a", "b"]
    with pytest.raises(ValueError, match="Received: image_size=None"):
        load_dataset("imagenette", split="test")


def test_shared_cifar10_archive_slice(cifar10_archive):
    train = load_dataset(
        cifar10_archive, split="train", batch_size=20, subset=40, cache_dir=SHARED_CACHE
    )
    images, labels = _collect(train)
    assert train.class_names[:3] == ["airplane", "automobile", "bird"]
    assert images.shape == (40, 32, 32, 3)
    assert np.bincount(labels, minlength=10).tolist() == [4] * 10
    # Real photos: not constant, in range, mean brightness plausible for CIFAR.
    assert images.std() > 0.1 and 0.3 < images.mean() < 0.65
    test = load_dataset(
        cifar10_archive, split="test", batch_size=50, subset=50, cache_dir=SHARED_CACHE
    )
    assert test.num_examples == 50
