"""Test-suite constants and helpers, importable from any test module.

(`conftest.py` files are not imported by name: there is more than one.)
"""

import os

import keras
import pytest

BACKEND = keras.config.backend()
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10_ARCHIVE = os.path.join(
    os.path.dirname(REPO_ROOT), "shared", "data", "cifar10-jpeg.tar.gz"
)


def only_backends(*names):
    """Decorator: skip a test unless the active backend is one of ``names``."""
    return pytest.mark.skipif(
        BACKEND not in names,
        reason=f"needs backend in {names}, running {BACKEND}",
    )
