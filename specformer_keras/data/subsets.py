"""Deterministic class-balanced subsets (for quick runs and every evaluation)."""

import numpy as np

from specformer_keras.utils.validation import check_int, check_seed


def balanced_subset(labels, size, seed=0):
    """Indices of a deterministic, class-balanced subset of `size` examples.

    Each class gets `size // num_classes` examples (the first
    `size % num_classes` classes one more), drawn without replacement with a
    NumPy generator seeded by `seed`; classes with too few examples give all
    they have. Indices are returned sorted.

    Args:
        labels: 1-D array of integer labels.
        size: Number of examples wanted (positive int).
        seed: Seed of the draw (int >= 0).

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
    size = check_int("size", size)
    seed = check_seed("seed", seed) or 0
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            "Argument `labels` must be a 1-D array of integer labels. "
            f"Received: labels.shape={labels.shape}"
        )
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
