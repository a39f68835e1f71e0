"""Image decoding with PIL, the same on every backend; errors name the file."""

import concurrent.futures
import os

import numpy as np


class CorruptImageError(ValueError):
    """An image file is empty, truncated or not an image; the message names it."""


def read_image(path, image_size=None):
    """Decodes one image file into a uint8 `(size, size, 3)` RGB array.

    Args:
        path: The image file (JPEG, PNG, BMP or GIF; the first frame of a GIF).
        image_size: Side to resize to (bilinear, antialiased), or None to keep
            the image as it is.

    Returns:
        A uint8 NumPy array of shape `(height, width, 3)`.

    Raises:
        CorruptImageError: The file is empty, truncated or not an image.

    Example:

    ```python
    import os, tempfile
    import numpy as np
    import keras
    from specformer_keras.data import read_image

    path = os.path.join(tempfile.mkdtemp(), "x.png")
    keras.utils.save_img(path, np.full((6, 4, 3), 7, "uint8"), scale=False)
    assert read_image(path).shape == (6, 4, 3)
    assert read_image(path, image_size=8).shape == (8, 8, 3)
    ```
    """
    from PIL import Image

    path = os.fsdecode(path)
    try:
        if os.path.getsize(path) == 0:
            raise CorruptImageError(f"Cannot decode image {path}: the file is empty.")
        with Image.open(path) as image:
            image = image.convert("RGB")  # reads (and checks) the whole file
            if image_size is not None and image.size != (image_size, image_size):
                image = image.resize(
                    (image_size, image_size), Image.Resampling.BILINEAR
                )
            return np.asarray(image, dtype=np.uint8)
    except CorruptImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise CorruptImageError(
            f"Cannot decode image {path}: it is truncated, corrupt or not an image "
            f"({type(error).__name__}: {error}). Remove or replace the file."
        ) from None


def default_threads():
    """Decoding threads: the CPUs this process may use, at most 16."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        count = os.cpu_count() or 1
    return max(1, min(16, count))


def read_images(paths, image_size, threads=None):
    """Decodes `paths` into one uint8 array `(n, image_size, image_size, 3)`.

    PIL releases the GIL while it decodes, so a thread pool scales with cores.

    Args:
        paths: Image files.
        image_size: Side every image is resized to.
        threads: Decoding threads (default `default_threads()`).

    Returns:
        A uint8 NumPy array.

    Raises:
        CorruptImageError: A file cannot be decoded (the message names it).
    """
    out = np.empty((len(paths), image_size, image_size, 3), dtype=np.uint8)

    def fill(i):
        out[i] = read_image(paths[i], image_size)

    threads = threads or default_threads()
    if threads == 1 or len(paths) < 64:
        for i in range(len(paths)):
            fill(i)
        return out
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(fill, range(len(paths)), chunksize=64):
            pass
    return out
