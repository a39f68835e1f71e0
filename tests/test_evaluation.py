"""evaluate_robustness / robustness_curve: accuracies, worst case, data types, sanity flags."""

import json

import keras
import numpy as np
import pytest
from testing import TOY_CLASSES, TOY_IMAGE, toy_data, trained_mlp

from specformer_keras import evaluation
from specformer_keras.attacks import fgsm, pgd
from specformer_keras.evaluation import evaluate_robustness, robustness_curve

EPS = 0.1


def labels(model, x):
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False))).argmax(-1)


def test_report_matches_direct_attacks_and_is_json():
    model = trained_mlp()
    x, y = toy_data(n=40, seed=21)
    report = evaluate_robustness(
        model,
        (x, y),
        attacks=("clean", "fgsm", "pgd5", "cw5"),
        eps=EPS,
        batch_size=16,
        seed=3,
        verbose=False,
    )
    json.dumps(report)
    assert report["n"] == 40 and report["eps"] == EPS and report["unavailable"] == {}
    clean = labels(model, x) == y
    assert report["accuracy"]["clean"] == pytest.approx(clean.mean())
    fgsm_ok = clean & (labels(model, fgsm(model, x, y, EPS)) == y)
    assert report["accuracy"]["fgsm"] == pytest.approx(fgsm_ok.mean())
    # Random starts are drawn per example (seed, index in the data): one PGD
    # call on all points gives the verdicts of the batched evaluation.
    pgd_ok = labels(model, pgd(model, x, y, EPS, EPS / 4, 5, seed=3)) == y
    assert report["per_point"]["pgd5"] == "".join(
        "1" if ok else "0" for ok in clean & pgd_ok
    )
    assert report["accuracy"]["pgd5"] == pytest.approx((clean & pgd_ok).mean())
    assert report["settings"]["pgd5"]["step_size"] == pytest.approx(EPS / 4)
    assert report["settings"]["cw5"]["loss"] == "cw"
    assert report["worst_case"] <= min(report["accuracy"].values())
    assert report["accuracy"]["fgsm"] < report["accuracy"]["clean"]


def test_dataset_input_gives_the_numpy_result():
    tf = pytest.importorskip("tensorflow")
    model = trained_mlp()
    x, y = toy_data(n=24, seed=23)
    attacks = ("clean", "fgsm", "pgd3")
    from_numpy = evaluate_robustness(
        model, (x, y), attacks=attacks, eps=EPS, batch_size=8, verbose=False
    )
    one_hot = np.eye(TOY_CLASSES, dtype="float32")[y]
    dataset = tf.data.Dataset.from_tensor_slices((x, one_hot)).batch(8)
    from_dataset = evaluate_robustness(
        model, dataset, attacks=attacks, eps=EPS, verbose=True
    )
    assert from_dataset["accuracy"] == from_numpy["accuracy"]
    assert from_dataset["n"] == 24


def test_callables_worst_case_and_budget_violations():
    model = trained_mlp()
    x, y = toy_data(n=16, seed=25)

    def identity(model, x, y, eps):
        return x

    def flip_to_gray(model, x, y, eps):  # far outside the eps ball
        return np.full_like(x, 0.5)

    def strong(model, x, y, eps):
        return pgd(model, x, y, eps, eps / 4, 10, loss="cw", seed=0)

    report = evaluate_robustness(
        model,
        (x, y),
        attacks=("clean", identity, flip_to_gray, strong),
        eps=EPS,
        verbose=False,
    )
    accuracy = report["accuracy"]
    assert accuracy["identity"] == accuracy["clean"] == accuracy["flip_to_gray"]
    assert report["sanity_checks"]["outside_budget"] is True
    assert any("flip_to_gray" in line for line in report["warnings"])
    assert report["worst_case"] == pytest.approx(accuracy["strong"])
    assert accuracy["strong"] < accuracy["clean"]


