"""Data loaders: local folders, archives, the shared CIFAR-10 archive, TFDS errors,
on every backend: `tf.data` on TensorFlow, `ImageDataset` (no TensorFlow) elsewhere."""

import importlib.util
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import keras
import numpy as np
import pytest
from testing import BACKEND, REPO_ROOT

from specformer_keras import data
from specformer_keras.data import (
    CorruptArchiveError,
    CorruptImageError,
    DatasetUnavailableError,
    ImageDataset,
    balanced_subset,
    extract_archive,
    load_dataset,
)

HAS_TF = importlib.util.find_spec("tensorflow") is not None
# Every pipeline this environment can build: the backend's default, plus the
# other one (tf.data needs TensorFlow installed; "numpy" runs everywhere).
PIPELINES = ["numpy"] + (["tf"] if HAS_TF else [])

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
    images, labels = zip(*[(np.asarray(x), np.asarray(y)) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def test_default_pipeline_per_backend(tmp_path):
    root = _write_folder(str(tmp_path / "ds"), per_class=1)
    ds = load_dataset(root, split="test", batch_size=2)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        assert isinstance(ds, tf.data.Dataset)
    else:
        assert isinstance(ds, ImageDataset)
        assert isinstance(ds, keras.utils.PyDataset)
    assert len(ds) == 2  # batches per epoch, on both pipelines


@pytest.mark.parametrize("cache", [True, False])
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_folder_loader_values_labels_and_attributes(tmp_path, pipeline, cache):
    root = _write_folder(str(tmp_path / "ds"))
    test = load_dataset(
        root, split="test", batch_size=5, cache_dir=str(tmp_path / "c"),
        pipeline=pipeline, cache_in_memory=cache,
    )  # fmt: skip
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


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_train_split_shuffles_and_augments_within_range(tmp_path, pipeline):
    root = _write_folder(str(tmp_path / "ds"), per_class=6)
    train = load_dataset(
        root,
        split="train",
        batch_size=18,
        augment=True,
        seed=1,
        cache_dir=str(tmp_path),
        pipeline=pipeline,
    )
    epoch_1 = [np.asarray(y).tolist() for _, y in train][0]
    epoch_2 = [np.asarray(y).tolist() for _, y in train][0]
    assert sorted(epoch_1) == sorted([0] * 6 + [1] * 6 + [2] * 6)
    assert epoch_1 != epoch_2  # reshuffled each epoch
    images = np.asarray(next(iter(train))[0])
    assert images.min() >= 0.0 and images.max() <= 1.0
    # Padding 4 + random crop of constant images: zero rows whose count varies
    # from image to image (one crop offset per image, not per batch).
    nonblank = images.max(axis=(1, 2, 3)) > 0
    zero_rows = (images[nonblank].max(axis=(2, 3)) == 0).sum(axis=1)
    assert len(set(zero_rows.tolist())) > 1


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize(
    "mixing",
    [
        {"mixup": True},
        {"cutmix": True, "rand_augment": True},
        {"mixup": True, "cutmix": True},
        {"one_hot": True},
    ],
)
def test_resize_subset_and_mixing(tmp_path, pipeline, mixing):
    root = _write_folder(str(tmp_path / "ds"), per_class=5)
    ds = load_dataset(
        root,
        split="train",
        batch_size=6,
        image_size=16,
        subset=6,
        cache_dir=str(tmp_path / "cache"),
        pipeline=pipeline,
        **mixing,
    )
    images, labels = _collect(ds)
    assert images.shape == (6, 16, 16, 3) and images.dtype == np.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert labels.shape == (6, 3) and labels.dtype == np.float32
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    if mixing == {"one_hot": True}:
        assert set(np.unique(labels)) == {0.0, 1.0}
    elif "mixup" in mixing:
        assert ((labels > 0) & (labels < 1)).any()  # soft labels: mixing happened


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_subset_is_class_balanced_and_deterministic(tmp_path, pipeline):
    root = _write_folder(str(tmp_path / "ds"), per_class=5)
    kwargs = dict(
        split="test", batch_size=32, subset=6, cache_dir=str(tmp_path / "c"),
        pipeline=pipeline,
    )  # fmt: skip
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
    with pytest.raises(ValueError, match="Received: seed=-1"):
        balanced_subset(labels, 3, seed=-1)


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
    marker = os.path.join(folder, data.COMPLETE_MARKER)
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


def test_leftover_of_a_killed_extraction_is_removed(tmp_path):
    """A SIGKILL leaves `<target>.partial-<pid>-*`: the next run removes it."""
    src = _write_folder(str(tmp_path / "src"))
    archive = str(tmp_path / "d.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(os.path.join(src, "train"), arcname="train")
    cache = str(tmp_path / "cache")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    target = os.path.join(cache, data.archives._archive_key(archive))
    leftover = f"{target}.partial-{dead.stdout.strip()}-deadbeef"
    os.makedirs(os.path.join(leftover, "train", "ant"))  # half-extracted
    folder = extract_archive(archive, cache)
    assert sorted(os.listdir(cache)) == [os.path.basename(folder)]
    assert sorted(os.listdir(os.path.join(folder, "train"))) == list(CLASSES)


def _tar_bytes(tmp_path):
    src = _write_folder(str(tmp_path / "src"), per_class=20, size=16)
    archive = str(tmp_path / "good.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="ds")
    with open(archive, "rb") as f:
        return f.read()


@pytest.mark.parametrize("kind", ["empty.tar.gz", "truncated.tar.gz", "garbage.zip",
                                  "empty.zip", "truncated.zip"])  # fmt: skip
def test_broken_archives_name_the_file_and_leave_nothing(tmp_path, kind):
    good = _tar_bytes(tmp_path)
    path = str(tmp_path / kind)
    if kind.startswith("empty"):
        content = b""
    elif kind == "truncated.tar.gz":
        content = good[: len(good) // 2]
    elif kind == "garbage.zip":
        content = b"not a zip file" * 10
    else:
        zipped = str(tmp_path / "good.zip")
        with zipfile.ZipFile(zipped, "w") as zf:
            for i in range(5):
                zf.writestr(f"ds/train/ant/{i}.txt", os.urandom(2000))
        with open(zipped, "rb") as f:
            content = f.read()[:-3000]
    with open(path, "wb") as f:
        f.write(content)
    cache = str(tmp_path / "cache")
    with pytest.raises(CorruptArchiveError, match=kind.replace(".", r"\.")):
        load_dataset(path, split="train", cache_dir=cache)
    assert not os.path.exists(cache) or os.listdir(cache) == []


def _corrupt(path, how):
    if how == "empty":
        open(path, "wb").close()
    elif how == "truncated":
        with open(path, "rb") as f:
            content = f.read()
        with open(path, "wb") as f:
            f.write(content[: len(content) // 2])
    else:
        with open(path, "wb") as f:
            f.write(b"this is not a JPEG" * 20)


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage"])
def test_corrupt_jpeg_error_names_the_file(tmp_path, how):
    root = str(tmp_path / "ds")
    for name in ("ant", "bee"):
        os.makedirs(os.path.join(root, "train", name))
        for i in range(3):
            noise = np.random.default_rng(i).integers(0, 256, (32, 32, 3))
            keras.utils.save_img(os.path.join(root, "train", name, f"{i}.jpg"),
                                 noise.astype("uint8"), scale=False)  # fmt: skip
    bad = os.path.join(root, "train", "bee", "1.jpg")
    _corrupt(bad, how)
    with pytest.raises(CorruptImageError, match="bee/1.jpg"):
        load_dataset(root, split="train", cache_dir=str(tmp_path))
    # Decoding per batch (no in-memory cache): the error names it too.
    ds = load_dataset(root, split="train", cache_dir=str(tmp_path), batch_size=2,
                      cache_in_memory=False, pipeline="numpy", shuffle=False)  # fmt: skip
    with pytest.raises(CorruptImageError, match="bee/1.jpg"):
        _collect(ds)
    if HAS_TF:
        ds = load_dataset(root, split="train", cache_dir=str(tmp_path),
                          cache_in_memory=False, pipeline="tf")  # fmt: skip
        with pytest.raises(Exception, match="bee/1.jpg"):
            _collect(ds)


def _write_split(root, split, classes, per_class=2, size=8):
    for name in classes:
        folder = os.path.join(root, split, name)
        os.makedirs(folder)
        for i in range(per_class):
            value = np.full((size, size, 3), 40 * CLASSES.index(name) + i, "uint8")
            keras.utils.save_img(os.path.join(folder, f"{i}.png"), value, scale=False)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_one_class_list_for_all_splits(tmp_path, pipeline):
    """A test split lacking 'bee' keeps 'cat' at id 2 (the training split's list)."""
    root = str(tmp_path / "ds")
    _write_split(root, "train", CLASSES)
    _write_split(root, "test", ("ant", "cat"))
    kwargs = dict(batch_size=8, cache_dir=str(tmp_path), shuffle=False,
                  pipeline=pipeline)  # fmt: skip
    train = load_dataset(root, split="train", **kwargs)
    test = load_dataset(root, split="test", **kwargs)
    assert test.class_names == train.class_names == list(CLASSES)
    assert test.num_classes == 3
    images, labels = _collect(test)
    assert labels.tolist() == [0, 0, 2, 2]
    # The pixel value encodes the class id: labels match the images.
    np.testing.assert_array_equal(np.round(images[:, 0, 0, 0] * 255) // 40, labels)


def test_class_folder_unknown_to_train_is_refused(tmp_path):
    root = str(tmp_path / "ds")
    _write_split(root, "train", ("ant", "bee"))
    _write_split(root, "test", ("ant", "cat"))
    with pytest.raises(ValueError, match=r"\['cat'\].*training split"):
        load_dataset(root, split="test", cache_dir=str(tmp_path))


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
        ({"pipeline": "grain"}, "Received: pipeline='grain'"),
        ({"seed": -1}, "Received: seed=-1"),
        ({"augment": "yes"}, "Received: augment='yes'"),
        ({"one_hot": 1}, "Received: one_hot=1"),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path, kwargs, match):
    root = _write_folder(str(tmp_path / "ds"), per_class=1)
    arguments = {"name_or_path": root, "cache_dir": str(tmp_path)}
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        load_dataset(**arguments)


def test_tf_pipeline_without_tensorflow_is_one_line(monkeypatch, tmp_path):
    from specformer_keras.data import load as load_module

    real = load_module.importlib.util.find_spec
    monkeypatch.setattr(
        load_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tensorflow" else real(name, *a),
    )
    root = _write_folder(str(tmp_path / "ds"), per_class=1)
    with pytest.raises(ValueError, match="pipeline='numpy'") as info:
        load_dataset(root, split="test", pipeline="tf", cache_dir=str(tmp_path))
    assert 'pip install "specformer-keras[tensorflow]"' in str(info.value)
    assert "\n" not in str(info.value)


def test_tfds_without_tensorflow_datasets_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # not installed
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset("cifar10", split="train", cache_dir=str(tmp_path))
    message = str(info.value)
    assert "\n" not in message
    assert 'pip install "specformer-keras[tensorflow]"' in message
    assert "cifar10" in message and "local folder" in message


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
    ds = load_dataset("imagenette", split="test", subset=4, image_size=16, batch_size=3)
    x, y = _collect(ds)
    assert calls == {"name": "imagenette", "split": "validation"}
    assert x.shape == (4, 16, 16, 3) and 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype == np.int32 and ds.class_names == ["a", "b"]
    assert np.bincount(y).tolist() == [2, 2]  # class-balanced, not the first 4
    assert ds.num_examples == 4
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


@pytest.mark.skipif(not HAS_TF, reason="compares against tf.data: needs TensorFlow")
@pytest.mark.parametrize("image_size", [None, 12])
def test_tf_and_numpy_pipelines_agree(tmp_path, image_size):
    """Same folder, same arguments: same images, labels and class names."""
    root = str(tmp_path / "ds")
    for split in ("train", "test"):
        for name in ("ant", "bee", "cat") if split == "train" else ("bee", "cat"):
            folder = os.path.join(root, split, name)
            os.makedirs(folder)
            for i in range(3):
                noise = np.random.default_rng(hash((split, name, i)) % 2**32)
                keras.utils.save_img(os.path.join(folder, f"{i}.jpg"),
                                     noise.integers(0, 256, (10, 10, 3)).astype("uint8"),
                                     scale=False)  # fmt: skip
    kwargs = dict(split="test", batch_size=4, image_size=image_size, subset=4,
                  cache_dir=str(tmp_path), shuffle=False)  # fmt: skip
    via_tf = load_dataset(root, pipeline="tf", **kwargs)
    via_numpy = load_dataset(root, pipeline="numpy", **kwargs)
    for name in ("class_names", "num_classes", "num_examples", "image_size"):
        assert getattr(via_tf, name) == getattr(via_numpy, name), name
    assert len(via_tf) == len(via_numpy)
    x_tf, y_tf = _collect(via_tf)
    x_np, y_np = _collect(via_numpy)
    np.testing.assert_array_equal(y_tf, y_np)
    np.testing.assert_array_equal(x_tf, x_np)
    assert y_np.tolist() == [1, 1, 2, 2]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_fit_and_evaluate_take_the_dataset(tmp_path, pipeline):
    root = _write_folder(str(tmp_path / "ds"), per_class=4)
    kwargs = dict(batch_size=4, cache_dir=str(tmp_path), pipeline=pipeline)
    train = load_dataset(root, split="train", augment=True, **kwargs)
    test = load_dataset(root, split="test", **kwargs)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(train, validation_data=test, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["val_loss"]).all()
    loss, accuracy = model.evaluate(test, verbose=0)
    assert 0.0 <= accuracy <= 1.0


def test_numpy_pipeline_is_deterministic_repeats_and_drops(tmp_path):
    root = _write_folder(str(tmp_path / "ds"), per_class=5)
    kwargs = dict(split="train", batch_size=4, augment=True, seed=7,
                  cache_dir=str(tmp_path), pipeline="numpy")  # fmt: skip
    first, again = load_dataset(root, **kwargs), load_dataset(root, **kwargs)
    for _ in range(2):  # two epochs: reshuffled, but the same in both runs
        a, b = _collect(first), _collect(again)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    dropped = load_dataset(root, drop_remainder=True, **kwargs)
    assert len(dropped) == 3 and _collect(dropped)[0].shape[0] == 12
    endless = load_dataset(root, repeat=True, **kwargs)
    batches = iter(endless)
    seen = [np.asarray(next(batches)[1]) for _ in range(8)]  # past one epoch
    assert all(len(labels) in (4, 3) for labels in seen)
    with pytest.raises(TypeError, match="no length"):
        len(endless)


def test_numpy_pipeline_crops_each_image_differently(tmp_path):
    root = _write_folder(str(tmp_path / "ds"), per_class=6)
    ds = load_dataset(root, split="train", batch_size=18, augment=True, seed=1,
                      cache_dir=str(tmp_path), pipeline="numpy")  # fmt: skip
    images = _collect(ds)[0]
    nonblank = images.max(axis=(1, 2, 3)) > 0
    zero_rows = (images[nonblank].max(axis=(2, 3)) == 0).sum(axis=1)
    assert len(set(zero_rows.tolist())) > 1
    assert zero_rows.max() <= 4  # at most the 4-pixel padding


@pytest.mark.skipif(
    BACKEND == "tensorflow", reason="on TensorFlow, tf.data is the default pipeline"
)
def test_default_pipeline_never_imports_tensorflow(tmp_path):
    """Archive, subset, augmentation, MixUp/CutMix and fit in a fresh process."""
    src = _write_folder(str(tmp_path / "src" / "ds"), per_class=4)
    archive = str(tmp_path / "ds.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="ds")
    code = f"""
import sys, keras
from specformer_keras.data import load_dataset
train = load_dataset({archive!r}, split="train", batch_size=4, subset=8,
                     augment=True, rand_augment=True, mixup=True, cutmix=True,
                     cache_dir={str(tmp_path / "cache")!r})
test = load_dataset({archive!r}, split="test", batch_size=4, one_hot=True,
                    cache_dir={str(tmp_path / "cache")!r})
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                          keras.layers.Dense(3)])
model.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
model.fit(train, validation_data=test, epochs=1, verbose=0)
assert "tensorflow" not in sys.modules, "tensorflow was imported"
print("ok", train.num_examples, test.class_names)
"""
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO_ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    result = subprocess.run([sys.executable, "-c", code], env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok 8 ['ant', 'bee', 'cat']" in result.stdout
