"""Per-example random draws: the same point gets the same draws in any batch.

Every random start and random search of the attacks (PGD, APGD, APGD-T,
FAB-T restarts, Square) is drawn by `ExampleRandom`: one numpy generator per
example, seeded with ``[seed, *stream, example_id]``, where ``example_id`` is
the example's index in the evaluated set and ``stream`` names the attack and
its round (restart, target). A draw of ``size=(batch, ...)`` takes row ``i``
from example ``i``'s generator, so what a point gets does not depend on the
batch size, on the other points of its batch, on which process (shard)
evaluates it, or on where an interrupted evaluation resumed.

Example:

```python
import numpy as np
from specformer_keras.attacks.randomness import ExampleRandom

whole = ExampleRandom(0, (1, 0), np.arange(4)).uniform(-1, 1, size=(4, 3))
half = ExampleRandom(0, (1, 0), np.arange(2, 4)).uniform(-1, 1, size=(2, 3))
assert np.array_equal(whole[2:], half)
```
"""

import numbers

import numpy as np

from specformer_keras.utils.validation import check_choice, check_seed

__all__ = [
    "STREAMS",
    "AttackDraws",
    "ExampleRandom",
    "check_example_ids",
    "resolve_seed",
]

# First entry of the stream of each attack's draws (the rest: round indices).
STREAMS = {"pgd": 1, "apgd": 2, "apgd-t": 3, "fab-t": 4, "square": 5}


def check_example_ids(example_ids, n):
    """The global indices of a batch of ``n`` points, checked.

    Args:
        example_ids: None (the points are ``0 .. n - 1``) or ``n`` distinct
            integers >= 0 (the points' indices in the evaluated set).
        n: number of points in the batch.

    Returns:
        int64 numpy array of shape ``(n,)``.

    Raises:
        ValueError, TypeError: for ids of the wrong shape, type or range, or
            repeated ids.

    Example:

    ```python
    from specformer_keras.attacks.randomness import check_example_ids

    check_example_ids([10, 11, 12], 3)  # array([10, 11, 12])
    ```
    """
    if example_ids is None:
        return np.arange(n, dtype="int64")
    ids = np.asarray(example_ids)
    if ids.dtype == bool or not (
        np.issubdtype(ids.dtype, np.integer)
        or (ids.size == 0 and ids.dtype == np.float64)
    ):
        raise TypeError(
            "Argument `example_ids` must hold integers (the points' indices in the "
            f"evaluated set). Received: example_ids with dtype={ids.dtype}"
        )
    if ids.shape != (n,):
        raise ValueError(
            f"Argument `example_ids` must hold one index per point, shape ({n},). "
            f"Received: example_ids.shape={ids.shape}"
        )
    if n and ids.min() < 0:
        raise ValueError(
            "Argument `example_ids` must hold indices >= 0. "
            f"Received: example_ids with min={ids.min()}"
        )
    if np.unique(ids).size != n:
        raise ValueError(
            "Argument `example_ids` must hold distinct indices (repeated ids would "
            f"get the same random draws). Received: example_ids={ids.tolist()}"
        )
    return ids.astype("int64")


def resolve_seed(seed):
    """``seed``, or for None a fresh integer seed (drawn once per attack call).

    Example:

    ```python
    from specformer_keras.attacks.randomness import resolve_seed

    assert resolve_seed(3) == 3 and resolve_seed(None) >= 0
    ```
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    return int(seed)


class ExampleRandom:
    """A batch of numpy generators, one per example, with Generator-like draws.

    Args:
        seed: integer >= 0 (see `resolve_seed`).
        stream: tuple of integers >= 0 naming the attack and round (see
            ``STREAMS``).
        example_ids: the examples' global indices (from `check_example_ids`).

    Each method takes ``size=(batch, ...)`` with ``batch == len(example_ids)``
    and returns row ``i`` drawn from generator ``i`` (``size[1:]`` numbers
    each, in the order numpy draws them), so a point's draws are the same in
    any batch.
    """

    def __init__(self, seed, stream, example_ids):
        if not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(
                f"Argument `seed` must be an integer >= 0. Received: seed={seed!r}"
            )
        base = [int(seed), *(int(s) for s in stream)]
        self.generators = [np.random.default_rng(base + [int(i)]) for i in example_ids]

    def _stack(self, size, draw):
        size = tuple(size)
        if not size or size[0] != len(self.generators):
            raise ValueError(
                f"ExampleRandom draws need size=(batch, ...) with batch="
                f"{len(self.generators)}. Received: size={size}"
            )
        rows = [np.asarray(draw(rng, size[1:])) for rng in self.generators]
        if not rows:
            return np.zeros(size)
        return np.stack(rows)

    def uniform(self, low=0.0, high=1.0, size=None):
        """Like ``Generator.uniform``, row by row."""
        return self._stack(size, lambda rng, shape: rng.uniform(low, high, size=shape))

    def standard_normal(self, size=None):
        """Like ``Generator.standard_normal``, row by row."""
        return self._stack(size, lambda rng, shape: rng.standard_normal(size=shape))

    def choice(self, values, size=None):
        """Like ``Generator.choice`` (with replacement), row by row."""
        return self._stack(size, lambda rng, shape: rng.choice(values, size=shape))


class AttackDraws:
    """The random draws of one attack call: its seed, stream and the points' ids.

    Checks ``seed`` and ``example_ids`` once, and hands out an `ExampleRandom`
    per round for the points still being attacked, so every attack names its
    stream in one place.

    Args:
        attack: key of ``STREAMS`` (``"pgd"``, ``"apgd"``, ...).
        seed: integer >= 0, or None for a fresh seed drawn once for the call.
        example_ids: None or the points' global indices (see
            `check_example_ids`).
        n: number of points of the call.

    Raises:
        ValueError, TypeError: for a bad seed or bad ids (the message names the
            argument).

    Example:

    ```python
    import numpy as np
    from specformer_keras.attacks.randomness import AttackDraws

    draws = AttackDraws("pgd", seed=0, example_ids=None, n=4)
    start = draws.rng(np.arange(2, 4), 0).uniform(-1, 1, size=(2, 3))
    ```
    """

    def __init__(self, attack, seed, example_ids, n):
        check_choice("attack", attack, tuple(STREAMS))
        self.stream = STREAMS[attack]
        self.seed = resolve_seed(check_seed("seed", seed))
        self.ids = check_example_ids(example_ids, n)

    def rng(self, index, *rounds):
        """`ExampleRandom` for the points ``index`` of the call in round ``rounds``."""
        return ExampleRandom(self.seed, (self.stream, *rounds), self.ids[index])
