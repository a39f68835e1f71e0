"""Tests of `AdversarialTrainer` (PGD-AT, TRADES) on the active backend.

References are independent of the trainer: for a linear classifier the input
and weight gradients are analytic, so one whole adversarial training step
(random start, signed-gradient steps, projection, loss, SGD update) is
recomputed in NumPy; the MSVP penalty and the u/v update are recomputed with
NumPy power iteration; robust accuracy of a linear model under an L-inf box
attack is exact (the worst case is coordinate-wise).
"""

import keras
import numpy as np
import pytest
from testing import tiny_images, tiny_vit

from specformer_keras import SpectralViT
from specformer_keras.attacks import apgd, pgd
from specformer_keras.training import AdversarialTrainer
from specformer_keras.training.objectives import (
    TradesKLDivergence,
    kl_from_probabilities,
    sparse_labels,
    trades_kl_divergence,
)

# === Helpers ===


def twin(model):
    """An identical copy (architecture, weights and u/v) of `model`."""
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def linear_model(num_features=16, num_classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    side = int(np.sqrt(num_features))
    return keras.Sequential(
        [
            keras.Input((side, side, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes, bias_initializer="random_normal"),
        ]
    )


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def normalize(a):
    return a / np.sqrt((a * a).sum(-1, keepdims=True) + 1e-12)


def spectral_layers(model):
    from specformer_keras.models.spectral_vit import spectral_attention_layers

    return spectral_attention_layers(model)


def numpy_state(model):
    """{(layer path, projection): (kernel, u, v)} as float64 NumPy arrays."""
    state = {}
    for layer in spectral_layers(model):
        for name, (u, v) in layer._spectral_state.items():
            kernel = layer._projection_dense(name).kernel
            state[(layer.path, name)] = tuple(
                np.asarray(keras.ops.convert_to_numpy(t), np.float64)
                for t in (kernel, u, v)
            )
    return state


def one_power_iteration(kernel, u):
    v = normalize(np.einsum("dhk,hd->hk", kernel, u))
    u = normalize(np.einsum("dhk,hk->hd", kernel, v))
    return u, v


# === Argument validation ===


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "fgsm"}, ValueError, "Received: method='fgsm'"),
        ({"eps": -0.1}, ValueError, "Received: eps=-0.1"),
        ({"eps": float("nan")}, ValueError, "Received: eps=nan"),
        ({"eps": "8/255"}, TypeError, "Received: eps='8/255'"),
        ({"step_size": -1.0}, ValueError, "Received: step_size=-1.0"),
        ({"steps": -1}, ValueError, "Received: steps=-1"),
        ({"steps": 2.5}, TypeError, "Received: steps=2.5"),
        ({"methd": "trades"}, TypeError, "Unrecognized keyword arguments.*methd"),
        ({"beta": -6.0}, ValueError, "Received: beta=-6.0"),
        ({"random_start": "yes"}, TypeError, "Received: random_start='yes'"),
        ({"track_clean_accuracy": 1}, TypeError, "Received: track_clean_accuracy=1"),
        ({"seed": 1.5}, TypeError, "Received: seed=1.5"),
    ],
)
def test_invalid_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        AdversarialTrainer(linear_model(), **kwargs)


def test_model_must_be_a_keras_model():
    with pytest.raises(TypeError, match="Received: model="):
        AdversarialTrainer(lambda x: x)


# === Loss terms ===


def test_trades_kl_matches_numpy_and_keras_kl_divergence():
    rng = np.random.default_rng(0)
    clean, adv = rng.normal(size=(2, 5, 4)).astype("float32")
    p, q = softmax(clean.astype(np.float64)), softmax(adv.astype(np.float64))
    expected = (p * np.log(p / q)).sum(-1)
    np.testing.assert_allclose(trades_kl_divergence(clean, adv), expected, rtol=1e-5)
    np.testing.assert_allclose(
        kl_from_probabilities(p.astype("float32"), adv), expected, rtol=1e-4
    )
    keras_kl = keras.losses.KLDivergence(reduction=None)(p, q)
    np.testing.assert_allclose(trades_kl_divergence(clean, adv), keras_kl, rtol=1e-4)
    weights = np.array([1.0, 0.0, 2.0, 0.0, 1.0], "float32")
    np.testing.assert_allclose(
        float(TradesKLDivergence()(clean, adv, sample_weight=weights)),
        (expected * weights).mean(),
        rtol=1e-5,
    )


