"""A small `robustness_curve` run: the curve resume and multi-process tests.

`curve_task(output_dir)` runs `robustness_curve` of
`evaluation_task.template_classifier` on 8 toy points (2 batches, PGD-3, 3
budgets: accuracy 1, 0.75 and 0 on the three backends).

    python tests/curve_task.py OUTPUT_DIR    # OUTPUT_DIR "-": nothing kept on disk

starts the engine of `specformer_keras.distributed` (the variables `launch.py`
sets) and prints one JSON line: ``{"curve", "layout", "written"}`` (the batch
files this process wrote, as ``eps-<eps>/<NN>-<attack>/<start>-<stop>``).
"""

import json
import sys

# tests/ is on the path: this file's folder when run as a script, pytest's too.
from evaluation_task import template_classifier
from testing import toy_data

CURVE = {"eps_list": [0.0, 0.2, 0.3], "attack": "pgd3", "batch_size": 4, "seed": 1}
POINTS = 8


def curve_task(output_dir=None, initialize=False, **overrides):
    """``{"curve", "layout"}`` of the toy curve (``overrides``: arguments changed)."""
    import keras

    from specformer_keras import distributed
    from specformer_keras.evaluation import robustness_curve

    if initialize:
        distributed.initialize()
    # Layer names as in a fresh process (the fingerprint ignores their numbering).
    keras.backend.clear_session()
    x, y = toy_data(n=POINTS, seed=7)
    arguments = {**CURVE, "output_dir": output_dir, **overrides}
    curve = robustness_curve(template_classifier(), (x, y), **arguments)
    return {"curve": curve, "layout": distributed.process_layout().to_dict()}


def record_writes():
    """Makes every `ResultStore.save` append its file (relative, no ``.json``) to a list."""
    import os

    from specformer_keras.evaluation.store import ResultStore

    written, save = [], ResultStore.save

    def recorded(store, *args, **kwargs):
        path = store.path(*args[:4])
        parts = path[: -len(".json")].split(os.sep)
        written.append("/".join([parts[-4], parts[-2], parts[-1]]))
        return save(store, *args, **kwargs)

    ResultStore.save = recorded
    return written


if __name__ == "__main__":
    folder = None if sys.argv[1] == "-" else sys.argv[1]
    written = record_writes()
    result = curve_task(folder, initialize=True)
    print(json.dumps({**result, "written": sorted(written)}))
