"""Plots: PNG files written from History dicts, CSV logs, sigma records and curves."""

import matplotlib
import numpy as np
import pytest

from specformer_keras.plots import (
    plot_accuracy_vs_eps,
    plot_sigma,
    plot_training_curves,
    read_csv_log,
)


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_training_curves_from_dict_and_csv_with_resumed_rows(tmp_path):
    fig = plot_training_curves(
        {"loss": [2.0, 1.0], "val_loss": [2.2, 1.5], "accuracy": [0.1, 0.3]},
        path=str(tmp_path / "a.png"),
    )
    assert matplotlib.get_backend().lower() == "agg"
    assert _is_png(tmp_path / "a.png")
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert sorted(labels) == ["accuracy", "loss", "val_loss"]
    # A resumed run repeats epoch 1: the last row for an epoch wins.
    csv_path = tmp_path / "log.csv"
    csv_path.write_text(
        "epoch,accuracy,loss,sigma/b/query\n0,0.1,2.0,3.0\n1,0.2,1.9,2.9\n"
        "1,0.25,1.8,2.8\n2,0.3,1.7,2.7\n"
    )
    log = read_csv_log(str(csv_path))
    assert log["epoch"] == [0.0, 1.0, 2.0] and log["loss"] == [2.0, 1.8, 1.7]
    fig = plot_training_curves(str(csv_path), path=str(tmp_path / "b.png"))
    loss_line = [
        line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "loss"
    ][0]
    np.testing.assert_allclose(loss_line.get_ydata(), [2.0, 1.8, 1.7])
    np.testing.assert_allclose(loss_line.get_xdata(), [1, 2, 3])
    assert all(
        "sigma" not in line.get_label() for ax in fig.axes for line in ax.get_lines()
    )


def test_sigma_plot_one_line_per_layer_and_reduction(tmp_path):
    history = [
        {
            "epoch": e,
            "norms": {
                "l0": {"query": [3.0 - e, 1.0], "key": [2.0, 2.0]},
                "l1": {"query": [1.0, 5.0], "key": [1.0, 1.0]},
            },
        }
        for e in (-1, 0, 1)
    ]
    fig = plot_sigma(history, path=str(tmp_path / "s.png"))
    assert _is_png(tmp_path / "s.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["key (max over heads)", "query (max over heads)"]
    query_lines = {line.get_label(): line for line in fig.axes[1].get_lines()}
    assert sorted(query_lines) == ["l0", "l1"]
    np.testing.assert_allclose(query_lines["l0"].get_ydata(), [4.0, 3.0, 2.0])
    np.testing.assert_allclose(query_lines["l0"].get_xdata(), [0, 1, 2])
    mean_fig = plot_sigma(history, reduction="mean")
    line = [x for x in mean_fig.axes[1].get_lines() if x.get_label() == "l1"][0]
    np.testing.assert_allclose(line.get_ydata(), [3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="Received: reduction='min'"):
        plot_sigma(history, reduction="min")
    with pytest.raises(ValueError, match="Received: history=\\[\\]"):
        plot_sigma([])


@pytest.mark.parametrize(
    "curve",
    [
        {
            "eps": [0.0, 4 / 255, 8 / 255],
            "pgd": [0.9, 0.5, 0.2],
            "fgsm": [0.9, 0.6, 0.3],
        },
        {
            "eps": [0.0, 4 / 255, 8 / 255],
            "accuracy": {"pgd": [0.9, 0.5, 0.2], "fgsm": [0.9, 0.6, 0.3]},
        },
        [
            {"eps": 8 / 255, "pgd": 0.2, "fgsm": 0.3},
            {"eps": 0.0, "pgd": 0.9, "fgsm": 0.9},
            {"eps": 4 / 255, "pgd": 0.5, "fgsm": 0.6},
        ],
        {
            0.0: {"pgd": 0.9, "fgsm": 0.9},
            8 / 255: {"pgd": 0.2, "fgsm": 0.3},
            4 / 255: {"pgd": 0.5, "fgsm": 0.6},
        },
    ],
)
def test_accuracy_vs_eps_formats(tmp_path, curve):
    fig = plot_accuracy_vs_eps(curve, path=str(tmp_path / "e.png"))
    assert _is_png(tmp_path / "e.png")
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert sorted(lines) == ["fgsm", "pgd"]
    np.testing.assert_allclose(lines["pgd"].get_xdata(), [0.0, 4.0, 8.0])
    np.testing.assert_allclose(lines["pgd"].get_ydata(), [0.9, 0.5, 0.2])


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="Received: curve="):
        plot_accuracy_vs_eps("nonsense")
    with pytest.raises(ValueError, match="Received: history=\\{\\}"):
        plot_training_curves({})


def test_accuracy_vs_eps_ignores_metadata_lists(tmp_path):
    # robustness_curve reports carry a "warnings" list that can have len(eps) items.
    curve = {
        "eps": [0.0, 1.0],
        "accuracy": {"pgd20": [0.9, 0.5]},
        "warnings": ["a", "b"],
        "attack": "pgd20",
    }
    path = tmp_path / "curve.png"
    figure = plot_accuracy_vs_eps(curve, path=str(path))
    lines = figure.axes[0].get_lines()
    assert path.exists() and len(lines) == 1
    np.testing.assert_allclose(lines[0].get_ydata(), [0.9, 0.5])
