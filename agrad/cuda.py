"""DeZero's ``cuda`` module: GPU detection and moving arrays between NumPy and CuPy."""

from __future__ import annotations

from typing import Any

from agrad.backends import backend_of, get_backend
from agrad.core import Variable, _is_number, _scalar


def __getattr__(name: str) -> Any:
    # probed on first access so that `import agrad` does not import CuPy
    if name == "gpu_enable":
        return get_backend("cupy").available
    raise AttributeError(f"module 'agrad.cuda' has no attribute {name!r}")


def _unwrap(x: Any) -> Any:
    return x.data if isinstance(x, Variable) else x


def get_array_module(x: Any) -> Any:
    """The array namespace of ``x`` (a Variable or an array); NumPy's for anything else."""
    backend = backend_of(_unwrap(x), None)
    return (backend or get_backend("numpy")).xp


def as_numpy(x: Any) -> Any:
    """``x`` as a NumPy array on the host (scalars become 0-d arrays)."""
    x = _unwrap(x)
    numpy = get_backend("numpy")
    if _is_number(x):
        return numpy.xp.asarray(_scalar(x))
    return backend_of(x).to_host(x)


def as_cupy(x: Any) -> Any:
    """``x`` as a CuPy array on the current CUDA device; ``BackendUnavailableError`` without one."""
    cupy = get_backend("cupy")
    cupy.require()
    x = _unwrap(x)
    return cupy.asarray(_scalar(x) if _is_number(x) else x)
