"""`ImageDataset.slice_for_process`: k processes together feed one process's batches."""

import numpy as np
import pytest

from specformer_keras.data import ImageDataset
from specformer_keras.distributed import ProcessLayout


def _dataset(n=12, batch_size=4, **options):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, size=n)
    return ImageDataset(
        [], labels, ["a", "b", "c"], 8, batch_size, images=images, seed=5, **options
    )


def _layout(index, count):
    engine = "single" if count == 1 else "jax.distributed"
    return ProcessLayout("jax", index, count, 1, engine)


@pytest.mark.parametrize(
    "options",
    [
        {"shuffle": True, "augment": True},
        {"shuffle": True, "augment": True, "mixup": True},
    ],
)
@pytest.mark.parametrize("count", [2, 4])
def test_the_blocks_of_every_process_make_the_global_batches(options, count):
    whole = _dataset(**options)
    parts = [
        _dataset(**options).slice_for_process(_layout(i, count)) for i in range(count)
    ]
    for dataset in parts:
        assert len(dataset) == len(whole) == 3 and dataset.batch_size == 4
    for _ in range(2):  # two epochs: the shuffle and augmentation change
        for index in range(len(whole)):
            images, labels = whole[index]
            blocks = [dataset[index] for dataset in parts]
            assert all(len(b[1]) == 4 // count for b in blocks)
            np.testing.assert_array_equal(
                np.concatenate([b[0] for b in blocks]), images
            )
            np.testing.assert_array_equal(
                np.concatenate([b[1] for b in blocks]), labels
            )
        for dataset in (whole, *parts):
            dataset.on_epoch_end()


def test_a_process_decodes_only_its_block(monkeypatch):
    import specformer_keras.data.array_pipeline as pipeline

    rng = np.random.default_rng(3)
    pixels = {
        f"img{i}.jpg": rng.integers(0, 256, (8, 8, 3), np.uint8) for i in range(8)
    }
    read = []

    def fake_read(paths, image_size):
        read.append(list(paths))
        return np.stack([pixels[p] for p in paths])

    monkeypatch.setattr(pipeline, "read_images", fake_read)
    labels = np.arange(8) % 2

    def dataset():
        return ImageDataset(
            list(pixels), labels, ["a", "b"], 8, 4, shuffle=True, augment=True, seed=5
        )

    whole, part = dataset(), dataset().slice_for_process(_layout(1, 2))
    images, _ = whole[1]
    read.clear()
    block, _ = part[1]
    assert len(read) == 1 and len(read[0]) == 2  # 2 of the batch's 4 images
    np.testing.assert_array_equal(block, images[2:])


def test_one_process_is_unchanged():
    whole, single = _dataset(shuffle=True), _dataset(shuffle=True)
    single.slice_for_process(_layout(0, 1))
    for index in range(len(whole)):
        for a, b in zip(whole[index], single[index]):
            np.testing.assert_array_equal(a, b)


def test_a_batch_the_processes_cannot_split_is_refused():
    dataset = _dataset(n=11)
    assert dataset.batch_sizes() == [3, 4]
    dataset.slice_for_process(_layout(1, 2))
    assert len(dataset[0][1]) == 2
    with pytest.raises(ValueError, match="Batch 2 has 3 examples, which 2 processes"):
        dataset[2]


def test_slice_needs_a_layout():
    with pytest.raises(ValueError, match="must be a ProcessLayout. Received: layout=1"):
        _dataset().slice_for_process(1)
