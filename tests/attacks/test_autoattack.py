"""autoattack: protocol, worst case over components, refusal, log, reference check."""

import importlib
import json

import numpy as np
import pytest
from testing import accuracy, l2, linf, toy_data, trained_mlp

from specformer_keras.attacks.apgd import apgd, apgd_targeted
from specformer_keras.attacks.autoattack import autoattack
from specformer_keras.attacks.fab import fab_targeted
from specformer_keras.attacks.square import square

# The module, not the function of the same name the package may export.
autoattack_module = importlib.import_module("specformer_keras.attacks.autoattack")

FAST = {
    "apgd-ce": {"steps": 10},
    "apgd-t": {"steps": 10, "n_target_classes": 3},
    "fab-t": {"steps": 10, "n_target_classes": 3},
    "square": {"n_queries": 100},
}
EPS = 0.08


@pytest.fixture(scope="module")
def problem():
    model = trained_mlp()
    x, y = toy_data(64, seed=21)
    x_adv, log = autoattack(
        model, x, y, EPS, version="custom", attack_settings=FAST, return_log=True
    )
    return model, x, y, x_adv, log


def test_autoattack_budget_box_shape_dtype(problem):
    _, x, _, x_adv, _ = problem
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert linf(x_adv, x).max() <= EPS + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_autoattack_is_the_worst_case_of_its_components(problem):
    model, x, y, x_adv, log = problem
    final = accuracy(model, x_adv, y)
    assert final == pytest.approx(log["final_robust_accuracy"])
    assert final < log["clean_accuracy"]
    curve = [log["clean_accuracy"]] + [
        log["robust_accuracy"][n] for n in log["attacks"]
    ]
    assert all(b <= a for a, b in zip(curve, curve[1:]))
    seed = log["seed"]
    alone = {
        "apgd-ce": apgd(model, x, y, EPS, seed=seed, **FAST["apgd-ce"]),
        "apgd-t": apgd_targeted(model, x, y, EPS, seed=seed, **FAST["apgd-t"]),
        "fab-t": fab_targeted(model, x, y, EPS, seed=seed, **FAST["fab-t"]),
        "square": square(model, x, y, EPS, seed=seed, **FAST["square"]),
    }
    for name, x_alone in alone.items():
        assert final <= accuracy(model, x_alone, y), name
    # The first component sees exactly the points it would see alone.
    assert log["robust_accuracy"]["apgd-ce"] == accuracy(model, alone["apgd-ce"], y)


def test_autoattack_log_is_json_and_counts_add_up(problem):
    _, x, _, _, log = problem
    json.dumps(log)
    broken = sum(log["broken_by"].values())
    expected = round((log["clean_accuracy"] - log["final_robust_accuracy"]) * len(x))
    assert broken == expected
    assert log["settings"]["fab-t"]["eta"] == 1.05


def test_autoattack_seed_reproducibility(problem):
    model, x, y, x_adv, _ = problem
    again = autoattack(model, x, y, EPS, version="custom", attack_settings=FAST)
    np.testing.assert_array_equal(again, x_adv)


def test_autoattack_l2_custom_runs_and_respects_budget():
    model = trained_mlp()
    x, y = toy_data(8, seed=22)
    x_adv = autoattack(
        model,
        x,
        y,
        0.8,
        norm="l2",
        version="custom",
        attacks_to_run=["apgd-ce", "fab-t"],
        attack_settings={"apgd-ce": {"steps": 3}, "fab-t": {"steps": 3}},
    )
    assert l2(x_adv, x).max() <= 0.8 + 1e-5
    assert accuracy(model, x_adv, y) < accuracy(model, x, y)


def test_standard_refuses_when_a_component_is_missing(monkeypatch):
    model = trained_mlp()
    x, y = toy_data(4, seed=23)
    with pytest.raises(NotImplementedError, match="Received: norm='l2'"):
        autoattack(model, x, y, 0.5, norm="l2")
    components = dict(autoattack_module.COMPONENTS)
    components["fab-t"] = (None, ("linf", "l2"))
    monkeypatch.setattr(autoattack_module, "COMPONENTS", components)
    with pytest.raises(NotImplementedError, match=r"\['fab-t'\]"):
        autoattack(model, x, y, 0.1)


