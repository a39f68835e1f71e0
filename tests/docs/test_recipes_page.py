"""docs/recipes.md documents every recipe flag and every recipe, with their defaults."""

import json
import os
import re
import subprocess
import sys

import pytest
from snippets import DOCS_DIR, REPO_ROOT, subprocess_env

# Lists the flags `recipes/common.py` defines (in a child process: absl flags
# are global and the recipe tests define them too).
_LIST_FLAGS = """
import json, sys
from absl import flags
sys.path.insert(0, "recipes")
import common
before = set(flags.FLAGS)
common.define_flags(dict(common.BASE_DEFAULTS), {"quick": {}, "smoke": {}})
names = sorted(set(flags.FLAGS) - before)
print(json.dumps({n: flags.FLAGS[n].default for n in names}))
"""


@pytest.fixture(scope="module")
def recipe_flags():
    result = subprocess.run(
        [sys.executable, "-c", _LIST_FLAGS],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def recipes_page():
    with open(os.path.join(DOCS_DIR, "recipes.md"), encoding="utf-8") as f:
        return f.read()


def _table_rows(page):
    """`{flag: default cell}` of the flag tables (`| `--name` | default | ... |`)."""
    rows = {}
    for match in re.finditer(r"^\| `--(\w+)` \| ([^|]*) \|", page, re.MULTILINE):
        rows[match.group(1)] = match.group(2).strip()
    return rows


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def test_every_flag_has_a_row(recipe_flags, recipes_page):
    rows = _table_rows(recipes_page)
    assert len(recipe_flags) >= 30, recipe_flags
    missing = sorted(set(recipe_flags) - set(rows))
    assert not missing, f"recipe flags not documented in docs/recipes.md: {missing}"
    unknown = sorted(set(rows) - set(recipe_flags))
    assert not unknown, f"docs/recipes.md documents flags that do not exist: {unknown}"


def test_documented_defaults_match_the_code(recipe_flags, recipes_page):
    """Where the code has a concrete default, the table shows it."""
    rows = _table_rows(recipes_page)
    mismatched = []
    for name, default in recipe_flags.items():
        if default in (None, [], False):
            continue  # "all", "none", "native", "false" ... in words
        cell = rows.get(name, "")
        documented = re.findall(r"`([^`]*)`", cell)
        if isinstance(default, bool):
            ok = "true" in documented
        elif isinstance(default, list):
            ok = ",".join(default) in documented
        elif isinstance(default, (int, float)):
            ok = any(_number(text) == default for text in documented)
        else:
            ok = str(default) in documented
        if not ok:
            mismatched.append(f"--{name}: code {default!r}, docs {cell!r}")
    assert not mismatched, "\n".join(mismatched)


def test_every_recipe_is_listed(recipes_page):
    recipes = sorted(
        name
        for name in os.listdir(os.path.join(REPO_ROOT, "recipes"))
        if name.endswith(".py") and name != "common.py" and not name.startswith("_")
    )
    assert recipes, "no recipes found"
    missing = [name for name in recipes if f"`recipes/{name}`" not in recipes_page]
    assert not missing, f"recipes missing from docs/recipes.md: {missing}"