def test_sparse_labels_accepts_sparse_and_one_hot():
    for y in (np.array([2, 0]), np.array([[2], [0]]), np.eye(3)[[2, 0]]):
        labels = keras.ops.convert_to_numpy(sparse_labels(y))
        assert labels.tolist() == [2, 0]


# === One full step against an independent NumPy reference (linear model) ===


def reference_step(method, w, b, x, y, x_start, eps, step_size, steps, beta, lr):
    """NumPy PGD-AT / TRADES step for logits = flatten(x) @ w + b."""
    n = x.shape[0]
    flat = x.reshape(n, -1).astype(np.float64)
    start = x_start.reshape(n, -1).astype(np.float64)
    onehot = np.eye(w.shape[1])[y]
    p_clean = softmax(flat @ w + b)
    lower, upper = np.maximum(flat - eps, 0.0), np.minimum(flat + eps, 1.0)
    x_adv = np.clip(start, lower, upper)
    for _ in range(steps):
        q = softmax(x_adv @ w + b)
        target = onehot if method == "pgd_at" else p_clean
        grad_x = (q - target) @ w.T  # d CE / dx and d KL(p||q) / dx
        x_adv = np.clip(x_adv + step_size * np.sign(grad_x), lower, upper)
    if method == "pgd_at":
        q = softmax(x_adv @ w + b)
        loss = -np.log(q[np.arange(n), y]).mean()
        dz_adv, dz_clean = (q - onehot) / n, np.zeros_like(q)
    else:
        q = softmax(x_adv @ w + b)
        kl_each = (p_clean * (np.log(p_clean) - np.log(q))).sum(-1)
        loss = -np.log(p_clean[np.arange(n), y]).mean() + beta * kl_each.mean()
        dz_adv = beta * (q - p_clean) / n
        log_ratio = np.log(p_clean) - np.log(q)
        dz_kl = p_clean * (log_ratio - kl_each[:, None])
        dz_clean = ((p_clean - onehot) + beta * dz_kl) / n
    grad_w = x_adv.T @ dz_adv + flat.T @ dz_clean
    grad_b = dz_adv.sum(0) + dz_clean.sum(0)
    return w - lr * grad_w, b - lr * grad_b, loss


@pytest.mark.parametrize("method", ["pgd_at", "trades"])
def test_one_step_matches_numpy_reference(method):
    model = linear_model()
    rng = np.random.default_rng(1)
    x = rng.random((8, 4, 4, 1)).astype("float32")
    y = rng.integers(0, 3, size=8)
    config = dict(method=method, eps=0.1, step_size=0.03, steps=3, beta=2.0, seed=7)
    # The same seed draws the same random start in an eager call.
    x_start = keras.ops.convert_to_numpy(
        AdversarialTrainer(twin(model), **config).random_start_point(
            keras.ops.convert_to_tensor(x)
        )
    )
    assert np.abs(x_start - x).max() <= 0.1 + 1e-6
    assert not np.allclose(x_start, x)
    w, b = (np.asarray(v, np.float64) for v in model.get_weights())
    expected_w, expected_b, expected_loss = reference_step(
        method, w, b, x, y, x_start, 0.1, 0.03, 3, 2.0, lr=0.5
    )
    trainer = AdversarialTrainer(model, **config)
    trainer.compile(optimizer=keras.optimizers.SGD(0.5))
    logs = trainer.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(logs["loss"], expected_loss, rtol=1e-4)
    new_w, new_b = model.get_weights()
    np.testing.assert_allclose(new_w, expected_w, atol=2e-5)
    np.testing.assert_allclose(new_b, expected_b, atol=2e-5)
    assert logs["msvp_loss"] == 0.0


# === Reductions to clean training ===


_CLEAN_RUN = {}


def clean_training_run(x, y, model, epochs):
    """Plain `fit` of a twin of `model` (computed once, shared by both tests)."""
    if "history" not in _CLEAN_RUN:
        clean_model = twin(model)
        clean_model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        history = clean_model.fit(
            x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0
        )
        _CLEAN_RUN["history"] = history.history
        _CLEAN_RUN["weights"] = clean_model.get_weights()
    return _CLEAN_RUN["history"], _CLEAN_RUN["weights"]


