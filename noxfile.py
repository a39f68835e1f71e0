"""Test sessions: the whole suite once per Keras backend, each in its own environment.

    nox                       # lint, then the suite on tensorflow, jax and torch
    nox -s "tests(backend='torch')" -- tests/attacks -x   # one backend, pytest args

* ``tensorflow``: TensorFlow with JAX and PyTorch beside it, so the cross-backend
  agreement checks (tests/cross_backend) can run the same weights on all three.
* ``jax`` and ``torch``: **no TensorFlow** in the environment; the session fails if
  it is importable, so the suite proves that a JAX or torch user never needs it.

PyTorch is pinned to its CPU build (``TORCH_CPU``): a plain ``torch`` requirement
takes a CUDA build of several GB on Linux.
"""

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True

BACKENDS = ("tensorflow", "jax", "torch")
TORCH_CPU = "torch==2.13.0"
# keras-hub declares tensorflow-text (and so TensorFlow) although its models do
# not need it; without TF it is installed with these of its requirements only
# (grain: what KerasHub's preprocessing uses in fit when TensorFlow is absent).
KERAS_HUB_WITHOUT_TF = (
    "regex",
    "rich",
    "packaging",
    "kagglehub",
    "tokenizers",
    "sentencepiece",
    "grain",
)

TF_ABSENT = (
    "import importlib.util, sys; "
    "found = importlib.util.find_spec('tensorflow') is not None; "
    "print('tensorflow importable:', found); sys.exit(found)"
)


def install_backend(session, backend):
    """Installs the package with one backend's extra (see module docstring)."""
    if backend == "tensorflow":
        session.install(TORCH_CPU)
        session.install("-e", ".[all,test,docs,cleverhans]", "keras-hub")
        # The AutoAttack components' reference (tests/attacks/test_autoattack.py);
        # --no-deps: its torchvision requirement would replace the CPU torch, and
        # the components it is compared with import only torch, numpy and scipy.
        session.install("--no-deps", "torchattacks")
        return
    if backend == "torch":
        session.install(TORCH_CPU)
    session.install("-e", f".[{backend},test]")
    session.install(*KERAS_HUB_WITHOUT_TF)
    session.install("--no-deps", "keras-hub")
    session.run("python", "-c", TF_ABSENT)


@nox.session
def lint(session):
    """ruff: the lint rules and formatting of pyproject.toml."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session, backend):
    """The whole suite under ``KERAS_BACKEND=backend``."""
    install_backend(session, backend)
    session.run(
        "python",
        "-m",
        "pytest",
        "--durations=10",
        *session.posargs,
        env={"KERAS_BACKEND": backend},
    )
