"""The input pipeline without TensorFlow: a `keras.utils.PyDataset` of NumPy batches.

Chosen over `keras.utils.image_dataset_from_directory(format="grain")` by
measurement (`benchmarks/input_pipeline.py`, docs/benchmarks.md): Keras's grain
path decodes with PIL too but then resizes each image with a backend op, which
on JAX and torch costs more than the decode; and it cannot keep a training
split's class ids for a split that lacks a class.
"""

import keras
import numpy as np

from specformer_keras.data.decode import read_images


class ImageDataset(keras.utils.PyDataset):
    """Batches of `(float32 images in [0, 1], int32 labels)` as NumPy arrays.

    What `load_dataset` returns on JAX and torch (and with `pipeline="numpy"`):
    a `keras.utils.PyDataset`, so `model.fit`, `evaluate` and `predict` take it
    on every backend, and `for images, labels in dataset` runs one epoch.
    Images are decoded once into memory (`images` given) or per batch from
    `paths`. Each epoch reshuffles (with `shuffle`) from `seed` and the epoch
    number, so a run is the same every time; random crop after zero padding and
    horizontal flip are drawn per image in NumPy, RandAugment, MixUp and CutMix
    are the Keras core layers applied per batch.

    Args:
        paths: Image files (used when `images` is None).
        labels: int32 labels, one per file.
        class_names: The dataset's class list.
        image_size: Side of the square images.
        batch_size: Examples per batch.
        images: Decoded uint8 images `(n, size, size, 3)`, or None to decode
            each batch from `paths`.
        shuffle: Reshuffle every epoch.
        seed: Seed of the shuffle and the augmentation.
        augment: Random crop after 4-pixel zero padding and horizontal flip.
        rand_augment: `keras.layers.RandAugment` per batch.
        mixup: `keras.layers.MixUp` per batch (with `cutmix`, one of the two
            per batch); labels become one-hot float32.
        cutmix: `keras.layers.CutMix` per batch, likewise.
        one_hot: One-hot float32 labels without mixing.
        drop_remainder: Drop the last incomplete batch.
        repeat: An endless dataset (pass `steps_per_epoch` to `fit`).

    Attributes:
        class_names, num_classes, num_examples, image_size: As on the
            `tf.data` pipeline. `len(dataset)` is the number of batches per epoch.

    Several processes (`jax.distributed` with `keras.distribution.DataParallel`
    and ``auto_shard_dataset=False``) each feed their slice of every global
    batch: `slice_for_process(layout)` makes every batch the layout's
    contiguous block of the global batch (`batch_size` stays the global batch
    size), built as one process builds it, so the processes together feed one
    process's batches.

    Example:

    ```python
    import numpy as np

    from specformer_keras.data import ImageDataset
    from specformer_keras.distributed import ProcessLayout

    images = np.zeros((8, 4, 4, 3), "uint8")
    whole = ImageDataset([], np.arange(8) % 2, ["a", "b"], 4, 4, images=images)
    part = ImageDataset([], np.arange(8) % 2, ["a", "b"], 4, 4, images=images)
    part.slice_for_process(ProcessLayout("jax", 1, 2, 1, "jax.distributed"))
    assert (part[0][1] == whole[0][1][2:]).all() and len(part) == len(whole)
    ```
    """

    def __init__(
        self,
        paths,
        labels,
        class_names,
        image_size,
        batch_size,
        images=None,
        shuffle=False,
        seed=0,
        augment=False,
        rand_augment=False,
        mixup=False,
        cutmix=False,
        one_hot=False,
        drop_remainder=False,
        repeat=False,
        padding=4,
    ):
        super().__init__(workers=1, use_multiprocessing=False)
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype="int32")
        self.images = images
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.num_examples = len(self.labels)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.padding = int(padding) if augment else 0
        self.one_hot = bool(one_hot or mixup or cutmix)
        self.drop_remainder = bool(drop_remainder)
        self.repeat = bool(repeat)
        self._epoch = 0
        self._orders = {}
        self._process = (0, 1)  # (index, count): this process's block of a batch
        self._rand_augment = (
            keras.layers.RandAugment(value_range=(0.0, 1.0), seed=seed)
            if rand_augment
            else None
        )
        self._mixers = []
        if mixup:
            self._mixers.append(keras.layers.MixUp(seed=seed))
        if cutmix:
            self._mixers.append(keras.layers.CutMix(seed=seed))
        if self.drop_remainder:
            self._batches = self.num_examples // self.batch_size
        else:
            self._batches = -(-self.num_examples // self.batch_size)

    @property
    def num_batches(self):
        return None if self.repeat else self._batches

    def __len__(self):
        if self.repeat:
            raise TypeError("An endless (repeat=True) dataset has no length.")
        return self._batches

    def slice_for_process(self, layout):
        """Feed only `layout`'s contiguous block of every global batch.

        Process ``i`` of ``k`` gets rows ``i * b // k`` to ``(i + 1) * b // k``
        of each global batch of ``b`` examples (the last one included), so
        ``k`` processes together feed the batches of one process. Every
        batch's size must be divisible by ``k`` (a batch that is not raises
        when it is read). With one process nothing changes.

        Args:
            layout: a `specformer_keras.distributed.ProcessLayout`.

        Returns:
            This dataset.

        Raises:
            ValueError: `layout` is not a `ProcessLayout`.
        """
        from specformer_keras.distributed import ProcessLayout

        if not isinstance(layout, ProcessLayout):
            raise ValueError(
                f"Argument `layout` must be a ProcessLayout. Received: layout={layout!r}"
            )
        self._process = (layout.process_index, layout.process_count)
        return self

    def batch_sizes(self):
        """The distinct global batch sizes of one epoch (the last may be smaller)."""
        sizes = {self.batch_size}
        if self._batches and self._batches * self.batch_size > self.num_examples:
            sizes.add(self.num_examples - (self._batches - 1) * self.batch_size)
        return sorted(sizes)

    def on_epoch_end(self):
        self._epoch += 1

    def __iter__(self):
        """One epoch of batches (endless with `repeat=True`)."""
        if self.repeat:
            index = 0
            while True:
                yield self[index]
                index += 1
        for index in range(self._batches):
            yield self[index]
        self.on_epoch_end()

    def _order(self, epoch):
        if not self.shuffle:
            return None
        if epoch not in self._orders:
            self._orders = {  # keep the last two (the adapter may read ahead)
                k: v for k, v in self._orders.items() if k >= epoch - 1
            }
            rng = np.random.default_rng([self.seed, epoch])
            self._orders[epoch] = rng.permutation(self.num_examples)
        return self._orders[epoch]

    def __getitem__(self, index):
        if self.repeat:
            epoch, index = divmod(int(index), self._batches)
        else:
            epoch, index = self._epoch, int(index)
            if not 0 <= index < self._batches:
                raise IndexError(
                    f"Batch index {index} out of range for {self._batches} batches."
                )
        start = index * self.batch_size
        chosen = np.arange(start, min(start + self.batch_size, self.num_examples))
        order = self._order(epoch)
        if order is not None:
            chosen = order[chosen]
        size = len(chosen)
        # Crop and flip act per image, so a process decodes only its block; RandAugment
        # and MixUp/CutMix act on the whole batch, which is then built and sliced.
        rows = None
        if self._process[1] > 1 and not self._mixers and self._rand_augment is None:
            rows = self._block_rows(size, index)
            chosen = chosen[rows]
        if self.images is not None:
            images = self.images[chosen]
        else:
            images = read_images([self.paths[i] for i in chosen], self.image_size)
        labels = self.labels[chosen]
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        images = images.astype("float32") / 255.0
        if self.augment:
            images = _crop_and_flip(images, self.padding, rng, size, rows)
        if self._rand_augment is not None:
            images = keras.ops.convert_to_numpy(self._rand_augment(images))
            images = np.clip(images, 0.0, 1.0).astype("float32")
        if self.one_hot:
            labels = np.eye(self.num_classes, dtype="float32")[labels]
        if self._mixers:
            mixer = self._mixers[int(rng.integers(len(self._mixers)))]
            mixed = mixer({"images": images, "labels": labels})
            images = keras.ops.convert_to_numpy(mixed["images"]).astype("float32")
            labels = keras.ops.convert_to_numpy(mixed["labels"]).astype("float32")
        if rows is not None or self._process[1] == 1:
            return images, labels
        rows = self._block_rows(len(labels), index)
        return images[rows], labels[rows]

    def _block_rows(self, size, index):
        """The rows of this process's block in a global batch of ``size`` examples."""
        process, count = self._process
        if size % count:
            raise ValueError(
                f"Batch {index} has {size} examples, which {count} processes "
                "cannot split evenly: choose a batch size and a number of "
                f"examples (now {self.num_examples}, batch_size={self.batch_size}) "
                f"whose batches are multiples of {count}."
            )
        return slice(process * size // count, (process + 1) * size // count)


def _crop_and_flip(images, padding, rng, batch_size, rows=None):
    """Per image: random crop after zero padding, then a random horizontal flip.

    The draws are made for the whole batch of ``batch_size`` images; ``images``
    are its ``rows`` (a slice; all of them when None), so a block gets the
    draws it would get inside the whole batch.
    """
    rows = slice(None) if rows is None else rows
    size = images.shape[1]
    if padding:
        padded = np.pad(
            images, ((0, 0), (padding, padding), (padding, padding), (0, 0))
        )
        offsets = rng.integers(0, 2 * padding + 1, size=(batch_size, 2))[rows]
        images = np.stack(
            [padded[i, r : r + size, c : c + size] for i, (r, c) in enumerate(offsets)]
        )
    flip = (rng.random(batch_size) < 0.5)[rows]
    images[flip] = images[flip, :, ::-1]
    return images