@pytest.mark.parametrize(
    "trainer_kwargs",
    [
        {"method": "pgd_at", "steps": 0, "random_start": False},
        {"method": "trades", "beta": 0.0, "steps": 2, "seed": 0},
    ],
    ids=["pgd_at_steps0", "trades_beta0"],
)
def test_reduces_to_clean_training(trainer_kwargs):
    x, y = tiny_images()
    model = tiny_vit()
    clean, clean_weights = clean_training_run(x, y, model, epochs=2)
    trainer = AdversarialTrainer(model, **trainer_kwargs)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1))
    adversarial = trainer.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    adversarial = adversarial.history
    np.testing.assert_allclose(adversarial["loss"], clean["loss"], rtol=1e-5)
    np.testing.assert_allclose(adversarial["msvp_loss"], clean["msvp_loss"], rtol=1e-5)
    assert min(adversarial["msvp_loss"]) > 0
    # Same weights, and the same u/v: one power-iteration step per batch.
    for got, want in zip(model.get_weights(), clean_weights):
        np.testing.assert_allclose(got, want, atol=1e-5)


# === MSVP inside the adversarial step ===


@pytest.mark.parametrize("method", ["pgd_at", "trades"])
def test_msvp_penalty_is_in_the_loss_once_and_uv_move_once(method):
    x, y = tiny_images(n=8)
    model = tiny_vit(penalty=0.05)
    plain = tiny_vit(penalty=0.0)
    for target, source in zip(plain.trainable_weights, model.trainable_weights):
        target.assign(keras.ops.convert_to_numpy(source))
    before = numpy_state(model)
    config = dict(method=method, steps=4, step_size=2 / 255, seed=3)

    trainer = AdversarialTrainer(model, **config)
    trainer.compile(optimizer=keras.optimizers.SGD(0.0))
    logs = trainer.train_on_batch(x, y, return_dict=True)
    plain_trainer = AdversarialTrainer(plain, **config)
    plain_trainer.compile(optimizer=keras.optimizers.SGD(0.0))
    plain_logs = plain_trainer.train_on_batch(x, y, return_dict=True)

    # Reference: ONE power-iteration step from the initial u per projection.
    expected_penalty = 0.0
    after = numpy_state(model)
    for key, (kernel, u0, _) in before.items():
        u1, v1 = one_power_iteration(kernel, u0)
        np.testing.assert_allclose(after[key][1], u1, atol=1e-5)
        np.testing.assert_allclose(after[key][2], v1, atol=1e-5)
        sigma = np.einsum("hd,dhk,hk->h", u1, kernel, v1)
        expected_penalty += 0.05 * np.sum(sigma**2)
    np.testing.assert_allclose(logs["msvp_loss"], expected_penalty, rtol=1e-4)
    # Same attack (inference mode ignores the penalty): the loss differs by it.
    np.testing.assert_allclose(
        logs["loss"] - plain_logs["loss"], expected_penalty, rtol=1e-3, atol=1e-6
    )
    assert plain_logs["msvp_loss"] == 0.0


def test_attack_forward_passes_leave_uv_untouched():
    x, _ = tiny_images(n=4)
    model = tiny_vit()
    trainer = AdversarialTrainer(model, steps=3, seed=0)
    before = numpy_state(model)
    trainer(x, training=False)
    model(x, training=False)
    after = numpy_state(model)
    for key in before:
        np.testing.assert_array_equal(before[key][1], after[key][1])
    assert not model.losses


# === Behaviour: adversarial training buys robustness ===


