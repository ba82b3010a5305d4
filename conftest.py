"""The ``xp`` fixture: every test that takes it runs once per array backend.

Backends that are not usable on this machine are skipped with the reason (for CuPy: no CUDA
device). Narrow the set with ``--backend NAME`` (repeatable) or ``AGRAD_TEST_BACKENDS=a,b``; a
backend named that way must be usable, or the run stops with the reason (asking for CuPy where it
cannot run is a mistake to report, not a run to pass with everything skipped).

One more entry is not a backend of its own: ``numpy_readonly`` runs on the NumPy backend with a
namespace whose every array comes back read-only (array-api-extra's ``NUMPY_READONLY``), so
every run checks that agrad writes into no array it did not allocate itself (a writing function
raises ``ValueError: assignment destination is read-only``), as JAX's immutable arrays would.
Another, ``dask_chunked``, runs the function library's tests (``tests/functions``) on Dask with
every array the tests make cut into chunks of two along each axis, so each function meets
arrays of several chunks (the plain ``dask`` entry's small arrays have one).

A run that names no backend leaves out the repeats that cost most for least (``FULL_ONLY``):
``dask_chunked``, the documentation's examples on JAX and Dask, where each eager operation
takes a millisecond or more, and the longest trainings on JAX, PyTorch and Dask, whose numbers
``tests/test_same_numbers.py`` holds equal to NumPy's. Together they were over a quarter of the
suite's time. ``--full`` adds them; a run that names a backend (``--backend jax``, each nox
session) runs everything on it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import agrad

# agrad's JAX backend needs jax_enable_x64 and warns when it has to turn it on itself; the tests
# turn it on as the docs tell users to (before JAX is imported) so that the warning, an error
# under this project's filterwarnings, is not given. tests/test_backends.py checks the warning.
os.environ.setdefault("JAX_ENABLE_X64", "1")

#: test-matrix entries that run on an agrad backend with a different namespace: entry -> backend
VARIANTS = {"numpy_readonly": "numpy", "dask_chunked": "dask"}
BACKENDS = agrad.known_backends() + list(VARIANTS)
#: entries that run only the tests under one folder (their cost elsewhere buys nothing new)
ONLY_UNDER = {"dask_chunked": "tests/functions"}
#: entry -> (what it leaves out, the test-id prefixes it runs only with --full or when named;
#: None: every test). Each is a repeat whose check is held elsewhere: the docs' examples on the
#: other backends, and the long trainings' numbers against NumPy's by tests/test_same_numbers.py
_SPIRAL_DEMO = "tests/nn/test_nn_training.py::test_spiral_demo_reaches_95_percent["
FULL_ONLY: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "dask_chunked": ("all of it", None),
    "jax": ("the docs' examples, the 300-epoch demo", ("tests/test_docs.py::", _SPIRAL_DEMO)),
    "torch": ("the 300-epoch demo", (_SPIRAL_DEMO,)),
    "dask": (
        "the docs' examples, a 30-epoch dropout training, the demo under jit",
        (
            "tests/test_docs.py::",
            "tests/nn/test_nn_training.py::test_training_loop_with_dropout_and_test_mode[",
            "tests/test_jit.py::test_demo_with_jit_equals_the_eager_demo[",
        ),
    ),
}


def _frozen(value: Any) -> Any:
    """``value`` with every NumPy array in it replaced by a read-only view of it."""
    if isinstance(value, np.ndarray):
        view = value.view()  # a new read-only view: the caller's own array stays writeable
        view.flags.writeable = False
        return view
    if isinstance(value, tuple):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, list):
        return [_frozen(item) for item in value]
    return value


class ReadOnlyNamespace:
    """An Array API namespace whose functions return read-only NumPy arrays (dtypes, constants
    and ``isdtype``-like answers pass through); submodules such as ``linalg`` are wrapped too."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if isinstance(attr, (type, np.dtype)):
            return attr  # dtypes are callable classes, not functions
        if callable(attr):

            @functools.wraps(attr)
            def frozen(*args: Any, **kwargs: Any) -> Any:
                return _frozen(attr(*args, **kwargs))

            wrapped: Any = frozen
        elif hasattr(attr, "__name__") and hasattr(attr, "__dict__") and not np.isscalar(attr):
            wrapped = ReadOnlyNamespace(attr)  # a submodule (linalg, fft)
        else:
            wrapped = attr
        setattr(self, name, wrapped)  # later lookups skip __getattr__
        return wrapped

    def __repr__(self) -> str:
        return f"<read-only {self._inner.__name__}>"