def test_gradient_masking_is_flagged_by_square():
    # Nearly masked: the classifier sees stop_gradient(x); a tiny linear term
    # keeps the input gradient non-zero (so the preflight lets it through) but
    # useless to FGSM/PGD. Only the gradient-free Square finds the weakness.
    trained = trained_mlp()
    inputs = keras.Input((TOY_IMAGE, TOY_IMAGE, 1))
    masked_logits = trained(keras.layers.Lambda(keras.ops.stop_gradient)(inputs))
    tiny = keras.layers.Dense(
        TOY_CLASSES,
        kernel_initializer=keras.initializers.Constant(1e-6),
        use_bias=False,
    )(keras.layers.Flatten()(inputs))
    masked = keras.Model(inputs, keras.layers.Add()([masked_logits, tiny]))
    x, y = toy_data(n=16, seed=27)
    report = evaluate_robustness(
        masked,
        (x, y),
        attacks=("clean", "fgsm", "pgd5", "square300"),
        eps=0.15,
        verbose=False,
    )
    assert report["accuracy"]["fgsm"] == report["accuracy"]["clean"]
    assert report["sanity_checks"]["gradient_free_beats_gradient"] is True
    assert report["sanity_checks"]["zero_input_gradient"] is False
    assert any("Square" in line for line in report["warnings"])


# === Preflight: refused before any number is reported (issue 13, rule 3) ===


def _dense_model(activation=None, before=None):
    inputs = keras.Input((TOY_IMAGE, TOY_IMAGE, 1))
    h = keras.layers.Flatten()(inputs)
    if before is not None:
        h = keras.layers.Lambda(before)(h)
    outputs = keras.layers.Dense(TOY_CLASSES, activation=activation)(h)
    return keras.Model(inputs, outputs)


def _refused(model, data, match, attacks=("clean", "pgd5")):
    with pytest.raises(evaluation.PreflightError, match=match):
        evaluate_robustness(model, data, attacks=attacks, eps=EPS, verbose=False)
    with pytest.raises(evaluation.PreflightError, match=match):
        robustness_curve(model, data, [0.0, EPS], attack="fgsm")


def test_probability_outputs_are_refused():
    # A softmax model got a robust accuracy of 0.969 where its logits got 0.469.
    keras.utils.set_random_seed(0)
    _refused(_dense_model("softmax"), toy_data(n=8, seed=41), "look like probabilities")
    # Sigmoid outputs are non-negative but rows do not sum to 1: accepted.
    report = evaluate_robustness(
        _dense_model("sigmoid"),
        toy_data(n=8, seed=41),
        attacks=("clean",),
        verbose=False,
    )
    assert report["n"] == 8


@pytest.mark.parametrize(
    "before",
    [
        keras.ops.stop_gradient,
        lambda t: keras.ops.round(t * 4.0) / 4.0,  # shattered (quantized) input
    ],
    ids=["stop_gradient", "rounding"],
)
def test_zero_input_gradient_is_refused_as_gradient_masking(before):
    keras.utils.set_random_seed(0)
    model = _dense_model(before=before)
    data = toy_data(n=8, seed=43)
    _refused(model, data, "exactly zero.*gradient masking")
    # Without a gradient attack (Square, the right tool for such a model)
    # the same finding is a warning in the report.
    report = evaluate_robustness(
        model, data, attacks=("clean", lambda m, x, y, e: x), verbose=False
    )
    assert report["sanity_checks"]["zero_input_gradient"] is True
    assert report["preflight"] == {"points": 8, "zero_gradient_points": 8}
    assert "gradient masking" in report["warnings"][0]


def test_non_finite_logits_are_refused():
    keras.utils.set_random_seed(0)
    model = _dense_model()
    model.layers[-1].kernel.assign(np.full(model.layers[-1].kernel.shape, np.nan))
    # Before: argmax(NaN) = 0 made the share of class 0 the "robust accuracy".
    _refused(model, toy_data(n=8, seed=45), "non-finite logits", attacks=("clean",))


