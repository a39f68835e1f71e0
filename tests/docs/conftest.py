"""Fixtures of the docs tests: the strictly built site and a local HTTP server.

The docs tests are backend-independent, so they run under one backend only
(TensorFlow) to save CI time; under any other backend they skip.
"""

import functools
import http.server
import os
import subprocess
import sys
import threading

import keras
import pytest
from snippets import DOCS_BACKEND, REPO_ROOT, subprocess_env


def pytest_collection_modifyitems(config, items):
    if keras.config.backend() == DOCS_BACKEND:
        return
    skip = pytest.mark.skip(
        reason=f"docs tests run once, under KERAS_BACKEND={DOCS_BACKEND} "
        f"(running {keras.config.backend()})"
    )
    for item in items:
        if os.path.dirname(str(item.fspath)) == os.path.dirname(__file__):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """Runs `mkdocs build --strict` into a temporary folder; returns the folder."""
    if keras.config.backend() != DOCS_BACKEND:
        pytest.skip(f"docs tests run under KERAS_BACKEND={DOCS_BACKEND}")
    site_dir = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--site-dir",
            str(site_dir),
        ],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(
            "mkdocs build --strict failed:\n"
            + result.stdout[-4000:]
            + result.stderr[-8000:]
        )
    return str(site_dir)


class StaticSiteHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files like a static host: no directory listings, no request log."""

    def list_directory(self, path):
        self.send_error(404, "No index.html in this folder")
        return None

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def site_url(built_site):
    """Serves the built site on 127.0.0.1 (random port) from a thread."""
    handler = functools.partial(StaticSiteHandler, directory=built_site)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
