"""Running `evaluate_robustness`'s attacks batch by batch, or reading them back.

`BatchRunner.batch` gives one batch's per-point results of every attack (and
of the more-steps reruns): read back from the `ResultStore` when a previous
run finished them, else computed and written there at once. `merge_batches`
puts the batches of all processes back in data order; `ProgressBars` shows a
tqdm bar per attack.

Example:

```python
import keras, numpy as np
from specformer_keras.evaluation.batches import BatchRunner, ProgressBars
from specformer_keras.evaluation.specs import resolve_attacks

model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
resolved, extra = resolve_attacks(("clean", "fgsm"), 0.1, "linf", 8)
runner = BatchRunner(model, resolved, extra, 0.1, "linf", 0, 0, None)
x = np.full((2, 4), 0.5, "float32")
record = runner.batch(0, x, np.array([0, 1]), ProgressBars([], None, None, False))
assert record["attacks"]["fgsm"]["robust"].shape == (2,)
```
"""

import time

import numpy as np

from specformer_keras.attacks.norms import within_budget
from specformer_keras.attacks.runner import predict_labels, predict_logits
from specformer_keras.evaluation.model_checks import check_finite_logits, preflight
from specformer_keras.evaluation.store import data_fingerprint

__all__ = ["BatchRunner", "ProgressBars", "count_batch", "merge_batches"]


class BatchRunner:
    """One evaluation's attacks, run (or read back) batch by batch.

    Args:
        model: the model evaluated.
        resolved: the `AttackSpec` list; ``extra``: the more-steps reruns.
        eps, norm, seed: the threat model and the seed of every attack.
        sanity_points: the more-steps reruns cover points ``[0, sanity_points)``.
        store: a `ResultStore`, or None.
    """

    def __init__(self, model, resolved, extra, eps, norm, seed, sanity_points, store):
        self.model, self.resolved, self.extra = model, resolved, extra
        self.eps, self.norm, self.seed = eps, norm, seed
        self.sanity_points, self.store = sanity_points, store
        self.names = [attack.name for attack in resolved]
        self.unavailable = {}
        self.checked = None

    def preflight(self, x, y, needs_gradient):
        """The model checks of `preflight` on the first batch of the data."""
        self.checked = preflight(
            self.model,
            x,
            y,
            logits=predict_logits(self.model, x),
            needs_gradient=needs_gradient,
            context="evaluate_robustness",
        )

    def batch(self, start, x, y, bars):
        """Per-point results of every attack on the points ``[start, start + len(x))``.

        Returns:
            ``{"start", "stop", "clean", "attacks": {name: entry},
            "more_steps": {name: robust}}`` where an entry holds ``robust``
            and ``within_budget`` (boolean arrays, None when unavailable),
            ``seconds``, ``log`` and ``unavailable`` (None or the reason).
        """
        stop = start + x.shape[0]
        clean_logits = predict_logits(self.model, x)
        check_finite_logits(clean_logits, "evaluate_robustness")
        clean = clean_logits.argmax(axis=-1) == y
        ids = np.arange(start, stop)
        digest = data_fingerprint(x, y)
        record = {"start": start, "stop": stop, "clean": clean, "attacks": {}}
        for index, attack in enumerate(self.resolved):
            entry = self._load(index, attack.name, start, stop, digest)
            if entry is None:
                entry = self._attack(attack, x, y, clean, ids)
                self._save(index, attack.name, start, stop, digest, entry)
                bars.update(attack.name, computed=True)
            else:
                bars.update(attack.name, computed=False)
            if entry["unavailable"] is not None:
                self.unavailable.setdefault(attack.name, entry["unavailable"])
            record["attacks"][attack.name] = entry
            bars.postfix(attack.name, entry)
        record["more_steps"] = self._more_steps(start, x, y, clean, ids, digest)
        return record

    def _load(self, index, name, start, stop, digest, length=None):
        if self.store is None:
            return None
        return self.store.load(index, name, start, stop, digest, length)

    def _save(self, index, name, start, stop, digest, entry):
        if self.store is not None:
            self.store.save(index, name, start, stop, digest, entry)

    def _attack(self, attack, x, y, clean, ids):
        entry = {"unavailable": None, "robust": None, "within_budget": None}
        entry.update(seconds=0.0, log=None)
        if attack.name in self.unavailable:
            entry["unavailable"] = self.unavailable[attack.name]
            return entry
        begin = time.perf_counter()
        try:
            x_adv, log = attack.run(self.model, x, y, self.seed, example_ids=ids)
            x_adv = np.asarray(x_adv, "float32")
        except NotImplementedError as error:
            entry["unavailable"] = str(error)
            return entry
        entry["seconds"] = time.perf_counter() - begin
        valid = within_budget(x_adv, x, self.eps, self.norm)
        fooled = (predict_labels(self.model, x_adv) != y) & valid
        entry.update(robust=clean & ~fooled, within_budget=valid, log=log)
        return entry

    def _more_steps(self, start, x, y, clean, ids, digest):
        """The more-steps reruns on the batch's share of the first points."""
        room = min(self.sanity_points - start, x.shape[0])
        results = {}
        if room <= 0:
            return results
        for name, attack in self.extra.items():
            if name in self.unavailable:
                continue
            key = f"more_steps-{name}"
            entry = self._load("x", key, start, start + room, digest, room)
            if entry is None:
                x_part, y_part = x[:room], y[:room]
                begin = time.perf_counter()
                x_adv, _ = attack.run(self.model, x_part, y_part, self.seed, ids[:room])
                fooled = predict_labels(self.model, x_adv) != y_part
                valid = np.ones(room, bool)
                entry = {"robust": clean[:room] & ~fooled, "within_budget": valid}
                entry.update(unavailable=None, log=None)
                entry["seconds"] = time.perf_counter() - begin
                self._save("x", key, start, start + room, digest, entry)
            results[name] = entry["robust"]
        return results