class ChunkedNamespace:
    """Dask's namespace whose array-making functions return arrays in chunks of two per axis."""

    MAKERS = frozenset({"asarray", "zeros", "ones", "empty", "full", "arange", "linspace", "eye"})

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name in self.MAKERS or name.endswith("_like"):
            make = attr

            @functools.wraps(make)
            def chunked(*args: Any, **kwargs: Any) -> Any:
                out = make(*args, **kwargs)
                return out.rechunk((2,) * out.ndim) if out.ndim else out

            attr = chunked
        setattr(self, name, attr)  # later lookups skip __getattr__
        return attr

    def __repr__(self) -> str:
        return f"<{self._inner.__name__} in chunks of two>"


NAMESPACES = {"numpy_readonly": ReadOnlyNamespace, "dask_chunked": ChunkedNamespace}


def _backend_name(entry: str) -> str:
    return VARIANTS.get(entry, entry)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        default=None,
        choices=BACKENDS,
        help="run the xp-parametrized tests on this backend only (repeatable)",
    )
    parser.addoption(
        "--full",
        action="store_true",
        help="also run the slow repeats a run that names no backend leaves out (FULL_ONLY)",
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
    return names or list(BACKENDS)


def pytest_configure(config: pytest.Config) -> None:
    explicit = config.getoption("--backend") or os.environ.get("AGRAD_TEST_BACKENDS", "").strip()
    if not explicit:
        return
    for name in _selected(config):
        backend = agrad.get_backend(_backend_name(name))
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
        backend = agrad.get_backend(_backend_name(name))
        usable, why = backend.probe()
        line = f"agrad backend {name}: " + ("usable" if usable else f"NOT usable ({why})")
        if name in ONLY_UNDER:
            line += f" (runs {ONLY_UNDER[name]} only)"
        if usable and backend.probe_warnings:
            line += f"; warnings while probing: {'; '.join(backend.probe_warnings)}"
        lines.append(line)
    return lines


def _explicit(config: pytest.Config) -> bool:
    return bool(config.getoption("--backend") or os.environ.get("AGRAD_TEST_BACKENDS", "").strip())


def _full_only(name: str, nodeid: str) -> bool:
    if name not in FULL_ONLY:
        return False
    prefixes = FULL_ONLY[name][1]
    return prefixes is None or nodeid.startswith(prefixes)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = set(_selected(config))
    trimmed = not config.getoption("--full") and not _explicit(config)
    keep, drop, slow = [], [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        name = callspec.params.get("xp") if callspec is not None else None
        outside = name in ONLY_UNDER and not item.nodeid.startswith(ONLY_UNDER[name] + "/")
        if name is not None and (name not in selected or outside):
            drop.append(item)
        elif trimmed and name is not None and _full_only(name, item.nodeid):
            slow.append(item)
        else:
            keep.append(item)
    config.stash[_SLOW_LEFT_OUT] = len(slow)  # (under xdist the workers collect, not this process)
    if drop or slow:
        config.hook.pytest_deselected(items=drop + slow)
        items[:] = keep


_SLOW_LEFT_OUT = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if config.getoption("--full") or _explicit(config):
        return
    left_out = config.stash.get(_SLOW_LEFT_OUT, 0)
    count = f"{left_out} " if left_out else ""
    what = "; ".join(f"{name}: {described}" for name, (described, _) in FULL_ONLY.items())
    terminalreporter.write_line(f"left out: {count}slow repeats ({what}); --full runs them")


@pytest.fixture(params=BACKENDS)
def xp(request: pytest.FixtureRequest):
    """The array namespace of one backend, which is also agrad's default backend for the test."""
    backend = agrad.get_backend(_backend_name(request.param))
    usable, why = backend.probe()
    if not usable:
        reason = "needs a CUDA GPU, " if backend.gpu else ""
        pytest.skip(f"backend {backend.name!r} is not usable here ({reason}{why})")
    with (
        agrad.using_backend(backend, fallback=False),
        _python_floats_as_float64(backend),
        _dask_in_this_thread(backend),
    ):
        wrap = NAMESPACES.get(request.param)
        yield wrap(backend.xp) if wrap is not None else backend.xp


@contextlib.contextmanager
def _python_floats_as_float64(backend: agrad.Backend) -> Iterator[None]:
    """Tests write data as Python floats and expect NumPy's float64 (DeZero's dtype); PyTorch
    makes them float32 unless its default dtype says otherwise. agrad's own conversions
    (``Backend.asarray``) give float64 whatever the default (tests/test_backends.py checks)."""
    if backend.name != "torch":
        yield
        return
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


@contextlib.contextmanager
def _dask_in_this_thread(backend: agrad.Backend) -> Iterator[None]:
    """Dask's synchronous scheduler: the tests' arrays have one small chunk, where handing
    tasks to a thread pool costs more than computing them (the examples keep the default)."""
    if backend.name != "dask":
        yield
        return
    import dask

    with dask.config.set(scheduler="synchronous"):
        yield
