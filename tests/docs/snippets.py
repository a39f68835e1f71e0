"""Extracts and runs the code examples of the docs (pages and docstrings).

Pages: every ```python block in `docs/*.md` must be preceded by one of

    <!-- runnable -->
    <!-- not-runnable: <reason> -->

Runnable blocks of a page run in order, in a fresh namespace, as one script
whose line numbers are those of the Markdown file (tracebacks point at the
page). Not-runnable blocks must still compile.

Docstrings: the ```python blocks in the docstrings of the objects listed in
`docs/api.md` (`::: dotted.name`) and of their public members run, each in a
fresh namespace.

Everything runs in ONE child process (`python snippets.py run docs/api.md
docs/*.md`, which prints a JSON report), so TensorFlow is imported once.
"""

import importlib
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS_DIR = os.path.join(REPO_ROOT, "docs")
RUNNABLE = "<!-- runnable -->"
NOT_RUNNABLE = re.compile(r"<!--\s*not-runnable:\s*(\S.*?)\s*-->")
FENCE_OPEN = re.compile(r"^(\s*)```\s*python\b.*$")
FENCE_ANY = re.compile(r"^\s*```")
API_DIRECTIVE = re.compile(r"^:::\s+([\w.]+)\s*$", re.MULTILINE)
DOCS_BACKEND = "tensorflow"
RUN_FIRST = ("distributed.md",)


def subprocess_env(**extra):
    """Environment for child processes: this repo importable, quiet TF, Agg plots."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [REPO_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env["KERAS_BACKEND"] = DOCS_BACKEND
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["MPLBACKEND"] = "Agg"
    env.update(extra)
    return env


class Block:
    """A fenced ```python block of a Markdown file."""

    def __init__(self, path, first_line, code, marker, reason=None):
        self.path = path
        self.first_line = first_line  # 1-based line of the first code line
        self.code = code
        self.marker = marker  # "runnable", "not-runnable" or None
        self.reason = reason

    def __repr__(self):
        return f"{os.path.basename(self.path)}:{self.first_line} ({self.marker})"


def markdown_blocks(path):
    """Returns the ```python blocks of a Markdown file with their markers."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = FENCE_OPEN.match(lines[i])
        if not match:
            if FENCE_ANY.match(lines[i]):  # skip other fenced blocks whole
                i += 1
                while i < len(lines) and not FENCE_ANY.match(lines[i]):
                    i += 1
            i += 1
            continue
        indent = len(match.group(1))
        previous = i - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        marker, reason = None, None
        if previous >= 0:
            text = lines[previous].strip()
            if text == RUNNABLE:
                marker = "runnable"
            elif NOT_RUNNABLE.fullmatch(text):
                marker, reason = "not-runnable", NOT_RUNNABLE.fullmatch(text).group(1)
        start = i + 1
        i += 1
        while i < len(lines) and not FENCE_ANY.match(lines[i]):
            i += 1
        code = "\n".join(line[indent:] for line in lines[start:i])
        blocks.append(Block(path, start + 1, code, marker, reason))
        i += 1
    return blocks


def page_script(path, blocks):
    """The runnable blocks of a page as one script with the page's line numbers."""
    with open(path, encoding="utf-8") as f:
        total = len(f.read().splitlines())
    script = [""] * total
    for block in blocks:
        if block.marker != "runnable":
            continue
        for offset, line in enumerate(block.code.splitlines()):
            script[block.first_line - 1 + offset] = line
    return "\n".join(script) + "\n"


def docstring_blocks(text):
    """```python blocks of a docstring (dedented)."""
    text = inspect.cleandoc(text or "")
    return [
        inspect.cleandoc(match.group(1))
        for match in re.finditer(r"```python[^\n]*\n(.*?)```", text, re.DOTALL)
    ]


def api_identifiers(api_md):
    with open(api_md, encoding="utf-8") as f:
        return API_DIRECTIVE.findall(f.read())


def resolve(identifier):
    """Imports `a.b.C` as attribute C of module a.b (or module a.b.C)."""
    try:
        return importlib.import_module(identifier)
    except ImportError:
        module, _, name = identifier.rpartition(".")
        return getattr(importlib.import_module(module), name)


def documented_objects(identifiers):
    """`(qualified name, object)` for each identifier and its public members."""
    seen = set()
    for identifier in identifiers:
        obj = resolve(identifier)
        candidates = [(identifier, obj)]
        if inspect.isclass(obj):
            for name, member in vars(obj).items():
                if name.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if callable(member) and getattr(member, "__doc__", None):
                    candidates.append((f"{identifier}.{name}", member))
        elif inspect.ismodule(obj):
            exported = getattr(obj, "__all__", None)
            for name in exported or []:
                candidates.append((f"{identifier}.{name}", getattr(obj, name)))
        for qualified, candidate in candidates:
            if id(candidate) in seen:
                continue
            seen.add(id(candidate))
            yield qualified, candidate


def run_docstrings(api_md):
    """Runs every docstring example, each in a fresh namespace."""
    report = {"ran": [], "failed": {}, "seconds": {}}
    for qualified, obj in documented_objects(api_identifiers(api_md)):
        for index, code in enumerate(docstring_blocks(getattr(obj, "__doc__", ""))):
            label = f"{qualified}[{index}]"
            start = time.perf_counter()
            try:
                exec(compile(code, f"<docstring {label}>", "exec"), {"__name__": label})
                report["ran"].append(label)
            except BaseException:  # noqa: B036 - report everything, keep going
                report["failed"][label] = traceback.format_exc(limit=8)
            report["seconds"][label] = round(time.perf_counter() - start, 2)
    return report


def run_pages(pages):
    """Runs each page's runnable blocks as one script in a fresh namespace.

    Pages listed in `RUN_FIRST` go first: they configure devices, which
    TensorFlow allows only before it initializes them.
    """
    pages = sorted(pages, key=lambda p: os.path.basename(p) not in RUN_FIRST)
    report = {}
    home = os.getcwd()
    for page in pages:
        script = page_script(page, markdown_blocks(page))
        workdir = tempfile.mkdtemp(prefix="docs-snippets-")
        os.chdir(workdir)
        start = time.perf_counter()
        try:
            # The file name is the page: tracebacks show the page's line numbers.
            exec(compile(script, page, "exec"), {"__name__": "__main__"})
            error = None
        except BaseException:  # noqa: B036 - report everything, keep going
            error = traceback.format_exc(limit=12)
        finally:
            os.chdir(home)
            shutil.rmtree(workdir, ignore_errors=True)
        report[os.path.basename(page)] = {
            "error": error,
            "seconds": round(time.perf_counter() - start, 2),
        }
    return report


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        api_md, pages = sys.argv[2], sys.argv[3:]
        result = {"pages": run_pages(pages), "docstrings": run_docstrings(api_md)}
        print("SNIPPETS-JSON " + json.dumps(result))
    else:
        sys.exit("usage: python snippets.py run docs/api.md [docs/page.md ...]")
