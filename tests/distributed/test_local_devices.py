"""Within one process the JAX attacks split each batch over all local devices.

This file runs itself as a script twice, in fresh processes with
``XLA_FLAGS=--xla_force_host_platform_device_count=1`` and ``=2`` (device setup
must happen before JAX starts): PGD (5 points: padded to 6 on 2 devices),
standard AutoAttack and `evaluate_robustness` (clean, PGD-5, AutoAttack) on
the template model and data of tests/evaluation_task.py. Each run records
the sharding of every batch the compiled runners receive
(`jax_attacks.place`). On 2 devices every batch must be sharded over both,
and the adversarial examples and per-point verdicts must be those of the
1-device run; a `keras.distribution.DataParallel` set by the user is
followed (its mesh, its batch axis name) instead of a new mesh.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from testing import BACKEND, REPO_ROOT

pytestmark = pytest.mark.skipif(
    BACKEND != "jax",
    reason=f"running {BACKEND}: only the JAX runner splits a batch over local "
    "devices; on TensorFlow and torch a process attacks on one device and several "
    "devices mean one process each (docs/distributed.md, Sharded evaluation)",
)

N_PGD = 5
N_AUTOATTACK = 4
N_EVALUATE = 8
_RUNS = {}
REPORT_KEYS = ("per_point", "accuracy", "autoattack_broken_by", "n")


def run_workers():
    """This file as a script on 1 and on 2 host devices, side by side (once)."""
    if not _RUNS:
        env = dict(os.environ)
        for name in ("TF_CONFIG", "JAX_COORDINATOR_ADDRESS", "WORLD_SIZE", "RANK"):
            env.pop(name, None)
        tests = os.path.join(REPO_ROOT, "tests")
        env.update(
            KERAS_BACKEND="jax",
            JAX_PLATFORMS="cpu",
            CUDA_VISIBLE_DEVICES="",
            PYTHONPATH=os.pathsep.join([REPO_ROOT, tests, env.get("PYTHONPATH", "")]),
        )
        processes = {
            devices: subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)],
                env=dict(
                    env, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}"
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for devices in (1, 2)
        }
        try:
            for devices, process in processes.items():
                out, err = process.communicate(timeout=300)
                assert process.returncode == 0, err[-4000:]
                _RUNS[devices] = json.loads(out.strip().splitlines()[-1])
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return _RUNS[1], _RUNS[2]


def test_batches_are_sharded_over_both_devices():
    single, multi = run_workers()
    assert single["local_devices"] == 1 and multi["local_devices"] == 2
    # One device: nothing is placed on a mesh.
    assert single["shardings"] and all(s is None for s in single["shardings"])
    # Two devices: every compiled call (PGD, the AutoAttack components,
    # preflight's gradient check of a batch of 4) got its batch sharded.
    assert multi["shardings"] and all(
        s == {"devices": 2, "spec": ["batch"], "rows": s["rows"]}
        for s in multi["shardings"]
    ), multi["shardings"]
    assert all(s["rows"] % 2 == 0 for s in multi["shardings"])
    # PGD's 5 points were padded to 6 rows (one device: 5).
    assert multi["pgd_rows"] == [6] and single["pgd_rows"] == [5]


def test_results_equal_one_device():
    single, multi = run_workers()
    for name in ("pgd", "autoattack"):
        a, b = np.array(single[name]), np.array(multi[name])
        assert a.shape == b.shape and a.shape[0] in (N_PGD, N_AUTOATTACK)
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0, err_msg=name)
    assert multi["autoattack_robust"] == single["autoattack_robust"]
    # The task is not trivial: AutoAttack breaks some points, not all.
    assert 0 < sum(single["autoattack_robust"]) < N_AUTOATTACK
    for key in REPORT_KEYS:
        assert multi["report"][key] == single["report"][key], key
    assert single["report"]["layout"]["local_devices"] == 1
    assert multi["report"]["layout"]["local_devices"] == 2


def test_a_keras_distribution_mesh_is_followed():
    single, multi = run_workers()
    assert multi["data_parallel_shardings"] == [
        {"devices": 2, "spec": ["data"], "rows": N_PGD + 1}
    ]
    np.testing.assert_allclose(
        np.array(multi["data_parallel_pgd"]), np.array(single["pgd"]), atol=1e-5, rtol=0
    )


def _worker():
    import jax
    import keras
    from evaluation_task import EPS, template_classifier
    from testing import toy_data

    from specformer_keras.attacks import autoattack, pgd
    from specformer_keras.backend import jax_attacks
    from specformer_keras.evaluation import evaluate_robustness

    shardings, rows = [], []
    original_place = jax_attacks.place

    def recording_place(arrays, variables):
        placed, placed_variables = original_place(arrays, variables)
        sharding = getattr(placed[0], "sharding", None)
        shardings.append(
            None
            if sharding is None
            else {
                "devices": len(sharding.device_set),
                "spec": list(sharding.spec),
                "rows": int(placed[0].shape[0]),
            }
        )
        rows.append(int(np.shape(placed[0])[0]))
        return placed, placed_variables

    jax_attacks.place = recording_place
    result = {"local_devices": jax.local_device_count()}

    # One model for every attack; AutoAttack and evaluate_robustness share
    # batches of 4 points (the report reuses the compiled components).
    model = template_classifier()
    x, y = toy_data(n=N_EVALUATE, seed=7)
    pgd_settings = dict(eps=EPS, step_size=EPS / 4, steps=5, seed=0)
    result["pgd"] = pgd(model, x[:N_PGD], y[:N_PGD], **pgd_settings).tolist()
    result["pgd_rows"] = list(rows)
    x_adv = autoattack(model, x[:N_AUTOATTACK], y[:N_AUTOATTACK], EPS, seed=1)
    predicted = np.asarray(model(x_adv)).argmax(-1)
    result["autoattack"] = x_adv.tolist()
    result["autoattack_robust"] = (predicted == y[:N_AUTOATTACK]).tolist()
    report = evaluate_robustness(
        model,
        (x, y),
        attacks=("clean", "pgd5", "autoattack"),
        eps=EPS,
        batch_size=4,
        seed=1,
        verbose=False,
    )
    result["report"] = {key: report[key] for key in REPORT_KEYS + ("layout",)}
    result["shardings"] = list(shardings)

    if jax.local_device_count() > 1:
        # PGD again under a DataParallel whose mesh axis is "data" (a new
        # model: its variables replicated on that mesh).
        shardings.clear()
        mesh = keras.distribution.DeviceMesh(
            (2,), ["data"], devices=keras.distribution.list_devices()
        )
        keras.distribution.set_distribution(keras.distribution.DataParallel(mesh))
        result["data_parallel_pgd"] = pgd(
            template_classifier(), x[:N_PGD], y[:N_PGD], **pgd_settings
        ).tolist()
        result["data_parallel_shardings"] = list(shardings)
    print(json.dumps(result))


if __name__ == "__main__":
    _worker()