def test_non_finite_logits_on_a_later_batch_are_refused():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    # log(x) is -inf at x = 0: the second batch holds a zero image.
    outputs = keras.layers.Dense(3)(keras.layers.Lambda(keras.ops.log)(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).uniform(0.1, 1.0, size=(8, 4)).astype("float32")
    x[6] = 0.0
    with pytest.raises(evaluation.PreflightError, match="non-finite logits.*1 of 4"):
        evaluate_robustness(
            model,
            (x, np.zeros(8, "int64")),
            attacks=("clean",),
            batch_size=4,
            verbose=False,
        )


def test_partly_zero_gradient_is_a_warning_and_valid_reports_are_unchanged():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    # relu(x - 0.5): the gradient vanishes on points with every pixel < 0.5.
    hidden = keras.layers.Lambda(lambda t: keras.ops.relu(t - 0.5))(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
    x = np.random.default_rng(0).uniform(0.6, 1.0, size=(8, 4)).astype("float32")
    x[:3] = 0.1
    report = evaluate_robustness(
        model, (x, np.arange(8) % 3), attacks=("clean", "fgsm"), eps=0.01, verbose=False
    )
    assert report["preflight"] == {"points": 8, "zero_gradient_points": 3}
    assert report["sanity_checks"]["zero_input_gradient"] is True
    assert "3 of 8 points" in report["warnings"][0]
    valid = evaluate_robustness(
        trained_mlp(),
        toy_data(n=8, seed=47),
        attacks=("clean", "fgsm"),
        eps=EPS,
        verbose=False,
    )
    assert valid["preflight"]["zero_gradient_points"] == 0
    assert valid["sanity_checks"]["zero_input_gradient"] is False
    assert not any("gradient" in line for line in valid["warnings"])


def test_preflight_function_checks_one_batch():
    model = trained_mlp()
    x, y = toy_data(n=4, seed=49)
    assert evaluation.preflight(model, x, y) == {
        "points": 4,
        "zero_gradient_points": 0,
        "warnings": [],
    }


def test_sanity_check_logic():
    class Attack:
        def __init__(self, name, kind):
            self.name, self.kind = name, kind

    resolved = [
        Attack("clean", "clean"),
        Attack("fgsm", "single_step"),
        Attack("pgd20", "iterative"),
    ]
    per_point = {
        "clean": np.ones(100, bool),
        "fgsm": np.arange(100) < 40,
        "pgd20": np.arange(100) < 60,
    }
    report = {
        "accuracy": {k: float(v.mean()) for k, v in per_point.items()},
        "unavailable": {},
    }
    more = {
        "pgd20": {
            "points": 100,
            "steps": 100,
            "accuracy": 0.7,
            "accuracy_with_fewer_steps": 0.6,
        }
    }
    checks, warnings = evaluation.sanity_checks(
        report, resolved, per_point, {"fgsm": 0, "pgd20": 0}, more, 100
    )
    assert checks["iterative_weaker_than_fgsm"] and checks["more_steps_raise_accuracy"]
    assert (
        not checks["attack_raises_accuracy"]
        and checks["gradient_free_beats_gradient"] is None
    )
    assert len(warnings) == 2
    per_point["pgd20"] = np.arange(100) < 30
    report["accuracy"]["pgd20"] = 0.3
    checks, warnings = evaluation.sanity_checks(
        report, resolved, per_point, {"fgsm": 0, "pgd20": 0}, {}, 100
    )
    assert (
        not checks["iterative_weaker_than_fgsm"]
        and checks["more_steps_raise_accuracy"] is None
    )
    assert warnings == []


def test_more_steps_check_runs_on_the_requested_points():
    model = trained_mlp()
    x, y = toy_data(n=16, seed=29)
    report = evaluate_robustness(
        model,
        (x, y),
        attacks=("clean", "pgd2"),
        eps=EPS,
        check_more_steps=True,
        sanity_points=8,
        verbose=False,
    )
    check = report["more_steps_check"]["pgd2"]
    assert check["points"] == 8 and check["steps"] == 10
    assert report["sanity_checks"]["more_steps_raise_accuracy"] is not None


def test_unavailable_autoattack_is_reported_not_skipped():
    model = trained_mlp()
    x, y = toy_data(n=8, seed=31)
    report = evaluate_robustness(
        model,
        (x, y),
        attacks=("clean", "autoattack"),
        eps=0.5,
        norm="l2",
        verbose=False,
    )
    assert report["accuracy"]["autoattack"] is None
    assert "autoattack" in report["unavailable"]
    assert any("autoattack" in line for line in report["warnings"])


def test_robustness_curve_falls_and_plots(tmp_path):
    model = trained_mlp()
    x, y = toy_data(n=16, seed=33)
    path = tmp_path / "curve.png"
    curve = robustness_curve(
        model, (x, y), [0.0, 0.05, 0.4], attack="pgd5", plot_path=str(path)
    )
    json.dumps(curve)
    accuracy = curve["accuracy"]["pgd5"]
    assert accuracy[0] == pytest.approx(curve["clean_accuracy"])
    assert accuracy[2] <= 0.1 and curve["large_eps_checked"] and curve["warnings"] == []
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_robustness_curve_flags_accuracy_that_does_not_fall():
    keras.utils.set_random_seed(0)
    constant = keras.Sequential(
        [
            keras.Input((4,)),
            # A tiny kernel with distinct columns: a non-zero input gradient of
            # the margins (the preflight refuses an all-zero one; equal columns
            # give margins that do not depend on x) that cannot change the
            # prediction.
            keras.layers.Dense(
                3,
                kernel_initializer=keras.initializers.RandomUniform(
                    -1e-4, 1e-4, seed=0
                ),
                bias_initializer="ones",
            ),
        ]
    )
    constant.layers[-1].bias.assign([2.0, 0.0, 0.0])  # not a probability row
    x = np.random.default_rng(0).uniform(size=(8, 4)).astype("float32")
    curve = robustness_curve(
        constant, (x, np.zeros(8, "int64")), [0.0, 0.3], attack="fgsm"
    )
    assert curve["accuracy"]["fgsm"] == [1.0, 1.0]
    assert any("does not fall towards 0" in line for line in curve["warnings"])


@pytest.mark.parametrize(
    "overrides,kind,name",
    [
        ({"attacks": ("clean", "pgd0")}, ValueError, "attacks entry"),
        ({"attacks": ("clean", 3)}, TypeError, "attacks entry"),
        ({"attacks": ()}, ValueError, "attacks"),
        ({"eps": -1.0}, ValueError, "eps"),
        ({"norm": "l1"}, ValueError, "norm"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"seed": -2}, ValueError, "seed"),
        ({"data": 5}, TypeError, "data"),
        (
            {"data": (np.zeros((4, 4), "float32"), np.zeros(3, "int64"))},
            ValueError,
            "data",
        ),
    ],
)
def test_bad_arguments(overrides, kind, name):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    arguments = {
        "model": model,
        "data": (np.zeros((4, 4), "float32"), np.zeros(4, "int64")),
        "attacks": ("clean",),
        "verbose": False,
    }
    arguments.update(overrides)
    with pytest.raises(kind, match=rf"`{name.split()[0]}`.*Received: {name}"):
        evaluate_robustness(**arguments)


def test_robustness_curve_rejects_negative_eps():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    data = (np.zeros((4, 4), "float32"), np.zeros(4, "int64"))
    with pytest.raises(ValueError, match=r"`eps_list`.*Received: eps_list"):
        robustness_curve(model, data, [0.1, -0.1])


def test_unknown_keyword_arguments_are_type_errors():
    # Fixed signatures: Python itself refuses a misspelled keyword, naming it.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    data = (np.zeros((4, 4), "float32"), np.zeros(4, "int64"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'attack'"):
        evaluate_robustness(model, data, attack="fgsm", verbose=False)
    with pytest.raises(TypeError, match="unexpected keyword argument 'attacks'"):
        robustness_curve(model, data, [0.1], attacks=("fgsm",))