def robust_weak_features(n, seed, eps):
    """Binary task: one robust feature (margin 3 eps) and 63 weak ones (eps / 2)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    sign = 2.0 * y - 1.0
    x = 0.5 + 0.5 * eps * sign[:, None] + eps * rng.normal(size=(n, 64))
    x[:, 0] = 0.5 + 3 * eps * sign + 0.5 * eps * rng.normal(size=n)
    return np.clip(x, 0, 1).reshape(n, 8, 8, 1).astype("float32"), y


def exact_linear_robust_accuracy(model, x, y, eps):
    """Worst case of a linear 2-class model over the L-inf ball within [0, 1]."""
    w, b = model.get_weights()
    flat = x.reshape(len(x), -1)
    direction = w[:, 1] - w[:, 0]  # margin of class 1 over class 0
    push = np.where(y[:, None] == 1, -1.0, 1.0) * np.sign(direction)[None, :]
    worst = np.clip(flat + eps * push, 0.0, 1.0)
    logits = worst @ w + b
    return float(np.mean(np.argmax(logits, -1) == y))


def test_pgd_at_beats_clean_training_on_robust_accuracy():
    """Robust accuracy: exact for the linear model, and by our PGD and APGD-CE."""
    eps = 0.1
    x, y = robust_weak_features(256, seed=0, eps=eps)
    x_test, y_test = robust_weak_features(256, seed=1, eps=eps)
    results = {}
    for name, trainer_kwargs in (
        ("clean", None),
        ("pgd_at", dict(eps=eps, step_size=eps / 4, steps=5, seed=0)),
    ):
        model = linear_model(num_features=64, num_classes=2, seed=0)
        if trainer_kwargs is None:
            model.compile(
                optimizer=keras.optimizers.Adam(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            model.fit(x, y, batch_size=16, epochs=5, verbose=0)
        else:
            trainer = AdversarialTrainer(model, **trainer_kwargs)
            trainer.compile(optimizer=keras.optimizers.Adam(0.01))
            trainer.fit(x, y, batch_size=16, epochs=5, verbose=0)
        clean_accuracy = float(
            np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test)
        )
        robust = exact_linear_robust_accuracy(model, x_test, y_test, eps)
        # The project's own attacks agree with the exact worst case.
        attacks = {
            "pgd": pgd(model, x_test, y_test, eps, eps / 4, 20, seed=0),
            "apgd": apgd(model, x_test, y_test, eps=eps, steps=20, seed=0),
        }
        for attack, x_adv in attacks.items():
            assert np.abs(x_adv - x_test).max() <= eps + 1e-6
            attacked = keras.ops.convert_to_numpy(model(x_adv))
            measured = float(np.mean(np.argmax(attacked, -1) == y_test))
            assert robust - 1e-9 <= measured <= robust + 0.02, (name, attack, measured)
        results[name] = (clean_accuracy, measured)
    assert results["clean"][0] > 0.8, results  # the task is learnable
    assert results["pgd_at"][0] > 0.8, results
    assert results["clean"][1] < 0.3, results  # clean training is not robust
    assert results["pgd_at"][1] > results["clean"][1] + 0.5, results


# === Keras integration ===


def test_logs_evaluate_predict_and_standalone_classifier(tmp_path):
    x, y = tiny_images()
    model = tiny_vit()
    trainer = AdversarialTrainer(
        model, method="pgd_at", steps=1, track_clean_accuracy=True, seed=0
    )
    trainer.compile(optimizer="adam", metrics=["accuracy"])
    history = trainer.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert set(history.history) == {
        "loss",
        "accuracy",
        "adversarial_accuracy",
        "clean_accuracy",
        "msvp_loss",
    }
    # The compiled metrics see the adversarial logits during training.
    np.testing.assert_allclose(
        history.history["accuracy"], history.history["adversarial_accuracy"]
    )
    results = trainer.evaluate(x, y, verbose=0, return_dict=True)
    assert set(results) == {"loss", "accuracy"}
    logits = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(trainer(x)), logits)
    path = str(tmp_path / "classifier.keras")
    trainer.model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, SpectralViT)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(restored(x, training=False)), logits, atol=1e-6
    )
    for got, want in zip(restored.non_trainable_weights, model.non_trainable_weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want)
        )


def test_clean_accuracy_is_measured_before_the_update():
    x, y = tiny_images(n=8, size=4, channels=1)
    model = linear_model()
    before = np.argmax(keras.ops.convert_to_numpy(model(x)), -1)
    trainer = AdversarialTrainer(model, steps=1, track_clean_accuracy=True, seed=0)
    trainer.compile(optimizer="adam")
    logs = trainer.train_on_batch(x, y, return_dict=True)
    assert logs["clean_accuracy"] == pytest.approx(np.mean(before == y))


def test_one_hot_targets_with_categorical_loss():
    x, y = tiny_images(n=8, size=4, channels=1)
    trainer = AdversarialTrainer(linear_model(), method="trades", steps=1, seed=0)
    trainer.compile(
        optimizer="adam",
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    logs = trainer.train_on_batch(x, np.eye(3)[y], return_dict=True)
    assert np.isfinite(logs["loss"]) and 0.0 <= logs["adversarial_accuracy"] <= 1.0


def test_config_round_trip():
    trainer = AdversarialTrainer(
        tiny_vit(), method="trades", eps=0.02, step_size=0.01, steps=3, beta=1.5, seed=4
    )
    config = trainer.get_config()
    restored = AdversarialTrainer.from_config(config)
    for key in ("method", "eps", "step_size", "steps", "beta", "seed"):
        assert getattr(restored, key) == getattr(trainer, key)
    assert isinstance(restored.model, SpectralViT)


# === Inputs checked on the first batch, before fit (issue 13, rules 3-4) ===


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size=8):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return len(self.x) // self.batch_size

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]


def _inputs(kind, x, y):
    """fit's (x, y) arguments for the same data in each supported form."""
    if kind == "arrays":
        return {"x": x, "y": y, "batch_size": 8}
    if kind == "py_dataset":
        return {"x": _Batches(x, y)}
    if kind == "generator":
        return {
            "x": ((x[i : i + 8], y[i : i + 8]) for i in range(0, len(x), 8)),
            "steps_per_epoch": len(x) // 8,
        }
    tf = pytest.importorskip("tensorflow", reason="tf.data needs TensorFlow")
    return {"x": tf.data.Dataset.from_tensor_slices((x, y)).batch(8)}


