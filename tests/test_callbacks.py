"""SpectralNormMonitor and ScalarLogger: values match the model, land in History,
JSON, CSV and TensorBoard (read back without TensorFlow); NaN weights never crash."""

import json
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from testing import BACKEND, REPO_ROOT, tiny_images, tiny_vit

from specformer_keras.callbacks import (
    EventWriter,
    ScalarLogger,
    SpectralNormMonitor,
    flatten_spectral_norms,
    load_sigma_history,
)
from specformer_keras.spectral import exact_spectral_norms

pytest.importorskip(
    "tensorboard", reason="tensorboard reads the event files back (test extra)"
)


def _read_scalars(event_dir):
    """`{tag: [(step, value)]}` of a TensorBoard folder, read without TensorFlow."""
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    accumulator = EventAccumulator(str(event_dir))
    accumulator.Reload()
    return {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def _exact_sigma(kernel):
    """Largest singular value per head of a (d_model, heads, head_dim) kernel."""
    kernel = np.asarray(kernel, dtype="float64")
    return np.array(
        [
            np.linalg.svd(kernel[:, h, :], compute_uv=False)[0]
            for h in range(kernel.shape[1])
        ]
    )


def test_monitor_records_exact_sigma_each_epoch(tmp_path):
    model = tiny_vit()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    monitor = SpectralNormMonitor(
        json_path=str(tmp_path / "sigma.json"),
        csv_path=str(tmp_path / "sigma.csv"),
        log_dir=str(tmp_path / "tb"),
    )
    x, y = tiny_images()
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[monitor])

    assert [e["epoch"] for e in monitor.history] == [-1, 0, 1]
    layers = sorted(monitor.history[-1]["norms"])
    assert len(layers) == 1
    # Last record == exact SVD of the current kernels (independent numpy reference).
    attention = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if layer.__class__.__name__ == "SpectralMultiHeadAttention"
    ]
    for layer in attention:
        recorded = monitor.history[-1]["norms"][layer.path]
        for projection, dense in (
            ("query", layer.query_dense),
            ("key", layer.key_dense),
            ("value", layer.value_dense),
        ):
            np.testing.assert_allclose(
                recorded[projection], _exact_sigma(dense.kernel), rtol=1e-4
            )
    # Training changed the weights, so sigma changed between records.
    first, last = monitor.history[0]["norms"], monitor.history[-1]["norms"]
    assert any(
        not np.allclose(first[lay][p], last[lay][p])
        for lay in layers
        for p in first[lay]
    )
    # History gets the per-layer max over heads, once per epoch.
    key = f"sigma/{layers[0]}/query"
    assert len(history.history[key]) == 2
    assert history.history[key][-1] == pytest.approx(
        max(monitor.history[-1]["norms"][layers[0]]["query"])
    )
    # JSON and CSV read back to the same record.
    assert load_sigma_history(str(tmp_path / "sigma.json")) == monitor.history
    from_csv = load_sigma_history(str(tmp_path / "sigma.csv"))
    assert [e["epoch"] for e in from_csv] == [-1, 0, 1]
    np.testing.assert_allclose(
        from_csv[-1]["norms"][layers[0]]["value"],
        monitor.history[-1]["norms"][layers[0]]["value"],
    )
    # TensorBoard scalars: per head and max over heads, steps 0 (before
    # training), 1 and 2, with the recorded values.
    scalars = _read_scalars(tmp_path / "tb" / "sigma")
    layer = layers[0]
    head_1 = scalars[f"sigma/{layer}/query/head_1"]
    assert [step for step, _ in head_1] == [0, 1, 2]
    expected = [e["norms"][layer]["query"][1] for e in monitor.history]
    np.testing.assert_allclose([v for _, v in head_1], expected, rtol=1e-6)
    maximum = scalars[f"sigma_max/{layer}/value"]
    np.testing.assert_allclose(
        [v for _, v in maximum],
        [max(e["norms"][layer]["value"]) for e in monitor.history],
        rtol=1e-6,
    )


