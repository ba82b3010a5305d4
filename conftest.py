"""The ``xp`` fixture: every test that takes it runs once per array backend.

Backends that are not usable on this machine are skipped with the reason (for CuPy: no CUDA
device). Narrow the set with ``--backend NAME`` (repeatable) or ``AGRAD_TEST_BACKENDS=a,b``.
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