INPUT_KINDS = ["arrays", "py_dataset", "generator", "tf_data"]


def _trainer(model=None, **kwargs):
    trainer = AdversarialTrainer(model or linear_model(), steps=1, seed=0, **kwargs)
    trainer.compile(optimizer="adam")
    return trainer


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_images_in_0_255_are_refused(kind):
    x, y = tiny_images(n=16, size=4, channels=1)
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide by 255.*max=2"):
        _trainer().fit(**_inputs(kind, x * 255.0, y), epochs=1, verbose=0)


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_out_of_range_labels_are_refused(kind):
    # On JAX an out-of-range label trained with zero cross-entropy.
    x, y = tiny_images(n=16, size=4, channels=1)
    y = y.copy()
    y[0] = 3  # 3 classes
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\].*max=3"):
        _trainer().fit(**_inputs(kind, x, y), epochs=1, verbose=0)


def test_label_checks_cover_negative_non_integer_and_one_hot_width():
    x, y = tiny_images(n=8, size=4, channels=1)
    with pytest.raises(ValueError, match="min=-1"):
        _trainer().fit(x, y - 1, verbose=0)
    with pytest.raises(TypeError, match="integer class indices"):
        _trainer().fit(x, y + 0.5, verbose=0)
    with pytest.raises(ValueError, match=r"one column per model output \(3\)"):
        _trainer().fit(x, np.eye(4)[y], verbose=0)


@pytest.mark.parametrize("kind", INPUT_KINDS)
def test_valid_inputs_train_on_every_batch(kind):
    # The peeked first batch is not lost: a generator still yields all batches.
    x, y = tiny_images(n=16, size=4, channels=1)
    # A pixel overshoot within the tolerance (resampling) is accepted.
    x[0, 0, 0, 0] = 1.01
    trainer = _trainer()
    trainer.fit(**_inputs(kind, x, y), epochs=1, verbose=0)
    assert int(trainer.optimizer.iterations.numpy()) == 2


def test_model_faults_are_refused_before_training():
    from specformer_keras.evaluation import PreflightError

    x, y = tiny_images(n=8, size=4, channels=1)
    softmax_model = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    with pytest.raises(PreflightError, match="look like probabilities"):
        _trainer(softmax_model).fit(x, y, verbose=0)
    masked = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Lambda(keras.ops.stop_gradient)]
        + linear_model().layers
    )
    with pytest.raises(PreflightError, match="gradient masking"):
        _trainer(masked).fit(x, y, verbose=0)
    with pytest.raises(PreflightError, match="gradient masking"):
        _trainer(masked).train_on_batch(x, y)
    diverged = linear_model()
    diverged.layers[-1].bias.assign(np.full(3, np.nan, "float32"))
    with pytest.raises(PreflightError, match="non-finite logits"):
        _trainer(diverged).fit(x, y, verbose=0)


def test_keras_file_round_trip_continues_training(tmp_path):
    # Before: the loaded trainer was not compiled ('NoneType' object has no
    # attribute 'update_state' in fit).
    x, y = tiny_images()
    trainer = AdversarialTrainer(tiny_vit(), method="trades", steps=1, seed=0)
    trainer.compile(optimizer="adam", metrics=["accuracy"])
    trainer.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "trainer.keras")
    trainer.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, AdversarialTrainer) and restored.method == "trades"
    for got, want in zip(restored.weights, trainer.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want)
        )
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 2
    history = restored.fit(x, y, batch_size=8, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all() and "accuracy" in history
    assert int(keras.ops.convert_to_numpy(restored.optimizer.iterations)) == 4
