"""Two processes give the single-process `robustness_curve`, into one shared folder.

Both processes run ``tests/curve_task.py`` (PGD-3 on 8 toy points in 2
batches, 3 budgets), connected by the active backend's engine on 127.0.0.1;
each attacks its batch of every budget (and writes only its batch files) and
both must return the curve of one process (computed here, in the test's
process). The folder they shared then
holds every batch: a one-process rerun reads it all back.
"""

import json
import os

import pytest
from curve_task import CURVE, curve_task
from launch import launch
from testing import BACKEND, REPO_ROOT

SCRIPT = os.path.join(REPO_ROOT, "tests", "curve_task.py")


@pytest.mark.slow
def test_two_processes_give_the_single_process_curve(tmp_path):
    folder = str(tmp_path / "curve")
    single = curve_task()["curve"]
    multi = launch(BACKEND, 2, [folder], timeout=180, script=SCRIPT)
    assert [result["layout"]["process_index"] for result in multi] == [0, 1]
    for index, result in enumerate(multi):
        assert result["layout"]["process_count"] == 2
        assert result["curve"] == json.loads(json.dumps(single))
        points = ["000000000-000000004", "000000004-000000008"][index]
        assert result["written"] == sorted(
            f"eps-{eps!r}/{attack}/{points}"
            for eps in CURVE["eps_list"]
            for attack in ("00-clean", "01-pgd3")
        )
    batches = os.path.join(folder, "eps-0.3", "batches", "01-pgd3")
    assert sorted(os.listdir(batches)) == [
        "000000000-000000004.json",
        "000000004-000000008.json",
    ]
    assert curve_task(folder)["curve"] == single
