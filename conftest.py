"""The ``xp`` fixture: every test that takes it runs once per array backend.

Backends that are not usable on this machine are skipped with the reason (for CuPy: no CUDA
device). Narrow the set with ``--backend NAME`` (repeatable) or ``AGRAD_TEST_BACKENDS=a,b``; a
backend named that way must be usable, or the run stops with the reason (asking for CuPy where it
cannot run is a mistake to report, not a run to pass with everything skipped).
"""

from __future__ import annotations

import os

import pytest

import agrad

BACKENDS = agrad.known_backends()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        default=None,
        choices=BACKENDS,
        help="run the xp-parametrized tests on this backend only (repeatable)",
    )


def _selected(config: pytest.Config) -> list[str]:
    chosen = config.getoption("--backend")
    if chosen:
        return chosen
    env = os.environ.get("AGRAD_TEST_BACKENDS", "")
    names = [n.strip() for n in env.split(",") if n.strip()]
    unknown = set(names) - set(BACKENDS)
    if unknown:
        raise pytest.UsageError(f"AGRAD_TEST_BACKENDS names unknown backends {sorted(unknown)}")
    return names or BACKENDS


def pytest_configure(config: pytest.Config) -> None:
    explicit = config.getoption("--backend") or os.environ.get("AGRAD_TEST_BACKENDS", "").strip()
    if not explicit:
        return
    for name in _selected(config):
        backend = agrad.get_backend(name)
        usable, why = backend.probe()
        if not usable:
            hint = backend.install_hint()
            raise pytest.UsageError(
                f"backend {name!r} was asked for (--backend / AGRAD_TEST_BACKENDS) but is not "
                f"usable here: {why}" + (f"; to use it, {hint}" if hint else "")
            )


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for name in _selected(config):
        backend = agrad.get_backend(name)
        usable, why = backend.probe()
        line = f"agrad backend {name}: " + ("usable" if usable else f"NOT usable ({why})")
        if usable and backend.probe_warnings:
            line += f"; warnings while probing: {'; '.join(backend.probe_warnings)}"
        lines.append(line)
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = set(_selected(config))
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("xp") if callspec is not None else None
        (drop if name is not None and name not in selected else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=BACKENDS)
def xp(request: pytest.FixtureRequest):
    """The array namespace of one backend, which is also agrad's default backend for the test."""
    backend = agrad.get_backend(request.param)
    usable, why = backend.probe()
    if not usable:
        reason = "needs a CUDA GPU, " if backend.gpu else ""
        pytest.skip(f"backend {backend.name!r} is not usable here ({reason}{why})")
    with agrad.using_backend(backend, fallback=False):
        yield backend.xp