@pytest.mark.parametrize(
    "kwargs,error,fragment",
    [
        ({"version": "plus"}, ValueError, "Received: version='plus'"),
        (
            {"attacks_to_run": ["apgd-ce"]},
            ValueError,
            "only used with version='custom'",
        ),
        (
            {"version": "custom", "attacks_to_run": ["pgd"]},
            ValueError,
            r"Received: attacks_to_run=\['pgd'\]",
        ),
        ({"norm": "l1"}, ValueError, "Received: norm='l1'"),
        ({"eps": -0.1}, ValueError, "Received: eps=-0.1"),
        ({"batch_size": 0}, ValueError, "Received: batch_size=0"),
        (
            {"version": "custom", "attack_settings": {"square": 3}},
            ValueError,
            "Received: attack_settings=",
        ),
    ],
)
def test_autoattack_argument_errors(kwargs, error, fragment):
    model = trained_mlp()
    x, y = toy_data(4, seed=23)
    arguments = {"eps": 0.1, **kwargs}
    with pytest.raises(error, match=fragment):
        autoattack(model, x, y, **arguments)


def _torch_copy_of_mlp(model):
    torch = pytest.importorskip("torch")
    kernel1, bias1, kernel2, bias2 = [np.asarray(w) for w in model.get_weights()]

    class Mlp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(*kernel1.shape)
            self.out = torch.nn.Linear(*kernel2.shape)
            with torch.no_grad():
                self.hidden.weight.copy_(torch.tensor(kernel1.T))
                self.hidden.bias.copy_(torch.tensor(bias1))
                self.out.weight.copy_(torch.tensor(kernel2.T))
                self.out.bias.copy_(torch.tensor(bias2))

        def forward(self, images):  # NCHW -> NHWC flatten, as Keras does
            flat = images.permute(0, 2, 3, 1).reshape(images.shape[0], -1)
            return self.out(torch.relu(self.hidden(flat)))

    return torch, Mlp().eval()


@pytest.mark.slow
def test_components_match_torchattacks_reference():
    """Optional: robust accuracy of each component vs torchattacks (fra31 ports)."""
    torchattacks = pytest.importorskip("torchattacks")
    model = trained_mlp()
    torch, net = _torch_copy_of_mlp(model)
    x, y = toy_data(128, seed=11)
    x_t = torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    y_t = torch.tensor(y)
    eps, steps = 0.08, 10

    def torch_accuracy(images):
        with torch.no_grad():
            return float((net(images).argmax(1) == y_t).float().mean())

    ours = {
        "apgd-ce": apgd(model, x, y, eps, steps=steps, seed=0),
        "apgd-t": apgd_targeted(
            model, x, y, eps, steps=steps, n_target_classes=4, seed=0
        ),
        "fab-t": fab_targeted(
            model, x, y, eps, steps=steps, n_target_classes=4, seed=0
        ),
    }
    theirs = {
        "apgd-ce": torchattacks.APGD(
            net, norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=0, loss="ce"
        ),
        "apgd-t": torchattacks.APGDT(
            net, norm="Linf", eps=eps, steps=steps, n_restarts=1, seed=0, n_classes=5
        ),
        "fab-t": torchattacks.FAB(
            net,
            norm="Linf",
            eps=eps,
            steps=steps,
            n_restarts=1,
            multi_targeted=True,
            n_classes=5,
            seed=0,
        ),
    }
    assert torch_accuracy(x_t) == accuracy(model, x, y)
    for name in ours:
        mine = accuracy(model, ours[name], y)
        reference = torch_accuracy(theirs[name](x_t, y_t))
        assert abs(mine - reference) <= 0.04, (name, mine, reference)
