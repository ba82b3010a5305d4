"""One test session per backend (one requirements file each in backends/), plus lint, docs, bench.

``nox -l`` lists them. The cupy session is not run by default; it skips where no CUDA device is.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
BACKENDS = sorted(p.stem for p in (ROOT / "backends").glob("*.txt"))
GPU_BACKENDS = {"cupy"}

nox.options.sessions = [f"tests({b})" for b in BACKENDS if b not in GPU_BACKENDS] + ["lint", "docs"]
nox.options.reuse_existing_virtualenvs = True


@nox.session(name="tests")
@nox.parametrize("backend", BACKENDS, ids=BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """Run the test suite on one backend."""
    session.install("-e", ".[test]", "-r", f"backends/{backend}.txt")
    if backend in GPU_BACKENDS:
        probe = (
            f"import agrad; ok, why = agrad.get_backend({backend!r}).probe(); exit(0 if ok else 3)"
        )
        try:
            session.run("python", "-c", probe, silent=True)
        except nox.command.CommandFailed:
            session.skip(f"{backend}: no usable CUDA device on this machine")
    session.run("pytest", f"--backend={backend}", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff format --check, ruff check, and mypy --strict on a user script (agrad's annotations)."""
    session.install("-e", ".", "ruff", "mypy")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")
    # silent: agrad's own modules are checked as a user's mypy sees an installed package (errors
    # inside them hidden, their annotations applied), whatever way agrad was installed
    session.run("mypy", "--strict", "--follow-imports=silent", "tests/typing/user_script.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML documentation into docs/_build/html; any Sphinx warning fails it.

    ``nox -s docs -- -E`` rebuilds every page (Sphinx's options follow ``--``).
    """
    session.install("-e", ".", "-r", "docs/requirements.txt")
    session.run(
        "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html",
        *session.posargs,
    )  # fmt: skip


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark suite (benchmarks/README.md): ``nox -s bench -- --quick``.

    PyTorch is compared against when it is installed in the session (``-- --no-torch`` leaves it
    out); without it, its columns are skipped.
    """
    session.install("-e", ".", "-r", "backends/numpy.txt")
    session.run("python", "benchmarks/run.py", *session.posargs)
