"""The backend layer: the only part of agrad that imports an array library.

A backend is one module here exposing ``backend``, an instance of :class:`Backend`. The *default*
backend only decides where agrad creates new arrays; every operation runs on the backend of its
inputs.

Examples
--------
>>> import agrad
>>> from agrad.backends import backend_of
>>> with agrad.using_backend("array_api_strict") as backend:
...     x = agrad.Variable(backend.asarray([1.0, 2.0]))
>>> y = x * 2  # runs on x's backend, whatever the default is now
>>> backend_of(y.data).name
'array_api_strict'
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
from agrad.backends.dask import backend as _dask
from agrad.backends.jax import backend as _jax
from agrad.backends.numpy import backend as _numpy
from agrad.backends.torch import backend as _torch

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
    """``agrad.use`` fell back to NumPy because the requested backend is not usable.

    Given once per process and backend, by :func:`use`, :func:`using_backend` and
    :func:`current_backend` (for ``$AGRAD_BACKEND``) when ``fallback`` is True.

    Examples
    --------
    Silence it where NumPy is an acceptable stand-in for a missing GPU:

    >>> import warnings
    >>> import agrad
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", agrad.BackendFallbackWarning)
    ...     with agrad.using_backend("cupy") as backend:
    ...         backend.name in ("cupy", "numpy")
    True
    """


_REGISTRY: dict[str, Backend] = {b.name: b for b in (_numpy, _cupy, _strict, _torch, _jax, _dask)}
_ALIASES = {
    "np": "numpy",
    "cp": "cupy",
    "cuda": "cupy",
    "gpu": "cupy",
    "strict": "array_api_strict",
    "pytorch": "torch",
}
# array type -> backend; filled as types are met so the lookup costs one dict access
_BY_TYPE: dict[type, Backend] = {}
#: ``backend_for_type(type(x))``: the backend of an array type already met, else None (one dict
#: lookup, for the hot path; ``backend_of`` is the complete lookup)
backend_for_type = _BY_TYPE.get


def register_array_type(array_type: type, backend: Any) -> None:
    """Make ``backend_for_type(array_type)`` answer ``backend`` (agrad.jit's traced arrays)."""
    _BY_TYPE[array_type] = backend


# backends whose fallback to NumPy was already announced: once per process is enough
_FALLBACK_WARNED: set[str] = set()
ENVIRONMENT_VARIABLE = "AGRAD_BACKEND"

_default: contextvars.ContextVar[Backend | None] = contextvars.ContextVar(
    "agrad_backend", default=None
)


def known_backends() -> list[str]:
    """Names of every registered backend, usable here or not.

    Returns
    -------
    list of str
        The canonical names, in registration order; none of their libraries is imported.

    See Also
    --------
    available_backends : the ones usable on this machine.

    Examples
    --------
    >>> import agrad
    >>> {"numpy", "cupy", "array_api_strict"} <= set(agrad.known_backends())
    True
    """
    return list(_REGISTRY)


def available_backends() -> list[str]:
    """Names of the backends usable on this machine.

    Probes every registered backend (imports its library and, for CuPy, touches the GPU) the
    first time; the answers are cached.

    Returns
    -------
    list of str
        The names of the usable backends, in registration order; ``'numpy'`` is always one.

    Examples
    --------
    >>> import agrad
    >>> "numpy" in agrad.available_backends()
    True
    >>> set(agrad.available_backends()) <= set(agrad.known_backends())
    True
    """
    return [name for name, b in _REGISTRY.items() if b.available]


def get_backend(name: str | Backend) -> Backend:
    """The backend called ``name``; ``ValueError`` listing the known names if there is none.

    Does not check that the backend is usable here (see :meth:`Backend.probe`).

    Parameters
    ----------
    name : str or Backend
        A backend's name (``'numpy'``, ``'cupy'``, ``'array_api_strict'``, ``'torch'``,
        ``'jax'``, ``'dask'``), an alias (``'np'``, ``'cp'``, ``'cuda'``, ``'gpu'``, ``'strict'``,
        ``'pytorch'``), or a Backend, returned as it is.

    Returns
    -------
    Backend
        The registered backend.

    Raises
    ------
    ValueError
        If ``name`` names no backend; the message lists the known ones.

    Examples
    --------
    >>> import agrad
    >>> agrad.get_backend("strict")
    <agrad backend 'array_api_strict'>
    >>> agrad.get_backend("tpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown agrad backend 'tpu'; known backends: numpy, ...
    """
    if isinstance(name, Backend):
        return name
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    try:
        return _REGISTRY[key]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown agrad backend {name!r}; known backends: {', '.join(_REGISTRY)}"
        ) from None


