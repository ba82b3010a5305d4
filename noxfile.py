"""One test session per backend (one requirements file each in backends/), plus lint and bench.

``nox -l`` lists them. The cupy session is not run by default; it skips where no CUDA device is.
"""

from __future__ import annotations

from pathlib import Path

import nox

ROOT = Path(__file__).parent
BACKENDS = sorted(p.stem for p in (ROOT / "backends").glob("*.txt"))
GPU_BACKENDS = {"cupy"}

nox.options.sessions = [f"tests({b})" for b in BACKENDS if b not in GPU_BACKENDS] + ["lint"]
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
    """ruff format --check and ruff check."""
    session.install("ruff")
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark suite (benchmarks/README.md): ``nox -s bench -- --quick``.

    PyTorch is compared against when it is installed in the session (``-- --no-torch`` leaves it
    out); without it, its columns are skipped.
    """
    session.install("-e", ".", "-r", "backends/numpy.txt")
    session.run("python", "benchmarks/run.py", *session.posargs)
