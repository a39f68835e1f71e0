"""docs/installation.md lists every extra of pyproject.toml with what it installs."""

import os
import re

import pytest
from snippets import DOCS_DIR, REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11+")


def _extras():
    with open(os.path.join(REPO_ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]


def _requirement_name(requirement):
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]


def test_every_extra_is_documented_with_its_packages():
    with open(os.path.join(DOCS_DIR, "installation.md"), encoding="utf-8") as f:
        page = f.read()
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `([\w-]+)` \| ([^|]*) \|", page, re.MULTILINE)
    }
    problems = []
    for extra, requirements in _extras().items():
        if extra not in rows:
            problems.append(f"extra {extra!r} has no row")
            continue
        for requirement in requirements:
            name = _requirement_name(requirement)
            if name.startswith("mkdocs") and "docs tools" in rows[extra]:
                continue  # the dev row says "the docs tools"
            if f"`{name}`" not in rows[extra]:
                problems.append(f"extra {extra!r}: {name} not named in its row")
    assert not problems, problems
