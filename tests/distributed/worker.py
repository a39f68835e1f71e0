"""One process of a multi-process test (started by launch.py); prints one JSON line.

python worker.py allgather      # allgather_objects + layout + shard_indices
"""

import json
import sys


def allgather():
    import numpy as np

    from specformer_keras import distributed

    layout = distributed.initialize()
    i = layout.process_index
    # Objects of different sizes and types per process.
    obj = {"index": i, "array": np.arange(3 + 5 * i, dtype=np.float32) * (i + 1)}
    obj["text"] = "x" * (1000 * i)
    gathered = distributed.allgather_objects(obj)
    shard = distributed.shard_indices(11, layout)
    shards = distributed.allgather_objects(shard)
    return {
        "layout": layout.to_dict(),
        "gathered": [
            {"index": g["index"], "array": g["array"].tolist(), "text": len(g["text"])}
            for g in gathered
        ],
        "shards": [s.tolist() for s in shards],
    }


TASKS = {"allgather": allgather}

if __name__ == "__main__":
    task, *args = sys.argv[1:]
    print(json.dumps(TASKS[task](*args)))
