"""Input-pipeline throughput (images/s) on the CIFAR-10 JPEG archive.

Decides the data path without TensorFlow by measurement: it times one epoch
(decode + batch of 128, 32x32 RGB JPEGs) over the same class-balanced slice of
the training split for each candidate that the environment can run:

* `tf.data`: `keras.utils.image_dataset_from_directory(format="tf")`
  (the TensorFlow path; needs TensorFlow);
* `grain`: `keras.utils.image_dataset_from_directory(format="grain")`
  (Keras's own non-TF path: PIL decode, then one backend `ops.image.resize`
  per image);
* `PIL, 1 thread` / `PIL, N threads`: `PIL.Image.open(...).convert("RGB")` into
  a uint8 array, the decoder of `specformer_keras.data`'s non-TF path;
* `load_dataset (first epoch)` and `load_dataset (cached epoch, augment)`:
  the package's own `load_dataset` on the active backend (decode once into
  memory, then crop/flip per batch).

Each row is the best of `--repeats` epochs (the machine is shared: best-of is
the least noisy estimate of what the code costs). Run once per environment:

    KERAS_BACKEND=jax python benchmarks/input_pipeline.py --images=10000
    KERAS_BACKEND=tensorflow python benchmarks/input_pipeline.py --images=10000
"""

import argparse
import concurrent.futures
import importlib.util
import os
import sys
import time

ARCHIVE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "shared",
    "data",
    "cifar10-jpeg.tar.gz",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=ARCHIVE)
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache_dir", default=None)
    return parser.parse_args(argv)


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np
    from PIL import Image

    from specformer_keras.data import extract_archive, load_dataset
    from specformer_keras.data.sources import resolve_split_folder

    folder = extract_archive(args.archive, args.cache_dir)
    # The same class-balanced slice for every candidate: a folder of links.
    train = resolve_split_folder(folder, "train")
    slice_dir = os.path.join(
        os.path.dirname(folder), f"bench-slice-{args.images}-{os.path.basename(folder)}"
    )
    classes = sorted(os.listdir(train))
    per_class = args.images // len(classes)
    if not os.path.isdir(slice_dir):
        partial = slice_dir + ".partial"
        for name in classes:
            os.makedirs(os.path.join(partial, name), exist_ok=True)
            for f in sorted(os.listdir(os.path.join(train, name)))[:per_class]:
                os.symlink(os.path.join(train, name, f), os.path.join(partial, name, f))
        os.rename(partial, slice_dir)
    paths = [
        os.path.join(slice_dir, name, f)
        for name in classes
        for f in sorted(os.listdir(os.path.join(slice_dir, name)))
    ]
    n = len(paths)
    rows = []

    def record(name, seconds):
        rows.append((name, n / seconds))
        print(f"  {name}: {n / seconds:,.0f} images/s", file=sys.stderr, flush=True)

    if (
        importlib.util.find_spec("tensorflow")
        and keras.config.backend() == "tensorflow"
    ):

        def tf_epoch():
            ds = keras.utils.image_dataset_from_directory(
                slice_dir, batch_size=args.batch_size, image_size=(32, 32),
                shuffle=False, follow_links=True, verbose=False,
            )  # fmt: skip
            for _ in ds:
                pass

        record("tf.data image_dataset_from_directory", best_of(args.repeats, tf_epoch))

    if importlib.util.find_spec("grain"):

        def grain_epoch():
            ds = keras.utils.image_dataset_from_directory(
                slice_dir, batch_size=args.batch_size, image_size=(32, 32),
                shuffle=False, follow_links=True, verbose=False, format="grain",
            )  # fmt: skip
            for _ in ds:
                pass

        record("grain image_dataset_from_directory", best_of(1, grain_epoch))

    def pil(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    def pil_epoch(threads):
        def run():
            if threads == 1:
                out = [pil(p) for p in paths]
            else:
                with concurrent.futures.ThreadPoolExecutor(threads) as pool:
                    out = list(pool.map(pil, paths, chunksize=64))
            np.stack(out)

        return run

    record("PIL decode, 1 thread", best_of(args.repeats, pil_epoch(1)))
    if args.threads > 1:
        record(
            f"PIL decode, {args.threads} threads",
            best_of(args.repeats, pil_epoch(args.threads)),
        )

    def first_epoch():
        ds = load_dataset(
            slice_dir, split=None, batch_size=args.batch_size, shuffle=False,
            cache_dir=args.cache_dir,
        )  # fmt: skip
        for _ in ds:
            pass

    record("load_dataset, first epoch", best_of(args.repeats, first_epoch))
    ds = load_dataset(
        slice_dir, split=None, batch_size=args.batch_size, shuffle=True, augment=True,
        cache_dir=args.cache_dir,
    )  # fmt: skip
    for _ in ds:
        pass

    def cached_epoch():
        for _ in ds:
            pass

    record(
        "load_dataset, cached epoch, shuffle + crop/flip",
        best_of(args.repeats, cached_epoch),
    )
    print(
        f"\n{n} CIFAR-10 JPEGs (32x32), batch {args.batch_size}, "
        f"backend {keras.config.backend()}, best of {args.repeats}\n"
    )
    print("| pipeline | images/s |\n|---|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
