"""The code examples of the docs run, so they cannot rot.

Pages mark each ```python block `<!-- runnable -->` or
`<!-- not-runnable: reason -->` (see `snippets.py`); runnable blocks run with
the tiny settings written in them. The examples in the docstrings that the API
reference shows run too. All of it runs in one child process (one TensorFlow
import), once per session.
"""

import glob
import json
import os
import subprocess
import sys

import keras
import pytest
from snippets import DOCS_BACKEND, DOCS_DIR, markdown_blocks, subprocess_env

PAGES = sorted(glob.glob(os.path.join(DOCS_DIR, "*.md")))
RUNNABLE_PAGES = [
    page
    for page in PAGES
    if any(block.marker == "runnable" for block in markdown_blocks(page))
]


@pytest.fixture(scope="module")
def snippet_report(tmp_path_factory):
    if keras.config.backend() != DOCS_BACKEND:
        pytest.skip(f"docs tests run under KERAS_BACKEND={DOCS_BACKEND}")
    runner = os.path.join(os.path.dirname(os.path.abspath(__file__)), "snippets.py")
    result = subprocess.run(
        [
            sys.executable,
            runner,
            "run",
            os.path.join(DOCS_DIR, "api.md"),
            *RUNNABLE_PAGES,
        ],
        cwd=tmp_path_factory.mktemp("snippets"),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    lines = [
        line for line in result.stdout.splitlines() if line.startswith("SNIPPETS-JSON ")
    ]
    if result.returncode != 0 or not lines:
        pytest.fail(
            "snippet runner crashed:\n" + result.stdout[-3000:] + result.stderr[-6000:]
        )
    return json.loads(lines[-1][len("SNIPPETS-JSON ") :])


def test_every_python_block_is_marked():
    unmarked = [
        repr(block)
        for page in PAGES
        for block in markdown_blocks(page)
        if not block.marker
    ]
    assert not unmarked, (
        "mark these ```python blocks with <!-- runnable --> or "
        f"<!-- not-runnable: reason -->: {unmarked}"
    )


def test_the_docs_have_runnable_examples():
    runnable = [
        b for page in PAGES for b in markdown_blocks(page) if b.marker == "runnable"
    ]
    assert len(runnable) >= 15, runnable
    for page in ("index.md", "quickstart.md", "layer.md", "adversarial_training.md"):
        assert os.path.join(DOCS_DIR, page) in RUNNABLE_PAGES, page


def test_not_runnable_blocks_still_compile():
    for page in PAGES:
        for block in markdown_blocks(page):
            if block.marker == "not-runnable":
                compile(block.code, repr(block), "exec")


@pytest.mark.slow
@pytest.mark.parametrize("page", [os.path.basename(p) for p in RUNNABLE_PAGES])
def test_page_examples_run(page, snippet_report):
    outcome = snippet_report["pages"][page]
    assert outcome["error"] is None, (
        f"examples of docs/{page} failed (line numbers are the page's):\n"
        + outcome["error"]
    )


@pytest.mark.slow
def test_docstring_examples_of_the_api_reference_run(snippet_report):
    report = snippet_report["docstrings"]
    assert not report["failed"], "\n\n".join(
        f"{label}:\n{trace}" for label, trace in report["failed"].items()
    )
    assert len(report["ran"]) >= 10, report["ran"]


def test_public_api_docstrings_have_an_example():
    """Google style with an Example section holding a ```python block (issue 6)."""
    import inspect

    import specformer_keras

    missing = []
    for name in specformer_keras.__all__:
        obj = getattr(specformer_keras, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue  # exception classes need no example
        doc = inspect.getdoc(obj) or ""
        if not ("Example:" in doc or "Examples:" in doc) or "```python" not in doc:
            missing.append(name)
    assert not missing, f"public symbols without an Example section: {missing}"
