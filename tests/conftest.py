"""Shared test configuration.

The suite is written once against ``keras.ops`` and run once per backend:
``KERAS_BACKEND=tensorflow pytest`` and ``KERAS_BACKEND=jax pytest``.
Tests that only make sense on one backend skip with a reason.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402
from testing import BACKEND, CIFAR10_ARCHIVE  # noqa: E402


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend: {BACKEND}"


@pytest.fixture(autouse=True)
def _reset_keras_state():
    """Each test starts from a clean Keras session and float32 policy."""
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
    # The Keras state (layer names, the functional-model graph, TF's default graph
    # and kernel cache, torch's dynamo cache) is reset; the full `gc.collect()` of
    # the default `free_memory=True` is left to Python's own collector: with three
    # frameworks imported it took 0.2-1 s a test, a third of the torch session.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def cifar10_archive():
    """Path to the real CIFAR-10 JPEG archive when present (see shared/data)."""
    if not os.path.exists(CIFAR10_ARCHIVE):
        pytest.skip(f"CIFAR-10 archive not found at {CIFAR10_ARCHIVE}")
    return CIFAR10_ARCHIVE
