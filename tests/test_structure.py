"""The shape of the code (issue 15), checked by reading the sources, not running them.

* No private name (leading underscore) crosses a module boundary inside the
  package: neither `from specformer_keras.x import _y`, nor `import
  specformer_keras.x._y`, nor `x._y` on a module imported from the package.
* Every module of `specformer_keras/` and `recipes/` has at most `MAX_LINES`
  lines unless `LONG_MODULES` names it with the reason one concept needs more.
* Docstrings are written in one dialect, Google style (`Args:`, `Returns:`,
  `Raises:`, `Example:`): no numpydoc underlined sections, no Sphinx fields.

Backend-independent: it reads files, so it runs (identically) under each backend.
"""

import ast
import os
import re

import pytest
from testing import REPO_ROOT

PACKAGE = "specformer_keras"
MAX_LINES = 400
# {path relative to the repository root: the reason one concept needs more lines}.
LONG_MODULES = {}


def python_files(*folders):
    """Paths (relative to the repository root) of every `.py` file under `folders`."""
    paths = []
    for folder in folders:
        for root, dirs, files in os.walk(os.path.join(REPO_ROOT, folder)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            paths += [
                os.path.relpath(os.path.join(root, f), REPO_ROOT)
                for f in sorted(files)
                if f.endswith(".py")
            ]
    return paths


PACKAGE_FILES = python_files(PACKAGE)
ALL_FILES = PACKAGE_FILES + python_files("recipes")


def module_name(path):
    """`specformer_keras/a/b.py` -> `specformer_keras.a.b` (`__init__.py` -> the package)."""
    parts = path[: -len(".py")].split(os.sep)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def absolute_module(node, path):
    """The absolute module name an `ImportFrom` node reads from, relative ones resolved."""
    if node.level == 0:
        return node.module or ""
    package = module_name(path).split(".")
    if not path.endswith("__init__.py"):
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def in_package(module):
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def private_imports(path, root=REPO_ROOT):
    """`["line N: what"]` for each private name `path` takes from another package module."""
    with open(os.path.join(root, path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    found = []
    modules = {}  # local name -> package module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not in_package(alias.name):
                    continue
                if any(is_private(part) for part in alias.name.split(".")):
                    found.append(f"line {node.lineno}: import {alias.name}")
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:  # `import a.b.c` binds `a`
                    modules[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            source = absolute_module(node, path)
            if not in_package(source):
                continue
            if any(is_private(part) for part in source.split(".")):
                found.append(f"line {node.lineno}: from {source} import ...")
            for alias in node.names:
                if is_private(alias.name):
                    found.append(
                        f"line {node.lineno}: from {source} import {alias.name}"
                    )
                else:  # may be a submodule: `from specformer_keras import spectral`
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
    return sorted(set(found), key=lambda s: int(s.split()[1].rstrip(":")))


def test_the_checker_sees_each_form_of_private_import(tmp_path):
    # A checker that finds nothing on purpose-written violations could never fail.
    folder = tmp_path / PACKAGE / "sub"
    folder.mkdir(parents=True)
    (folder / "mod.py").write_text(
        "import specformer_keras.attacks._common\n"
        "from specformer_keras.spectral import _normalize, power_iteration\n"
        "from .. import spectral\n"
        "from . import _private_module\n"
        "import specformer_keras.plots as plots\n"
        "import numpy as np\n"
        "spectral._normalize(np._NoValue)\n"
        "plots._pyplot()\n"
        "x = power_iteration.__doc__\n"
    )
    path = os.path.join(PACKAGE, "sub", "mod.py")
    assert private_imports(path, root=str(tmp_path)) == [
        "line 1: import specformer_keras.attacks._common",
        "line 2: from specformer_keras.spectral import _normalize",
        "line 4: from specformer_keras.sub import _private_module",
        "line 7: spectral._normalize",
        "line 8: plots._pyplot",
    ]


def test_no_private_name_is_imported_across_modules():
    violations = {path: found for path in ALL_FILES if (found := private_imports(path))}
    assert not violations, (
        "private names used across modules (make them public, or move the code "
        f"where it is used): {violations}"
    )


def line_count(path):
    with open(os.path.join(REPO_ROOT, path), encoding="utf-8") as f:
        return sum(1 for _ in f)


def test_every_module_is_at_most_max_lines():
    too_long = {
        path: n
        for path in ALL_FILES
        if (n := line_count(path)) > MAX_LINES and path not in LONG_MODULES
    }
    assert not too_long, (
        f"modules over {MAX_LINES} lines (split by concern, or add them to "
        f"LONG_MODULES with the reason): {too_long}"
    )


def test_long_modules_allow_list_is_current():
    for path, reason in LONG_MODULES.items():
        assert path in ALL_FILES, f"{path} is in LONG_MODULES but does not exist"
        assert line_count(path) > MAX_LINES, f"{path} is short now: drop it"
        assert reason.strip(), f"{path} needs a written reason"


NUMPYDOC_SECTION = re.compile(
    r"^[ \t]*(Parameters|Returns|Yields|Raises|Examples?|Notes?|Attributes|"
    r"See Also|Other Parameters|References)[ \t]*\n[ \t]*-{3,}[ \t]*$",
    re.MULTILINE,
)
SPHINX_FIELD = re.compile(
    r"^[ \t]*:(param|parameter|arg|argument|key|keyword|type|returns?|rtype|raises?|"
    r"except|exception|yields?|ytype|var|ivar|cvar|vartype)\b[^:\n]*:",
    re.MULTILINE,
)


def docstrings(path):
    """`(line, name, docstring)` of the module and of every class and function."""
    with open(os.path.join(REPO_ROOT, path), encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    nodes = [tree] + [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    for node in nodes:
        doc = ast.get_docstring(node, clean=False)
        if doc:
            yield getattr(node, "lineno", 1), getattr(node, "name", "<module>"), doc


def other_dialects(doc):
    return [m.group(0).strip() for m in NUMPYDOC_SECTION.finditer(doc)] + [
        m.group(0).strip() for m in SPHINX_FIELD.finditer(doc)
    ]


@pytest.mark.parametrize(
    "doc",
    [
        "Sums.\n\n    Parameters\n    ----------\n    x : int\n",
        "Sums.\n\n    Returns\n    -------\n    int\n",
        "Sums.\n\n    :param x: the input.\n",
        "Sums.\n\n    :returns: the sum.\n",
        "Sums.\n\n    :raises ValueError: if empty.\n",
    ],
)
def test_the_dialect_check_sees_numpydoc_and_sphinx(doc):
    assert other_dialects(doc)


def test_the_dialect_check_accepts_google_style():
    doc = (
        "Sums.\n\n    Args:\n        x: The input, e.g. `a[:, 1]` or `{'k': 1}`.\n\n"
        "    Returns:\n        The sum.\n\n    Raises:\n        ValueError: If empty.\n"
    )
    assert other_dialects(doc) == []


def test_docstrings_use_google_style_only():
    violations = [
        f"{path}:{line} {name}: {found}"
        for path in ALL_FILES
        for line, name, doc in docstrings(path)
        if (found := other_dialects(doc))
    ]
    assert not violations, (
        "docstrings in another dialect than Google style (Args:/Returns:/Raises:/"
        f"Example:): {violations}"
    )
