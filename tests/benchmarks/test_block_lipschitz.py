"""benchmarks/block_lipschitz.py: which units it picks, and the table and figure it writes."""

import json
import os

import pytest
from testing import load_benchmark


def _script():
    return load_benchmark("block_lipschitz")


def _summary(median):
    return {"per_example": [median], "mean": median, "median": median, "max": median}


def _unit(out, penalty, seed, block_values, lipschitz=True):
    directory = os.path.join(out, f"lambda={penalty:g}_seed={seed}")
    os.makedirs(directory)
    state = {"config": {"penalty": penalty, "seed": seed}}
    if lipschitz:
        state["lipschitz"] = {"model": {"median": 0.5}}
    json.dump(state, open(os.path.join(directory, "state.json"), "w"))
    return directory


def _blocks(directory, penalty, seed, values):
    names = ("stream_rms",) + _script().MAPS
    report = {
        "penalty": penalty,
        "seed": seed,
        "model_median": 0.5,
        "blocks": {
            f"encoder_block_{i}": {name: _summary(v) for name in names}
            for i, v in enumerate(values)
        },
    }
    json.dump(report, open(os.path.join(directory, "blocks.json"), "w"))


def test_only_units_past_their_lipschitz_stage_are_estimated(tmp_path):
    script = _script()
    out = str(tmp_path)
    ready = _unit(out, 0.0, 0, None)
    _unit(out, 0.0, 1, None, lipschitz=False)  # still training
    assert script.ready_units(out) == [ready]


def test_table_averages_seeds_and_multiplies_blocks(tmp_path):
    script = _script()
    out = str(tmp_path)
    for seed, values in enumerate([(2.0, 3.0), (4.0, 5.0)]):
        _blocks(_unit(out, 0.1, seed, None), 0.1, seed, values)
    assets = str(tmp_path / "assets")
    script.main(["--out", out, "--summarize", "--assets", assets])
    text = script.table(script.collect(out))
    assert "| encoder_block_0 | 3.000 |" in text  # mean of 2 and 4
    assert "| encoder_block_1 | 4.000 |" in text  # mean of 3 and 5
    assert "product of the block medians: 13.000" in text  # (6 + 20) / 2
    assert os.path.exists(os.path.join(assets, "at_sweep_block_lipschitz.png"))


def test_a_missing_sweep_folder_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        _script().parse_args(["--out", str(tmp_path / "nowhere")])


def test_paired_table_gives_ratios_to_lambda_0_of_the_same_seed(tmp_path):
    script = _script()
    out = str(tmp_path)
    values = {0.0: [(2.0, 4.0), (1.0, 8.0)], 0.1: [(1.0, 4.0), (1.0, 2.0)]}
    for penalty, per_seed in values.items():
        for seed, v in enumerate(per_seed):
            _blocks(_unit(out, penalty, seed, None), penalty, seed, v)
    _blocks(_unit(out, 0.1, 2, None), 0.1, 2, (9.0, 9.0))  # no lambda-0 partner
    text = script.paired_table(script.collect(out))
    assert "seeds [0, 1]" in text
    sweep_common = load_benchmark("sweep_common")
    block0 = sweep_common.format_interval([0.5, 1.0], 1.0, 3, unit="x")
    block1 = sweep_common.format_interval([1.0, 0.25], 1.0, 3, unit="x")
    assert f"| encoder_block_0 | {block0} |" in text
    assert f"| encoder_block_1 | {block1} |" in text
    assert script.paired_table({0.1: script.collect(out)[0.1]}) == ""
    script.main(["--out", out, "--summarize"])
    assert "over lambda=0" in open(os.path.join(out, "block_lipschitz.md")).read()