def test_wrapped_classifier_estimates_and_mean_reduction():
    """Through a wrapper exposing `.model` (like AdversarialTrainer): estimates, mean."""
    inner = tiny_vit(penalty=(1e-2, 0.0, 1e-2))
    inner.build((None, 8, 8, 3))

    class Wrapper(keras.Model):
        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        @property
        def model(self):
            return self.classifier

        def call(self, x, training=None):
            return self.classifier(x, training=training)

    wrapper = Wrapper(inner)
    wrapper.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    monitor = SpectralNormMonitor(exact=False, reduction="mean")
    x, y = tiny_images()
    history = wrapper.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[monitor])
    norms = monitor.history[-1]["norms"]
    assert sorted(norms) == sorted(inner.spectral_norms())
    layer = sorted(norms)[0]
    # Estimates exist only for the penalized projections (query and value).
    assert sorted(norms[layer]) == ["query", "value"]
    np.testing.assert_allclose(
        norms[layer]["value"], inner.spectral_norms()[layer]["value"], rtol=1e-6
    )
    assert history.history[f"sigma/{layer}/value"][0] == pytest.approx(
        np.mean(norms[layer]["value"])
    )
    assert f"sigma/{layer}/key" not in history.history


def test_resume_continues_json_record(tmp_path):
    path = str(tmp_path / "sigma.json")
    x, y = tiny_images()
    model = tiny_vit()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(
        x, y, epochs=2, verbose=0, callbacks=[SpectralNormMonitor(json_path=path)]
    )
    monitor = SpectralNormMonitor(json_path=path)
    model.fit(x, y, epochs=4, initial_epoch=2, verbose=0, callbacks=[monitor])
    assert [e["epoch"] for e in monitor.history] == [-1, 0, 1, 2, 3]
    with open(path) as f:
        assert [e["epoch"] for e in json.load(f)["history"]] == [-1, 0, 1, 2, 3]


def test_flatten_and_argument_validation():
    norms = {"b": {"key": np.array([1.0, 4.0])}, "a": {"query": [2.0, 3.0]}}
    assert flatten_spectral_norms(norms) == {"sigma/a/query": 3.0, "sigma/b/key": 4.0}
    assert flatten_spectral_norms(norms, "mean")["sigma/b/key"] == 2.5
    with pytest.raises(ValueError, match="Received: reduction='median'"):
        SpectralNormMonitor(reduction="median")
    with pytest.raises(ValueError, match="Received: reduction='min'"):
        flatten_spectral_norms(norms, "min")
    with pytest.raises(TypeError, match="Received: exact='yes'"):
        SpectralNormMonitor(exact="yes")
    with pytest.raises(TypeError, match="Received: stop_on_nan=1"):
        SpectralNormMonitor(stop_on_nan=1)
    with pytest.raises(TypeError, match="Received: log_dir=3"):
        ScalarLogger(3)
    with pytest.raises(TypeError, match="unexpected keyword"):
        SpectralNormMonitor(log_dri="x")


def _poison(model):
    """Sets the first query kernel of `model` to NaN (a diverged run)."""
    for variable in model.weights:
        if "query" in variable.path and variable.path.endswith("kernel"):
            value = np.array(keras.ops.convert_to_numpy(variable))
            value[:, 0, :] = np.nan
            variable.assign(value)
            return variable.path
    raise AssertionError("no query kernel found")


def test_exact_spectral_norms_of_nan_kernel_is_nan_with_warning():
    kernel = np.random.default_rng(0).normal(size=(8, 3, 4))
    reference = exact_spectral_norms(kernel)
    kernel[2, 1, 3] = np.nan
    kernel[0, 2, 0] = np.inf
    with pytest.warns(RuntimeWarning, match="Training diverged"):
        sigma = exact_spectral_norms(kernel)
    assert np.isnan(sigma[1]) and np.isnan(sigma[2])
    np.testing.assert_allclose(sigma[0], reference[0], rtol=1e-12)
    with pytest.warns(RuntimeWarning, match="diverged"):
        assert np.isnan(exact_spectral_norms(np.full((4, 2, 3), np.nan))).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # finite kernels: no warning
        exact_spectral_norms(np.ones((4, 2, 3)))