def _unusable_message(backend: Backend, why: str) -> str:
    return backend.unusable_message(why)


def _resolve(name: str | Backend, fallback: bool) -> Backend:
    backend = get_backend(name)
    ok, why = backend.probe()
    if ok:
        return backend
    if not fallback:
        raise BackendUnavailableError(_unusable_message(backend, why))
    if backend.name not in _FALLBACK_WARNED:
        _FALLBACK_WARNED.add(backend.name)
        warnings.warn(
            f"{_unusable_message(backend, why)}; using 'numpy' instead (this warning is given "
            "once per process)",
            BackendFallbackWarning,
            stacklevel=3,
        )
    return _numpy


def _environment_backend() -> str | None:
    """The backend name in ``$AGRAD_BACKEND`` (None when unset or empty); ``ValueError`` naming
    the variable, its value and the known backends when it names none."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not value:
        return None
    if _ALIASES.get(value, value) not in _REGISTRY:
        aliases = ", ".join(f"{a} ({b})" for a, b in _ALIASES.items())
        raise ValueError(
            f"environment variable {ENVIRONMENT_VARIABLE}={value!r} names no agrad backend; "
            f"known backends: {', '.join(_REGISTRY)}; aliases: {aliases}; unset it for numpy"
        )
    return value


# Checked at import: a typo in the variable is a configuration error that should stop the program
# before it does any work, and checking the name costs nothing (no array library is imported).
# Whether the named backend is usable is only known by probing it (importing CuPy, touching the
# GPU), which waits for the first use and falls back to NumPy with a warning.
_ENVIRONMENT_BACKEND = _environment_backend()


def use(name: str | Backend, fallback: bool = True) -> Backend:
    """Make ``name`` the default backend, where agrad creates new arrays; returns it.

    If it is not usable here, warn once with ``BackendFallbackWarning`` and use NumPy, or raise
    ``BackendUnavailableError`` when ``fallback`` is False. The default is a context variable:
    set here, it holds for this thread or task (threads started later begin with NumPy or
    ``$AGRAD_BACKEND``). For a block of code, :func:`using_backend` restores the previous one.
    The backend's library is loaded here: for JAX that turns on ``jax_enable_x64`` for the
    process and warns once, unless it is on already or ``AGRAD_JAX_X64=0`` (see the backends
    guide); probing (:func:`available_backends`) changes nothing.

    Parameters
    ----------
    name : str or Backend
        The backend, by name or alias as :func:`get_backend` takes it.
    fallback : bool, default True
        Use NumPy (with a warning) instead of raising when the backend is not usable here.

    Returns
    -------
    Backend
        The backend now the default: ``name``'s, or NumPy's after a fallback.

    Raises
    ------
    ValueError
        If ``name`` names no backend.
    BackendUnavailableError
        If the backend is not usable here and ``fallback`` is False; the message gives the root
        cause and, where there is one, how to install it.

    Warns
    -----
    BackendFallbackWarning
        When it falls back to NumPy (once per process and backend).

    Examples
    --------
    >>> import agrad
    >>> previous = agrad.current_backend()
    >>> agrad.use("array_api_strict")
    <agrad backend 'array_api_strict'>
    >>> agrad.Variable(agrad.current_backend().asarray([1.0])).data
    Array([1.], dtype=array_api_strict.float64)
    >>> agrad.use(previous) is previous
    True
    """
    backend = _resolve(name, fallback)
    _ = backend.xp  # load it here, so that its side effects (JAX's x64 flag) happen at this call
    _default.set(backend)
    return backend


def current_backend() -> Backend:
    """The default backend: set by ``use``, else ``$AGRAD_BACKEND``, else NumPy.

    Returns
    -------
    Backend
        Where agrad creates new arrays (parameters, datasets, random numbers).

    Raises
    ------
    ValueError
        If no backend was chosen with :func:`use` and ``$AGRAD_BACKEND`` names no backend.

    Warns
    -----
    BackendFallbackWarning
        If ``$AGRAD_BACKEND`` names a backend that is not usable here (NumPy is used).

    Examples
    --------
    >>> import agrad
    >>> with agrad.using_backend("array_api_strict"):
    ...     agrad.current_backend().name
    'array_api_strict'
    >>> backend = agrad.current_backend()
    >>> backend.asarray([1.0, 2.0], dtype="float32").dtype == backend.dtype("float32")
    True
    """
    backend = _default.get()
    if backend is None:
        env = _environment_backend()
        backend = _resolve(env, fallback=True) if env else _numpy
        _default.set(backend)
    return backend


@contextlib.contextmanager
def using_backend(name: str | Backend, fallback: bool = True) -> Iterator[Backend]:
    """Make ``name`` the default backend inside a ``with`` block.

    The previous default comes back when the block ends, even by an exception.

    Parameters
    ----------
    name : str or Backend
        The backend, by name or alias as :func:`get_backend` takes it.
    fallback : bool, default True
        Use NumPy (with a warning) instead of raising when the backend is not usable here.

    Yields
    ------
    Backend
        The backend in force inside the block.

    Raises
    ------
    ValueError
        If ``name`` names no backend.
    BackendUnavailableError
        If the backend is not usable here and ``fallback`` is False.

    Examples
    --------
    >>> import agrad
    >>> before = agrad.current_backend()
    >>> with agrad.using_backend("np") as backend:
    ...     backend.name
    'numpy'
    >>> agrad.current_backend() is before
    True
    """
    backend = _resolve(name, fallback)
    _ = backend.xp  # as in use: a backend's load happens here
    token = _default.set(backend)
    try:
        yield _default.get()
    finally:
        _default.reset(token)


def backend_of(x: Any, default: Any = ...) -> Backend:
    """The backend whose array ``x`` is; ``TypeError`` (or ``default``) if it belongs to none.

    Each array type is looked up once; from then on ``backend_for_type(type(x))`` (one dict
    lookup, None for a type not met yet) answers for it too.

    Parameters
    ----------
    x : object
        An array of a registered backend (not a Variable: pass ``v.data``).
    default : object, optional
        Returned instead of raising when ``x`` belongs to no backend.

    Returns
    -------
    Backend or object
        The backend that owns ``x``, else ``default``.

    Raises
    ------
    TypeError
        If ``x`` belongs to no backend and no ``default`` is given; the message names its type.

    Examples
    --------
    >>> import agrad
    >>> from agrad.backends import backend_for_type, backend_of
    >>> x = agrad.get_backend("strict").asarray([1.0, 2.0])
    >>> backend_of(x)
    <agrad backend 'array_api_strict'>
    >>> backend_for_type(type(x))
    <agrad backend 'array_api_strict'>
    >>> backend_of([1.0, 2.0], None) is None
    True
    >>> backend_of([1.0, 2.0])
    Traceback (most recent call last):
    ...
    TypeError: builtins.list is not an array of any agrad backend (numpy, ...)
    """
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
    """The Array API namespace of array ``x``.

    Parameters
    ----------
    x : object
        An array of a registered backend.

    Returns
    -------
    module
        The namespace its backend computes with (``backend_of(x).xp``): array-api-compat's NumPy
        or CuPy namespace, or ``array_api_strict``.

    Raises
    ------
    TypeError
        If ``x`` is not an array of any backend.

    Examples
    --------
    >>> import agrad
    >>> from agrad.backends import namespace_of
    >>> x = agrad.current_backend().asarray([1.0, 4.0])
    >>> xp = namespace_of(x)
    >>> agrad.current_backend().to_host(xp.sqrt(x)).tolist()
    [1.0, 2.0]
    """
    return backend_of(x).xp


def is_array(x: Any) -> bool:
    """True if ``x`` is an array of a registered backend.

    Examples
    --------
    >>> import agrad
    >>> from agrad.backends import is_array
    >>> is_array(agrad.current_backend().asarray([1.0])), is_array([1.0])
    (True, False)
    """
    return backend_of(x, None) is not None


def seed(value: int) -> None:
    """Seed the random numbers of every backend in use (initialisation, shuffling, dropout).

    Initial weights (:meth:`Backend.host_randn`), data sets and a DataLoader's shuffling draw
    from the host generator (NumPy's), so they are the same on every backend for one seed;
    dropout draws on each backend's device generator and differs between backends.

    A backend counts as in use once it was probed usable (``use``, ``using_backend``, its
    ``available``) or its namespace loaded; one never touched is not imported just to be seeded.

    Parameters
    ----------
    value : int
        The seed, given to each backend's :meth:`Backend.seed`.

    Examples
    --------
    >>> import agrad
    >>> backend = agrad.current_backend()
    >>> agrad.seed(0)
    >>> a = backend.random((3,))
    >>> agrad.seed(0)
    >>> b = backend.random((3,))
    >>> bool(backend.xp.all(a == b))
    True
    """
    for backend in _REGISTRY.values():
        probed_usable = backend._probe is not None and backend._probe[0]
        if backend is _numpy or probed_usable or backend.loaded:
            backend.seed(value)
