"""docs/recipes.md documents every recipe flag and every recipe, with their defaults."""

import json
import os
import re
import subprocess
import sys
from fractions import Fraction

import pytest
from snippets import DOCS_DIR, REPO_ROOT, subprocess_env

# Lists the flags the recipes generate from `recipes/config.py`'s `Config` (in a
# child process: importing the recipes must not need Keras).
_LIST_FLAGS = """
import json, sys
from absl import flags
sys.path.insert(0, ".")
from recipes import cifar10_adv, flags as recipe_flags
values = flags.FlagValues()
recipe_flags.define_flags(cifar10_adv.get_config, values)
print(json.dumps({n: values[n].default for n in values}))
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
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
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
            numbers = [_number(v) for v in default]
            ok = ",".join(default) in documented or (
                None not in numbers
                and any(
                    [_number(v) for v in t.split(",")] == numbers for t in documented
                )
            )
        elif isinstance(default, (int, float)):
            ok = any(_number(text) == default for text in documented)
        else:  # strings; numbers given as text ("8/255") compare as numbers
            ok = str(default) in documented or (
                _number(default) is not None
                and any(_number(text) == _number(default) for text in documented)
            )
        if not ok:
            mismatched.append(f"--{name}: code {default!r}, docs {cell!r}")
    assert not mismatched, "\n".join(mismatched)


def _is_recipe(path):
    """A runnable recipe defines `get_config` (the shared modules do not)."""
    with open(path, encoding="utf-8") as f:
        return "\ndef get_config(" in f.read()


def test_every_recipe_is_listed(recipes_page):
    recipes = sorted(
        name
        for name in os.listdir(os.path.join(REPO_ROOT, "recipes"))
        if name.endswith(".py") and _is_recipe(os.path.join(REPO_ROOT, "recipes", name))
    )
    assert recipes, "no recipes found"
    missing = [name for name in recipes if f"`recipes/{name}`" not in recipes_page]
    assert not missing, f"recipes missing from docs/recipes.md: {missing}"
