"""SpectralNormMonitor: values match the model, land in History, JSON, CSV, TensorBoard."""

import importlib.util
import json
import os

import keras
import numpy as np
import pytest

from specformer_keras import SpectralViT
from specformer_keras.callbacks import (
    SpectralNormMonitor,
    flatten_spectral_norms,
    load_sigma_history,
)


def _tiny_model(penalty=1e-2):
    return SpectralViT(
        image_size=8,
        patch_size=4,
        num_classes=3,
        hidden_dim=16,
        depth=1,
        num_heads=2,
        mlp_dim=16,
        penalty=penalty,
        seed=0,
    )


def _data():
    rng = np.random.default_rng(0)
    return rng.random((16, 8, 8, 3), dtype="float32"), rng.integers(0, 3, 16)


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
    model = _tiny_model()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    monitor = SpectralNormMonitor(
        json_path=str(tmp_path / "sigma.json"),
        csv_path=str(tmp_path / "sigma.csv"),
        log_dir=str(tmp_path / "tb") if tensorboard else None,
    )
    x, y = _data()
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
    if tensorboard:
        _check_tensorboard(tmp_path / "tb" / "sigma", layers[0])


def _check_tensorboard(event_dir, layer):
    import tensorflow as tf

    tags, steps = set(), set()
    for name in os.listdir(event_dir):
        for event in tf.compat.v1.train.summary_iterator(str(event_dir / name)):
            tags.update(value.tag for value in event.summary.value)
            if event.summary.value:
                steps.add(event.step)
    assert f"sigma/{layer}/query/head_1" in tags
    assert f"sigma_max/{layer}/value" in tags
    assert steps == {0, 1, 2}  # before training, after epochs 1 and 2


def test_wrapped_classifier_estimates_and_mean_reduction():
    """Through a wrapper exposing `.model` (like AdversarialTrainer): estimates, mean."""
    inner = _tiny_model(penalty=(1e-2, 0.0, 1e-2))
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
    x, y = _data()
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
    x, y = _data()
    model = _tiny_model()
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