@pytest.mark.parametrize("exact", [True, False])
def test_monitor_reports_nan_sigma_and_can_stop(tmp_path, exact):
    model = tiny_vit()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = tiny_images()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)  # u/v estimates exist
    _poison(model)
    monitor = SpectralNormMonitor(
        exact=exact,
        stop_on_nan=True,
        json_path=str(tmp_path / "sigma.json"),
        csv_path=str(tmp_path / "sigma.csv"),
        log_dir=str(tmp_path / "tb"),
    )
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    with pytest.warns(RuntimeWarning, match="training diverged"):
        history = model.fit(
            x, y, epochs=3, batch_size=8, verbose=0, callbacks=[monitor]
        )
    assert monitor.diverged
    # Stopped after the first epoch; the query sigmas of the poisoned layer are NaN.
    assert [e["epoch"] for e in monitor.history] == [-1, 0]
    layer = next(iter(monitor.history[-1]["norms"]))
    assert np.isnan(monitor.history[-1]["norms"][layer]["query"]).any()
    assert np.isnan(history.history[f"sigma/{layer}/query"][0])
    assert len(history.history["loss"]) == 1
    # Every record reads back, NaN included.
    record = load_sigma_history(str(tmp_path / "sigma.json"))
    assert np.isnan(record[-1]["norms"][layer]["query"]).any()
    from_csv = load_sigma_history(str(tmp_path / "sigma.csv"))
    assert np.isnan(from_csv[-1]["norms"][layer]["query"]).any()
    scalars = _read_scalars(tmp_path / "tb" / "sigma")
    assert np.isnan(scalars[f"sigma_max/{layer}/query"][-1][1])


def test_scalar_logger_writes_keras_tensorboard_layout(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.05), "mse", metrics=["mae"])
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 3)), rng.random((16, 2))
    history = model.fit(
        x, y, epochs=3, batch_size=8, verbose=0, validation_data=(x[:8], y[:8]),
        callbacks=[ScalarLogger(str(tmp_path / "tb"))],
    )  # fmt: skip
    train = _read_scalars(tmp_path / "tb" / "train")
    validation = _read_scalars(tmp_path / "tb" / "validation")
    assert [s for s, _ in train["epoch_loss"]] == [0, 1, 2]
    np.testing.assert_allclose(
        [v for _, v in train["epoch_loss"]], history.history["loss"], rtol=1e-6
    )
    np.testing.assert_allclose(
        [v for _, v in validation["epoch_mae"]], history.history["val_mae"], rtol=1e-6
    )
    np.testing.assert_allclose(
        [v for _, v in train["epoch_learning_rate"]], [0.05] * 3, rtol=1e-6
    )
    assert "epoch_val_loss" not in train


def test_log_dir_without_any_event_writer_says_what_to_install(monkeypatch):
    from specformer_keras.callbacks import event_writer as callbacks

    monkeypatch.setattr(callbacks, "_writer_backend", lambda: None)
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        SpectralNormMonitor(log_dir="tb")
    with pytest.raises(ImportError, match="pip install tensorboardX"):
        ScalarLogger("tb")
    SpectralNormMonitor()  # without log_dir nothing is needed


def test_event_writer_round_trip(tmp_path):
    writer = EventWriter(str(tmp_path))
    for step, value in enumerate([1.5, np.nan, -2.0]):
        writer.scalar("a/b", value, step)
    writer.close()
    values = _read_scalars(tmp_path)["a/b"]
    assert [s for s, _ in values] == [0, 1, 2]
    assert values[0][1] == 1.5 and np.isnan(values[1][1]) and values[2][1] == -2.0


@pytest.mark.skipif(
    BACKEND == "tensorflow", reason="on TensorFlow, importing it is expected"
)
def test_callbacks_never_import_tensorflow(tmp_path):
    """Monitor and logger with log_dir, through fit, in a fresh JAX/torch process."""
    code = f"""
import sys, numpy as np, keras
from specformer_keras import SpectralViT
from specformer_keras.callbacks import ScalarLogger, SpectralNormMonitor
model = SpectralViT(image_size=8, patch_size=4, num_classes=2, hidden_dim=8,
                    depth=1, num_heads=2, mlp_dim=8, penalty=1e-3)
model.compile("sgd", "sparse_categorical_crossentropy")
model.fit(np.random.rand(4, 8, 8, 3), np.array([0, 1, 0, 1]), epochs=1, verbose=0,
          callbacks=[SpectralNormMonitor(log_dir={str(tmp_path)!r}),
                     ScalarLogger({str(tmp_path)!r})])
assert "tensorflow" not in sys.modules, "tensorflow was imported"
print("ok")
"""
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO_ROOT] + [p for p in [env.get("PYTHONPATH")] if p]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ok" in result.stdout
