"""Two processes give the single-process `evaluate_robustness` report.

Both processes run ``worker.py evaluate`` (the toy task of
tests/evaluation_task.py: clean, PGD-5 and standard AutoAttack on 16 points,
batch size 8, so one batch per process), connected by the active backend's
engine on 127.0.0.1; each attacks its share of the batches, and both must
return the report of one process, per-point verdicts included, differing only
in ``layout``.
"""

import pytest
from launch import ENGINES, launch_with_reference
from testing import BACKEND


@pytest.mark.slow
def test_two_processes_give_the_single_process_report():
    args = ["evaluate", "16", "clean,pgd5,autoattack", "8"]
    single, multi = launch_with_reference(BACKEND, 2, args, timeout=240)
    assert single["layout"]["engine"] == "single"
    assert set(single["per_point"]) == {"clean", "pgd5", "autoattack", "worst_case"}
    assert all(len(v) == 16 for v in single["per_point"].values())
    # The task is not trivial: AutoAttack breaks some points, not all.
    assert 0 < single["accuracy"]["autoattack"] < single["accuracy"]["clean"]
    for index, report in enumerate(multi):
        assert report["layout"] == {
            "backend": BACKEND,
            "process_index": index,
            "process_count": 2,
            "local_devices": 1,
            "engine": ENGINES[BACKEND],
            "batch_size": 8,
        }
        for key in single:
            if key != "layout":
                assert report[key] == single[key], key