def merge_batches(records, n):
    """The batch records of all processes in data order, checked to cover ``[0, n)``."""
    records = sorted(records, key=lambda record: record["start"])
    position = 0
    for record in records:
        if record["start"] != position:
            raise RuntimeError(
                f"evaluate_robustness: the gathered batches do not cover the data "
                f"(points [{position}, {record['start']}) missing or repeated); did "
                "every process iterate the same data?"
            )
        position = record["stop"]
    if position != n:
        raise RuntimeError(
            f"evaluate_robustness: the gathered batches cover {position} of {n} points"
        )
    return records


def count_batch(bar, computed):
    """Counts one batch on the tqdm ``bar`` (None: nothing).

    A batch read back from ``output_dir`` (``computed=False``) counts as done
    but not in the rate, so the ETA is that of the batches still to compute.
    """
    if bar is None:
        return
    if computed:
        bar.update(1)
    else:
        bar.n += 1
        bar.initial += 1
        bar.refresh()


class ProgressBars:
    """One tqdm bar per attack (batches done, with an ETA), or nothing.

    Args:
        names: the attacks' names.
        owned: `owned_batches` of this process (for the totals).
        source: the `DataSource` (its ``total``, if known).
        verbose: False: no bars.
    """

    def __init__(self, names, owned, source, verbose):
        self.bars = {}
        if not verbose:
            return
        from tqdm.auto import tqdm

        total = None
        if source.total is not None:
            total = sum(owned(i) for i in range(source.total))
        for position, name in enumerate(names):
            self.bars[name] = tqdm(
                total=total, desc=f"{name:>12}", unit="batch", position=position
            )

    def update(self, name, computed):
        count_batch(self.bars.get(name), computed)

    def postfix(self, name, entry):
        bar = self.bars.get(name)
        if bar is not None and entry["robust"] is not None:
            bar.robust = getattr(bar, "robust", 0) + int(entry["robust"].sum())
            bar.points = getattr(bar, "points", 0) + entry["robust"].size
            bar.set_postfix(accuracy=f"{bar.robust / bar.points:.3f}", refresh=False)

    def close(self):
        for bar in self.bars.values():
            bar.close()
