"""The backend layer: the only part of agrad that imports an array library.

A backend is one module here exposing ``backend``, an instance of :class:`Backend`. The *default*
backend only decides where agrad creates new arrays; every operation runs on the backend of its
inputs.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Iterator
from typing import Any

from agrad.backends._base import Backend, BackendUnavailableError
from agrad.backends.array_api_strict import backend as _strict
from agrad.backends.cupy import backend as _cupy
from agrad.backends.numpy import backend as _numpy

__all__ = [
    "Backend",
    "BackendFallbackWarning",
    "BackendUnavailableError",
    "backend_of",
    "backend_for_type",
    "available_backends",
    "get_backend",
    "current_backend",
    "known_backends",
    "namespace_of",
    "seed",
    "use",
    "using_backend",
]


class BackendFallbackWarning(UserWarning):
    """``agrad.use`` fell back to NumPy because the requested backend is not usable."""


_REGISTRY: dict[str, Backend] = {b.name: b for b in (_numpy, _cupy, _strict)}
_ALIASES = {
    "np": "numpy",
    "cp": "cupy",
    "cuda": "cupy",
    "gpu": "cupy",
    "strict": "array_api_strict",
}
# array type -> backend; filled as types are met so the lookup costs one dict access
_BY_TYPE: dict[type, Backend] = {}
#: ``backend_for_type(type(x))``: the backend of an array type already met, else None (one dict
#: lookup, for the hot path; ``backend_of`` is the complete lookup)
backend_for_type = _BY_TYPE.get

_default: contextvars.ContextVar[Backend | None] = contextvars.ContextVar(
    "agrad_backend", default=None
)


def known_backends() -> list[str]:
    """Names of every registered backend, usable here or not."""
    return list(_REGISTRY)


def available_backends() -> list[str]:
    """Names of the backends usable on this machine."""
    return [name for name, b in _REGISTRY.items() if b.available]


def get_backend(name: str | Backend) -> Backend:
    """The backend called ``name``; ``ValueError`` listing the known names if there is none."""
    if isinstance(name, Backend):
        return name
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    try:
        return _REGISTRY[key]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown agrad backend {name!r}; known backends: {', '.join(_REGISTRY)}"
        ) from None


def _resolve(name: str | Backend, fallback: bool) -> Backend:
    backend = get_backend(name)
    ok, why = backend.probe()
    if ok:
        return backend
    if not fallback:
        raise BackendUnavailableError(f"agrad backend {backend.name!r} is not usable here: {why}")
    warnings.warn(
        f"agrad backend {backend.name!r} is not usable here ({why}); using 'numpy' instead",
        BackendFallbackWarning,
        stacklevel=3,
    )
    return _numpy


def use(name: str | Backend, fallback: bool = True) -> Backend:
    """Make ``name`` the default backend, where agrad creates new arrays; returns it.

    If it is not usable here, warn once with ``BackendFallbackWarning`` and use NumPy, or raise
    ``BackendUnavailableError`` when ``fallback`` is False.
    """
    backend = _resolve(name, fallback)
    _default.set(backend)
    return backend


def current_backend() -> Backend:
    """The default backend: set by ``use``, else ``$AGRAD_BACKEND``, else NumPy."""
    backend = _default.get()
    if backend is None:
        env = os.environ.get("AGRAD_BACKEND")
        backend = _resolve(env, fallback=True) if env else _numpy
        _default.set(backend)
    return backend


@contextlib.contextmanager
def using_backend(name: str | Backend, fallback: bool = True) -> Iterator[Backend]:
    """Make ``name`` the default backend inside a ``with`` block."""
    token = _default.set(_resolve(name, fallback))
    try:
        yield _default.get()
    finally:
        _default.reset(token)


def backend_of(x: Any, default: Any = ...) -> Backend:
    """The backend whose array ``x`` is; ``TypeError`` (or ``default``) if it belongs to none."""
    backend = _BY_TYPE.get(type(x))
    if backend is not None:
        return backend
    for candidate in _REGISTRY.values():
        if candidate.owns(x):
            _BY_TYPE[type(x)] = candidate
            return candidate
    if default is not ...:
        return default
    raise TypeError(
        f"{type(x).__module__}.{type(x).__qualname__} is not an array of any agrad backend "
        f"({', '.join(_REGISTRY)})"
    )


def namespace_of(x: Any) -> Any:
    """The Array API namespace of array ``x``."""
    return backend_of(x).xp


def is_array(x: Any) -> bool:
    """True if ``x`` is an array of a registered backend."""
    return backend_of(x, None) is not None


def seed(value: int) -> None:
    """Seed the random numbers of every backend (initialisation, shuffling, dropout)."""
    for backend in _REGISTRY.values():
        if backend is _numpy or backend.loaded:  # never import a library just to seed it
            backend.seed(value)
