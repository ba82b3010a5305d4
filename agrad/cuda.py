"""DeZero's ``cuda`` module: GPU detection and moving arrays between NumPy and CuPy.

``agrad.cuda.gpu_enable`` is True when the CuPy backend is usable here (CuPy installed and a CUDA
device visible). It is probed on first access, so ``import agrad`` does not import CuPy.

Examples
--------
>>> import agrad
>>> isinstance(agrad.cuda.gpu_enable, bool)
True
"""

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
    """The array namespace of ``x`` (a Variable or an array); NumPy's for anything else.

    Unlike DeZero's, it returns the Array API namespace (array-api-compat's wrapper of NumPy or
    CuPy, or ``array_api_strict``), which has the standard's functions on every backend.

    Parameters
    ----------
    x : Variable, array or object
        What to find the namespace of.

    Returns
    -------
    module
        The namespace of ``x``'s backend; NumPy's for Python numbers and other objects.

    Examples
    --------
    >>> import agrad
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([1.0, 2.0]))
    >>> xp = agrad.cuda.get_array_module(x)
    >>> xp is backend.xp
    True
    >>> float(xp.sum(x.data))
    3.0
    """
    backend = backend_of(_unwrap(x), None)
    return (backend or get_backend("numpy")).xp


def as_numpy(x: Any) -> Any:
    """``x`` as a NumPy array on the host (scalars become 0-d arrays).

    Parameters
    ----------
    x : Variable, array or number
        An array of any backend (copied from the GPU for CuPy), a Variable (its data) or a
        Python/NumPy number.

    Returns
    -------
    numpy.ndarray
        The values of ``x`` on the host.

    Raises
    ------
    TypeError
        If ``x`` is neither a number nor an array of an agrad backend.

    Examples
    --------
    >>> import agrad
    >>> x = agrad.Variable(agrad.current_backend().asarray([1.0, 2.0]))
    >>> agrad.cuda.as_numpy(x)
    array([1., 2.])
    >>> agrad.cuda.as_numpy(3.0)
    array(3.)
    """
    x = _unwrap(x)
    numpy = get_backend("numpy")
    if _is_number(x):
        return numpy.xp.asarray(_scalar(x))
    return backend_of(x).to_host(x)


def as_cupy(x: Any) -> Any:
    """``x`` as a CuPy array on the current CUDA device; ``BackendUnavailableError`` without one.

    Parameters
    ----------
    x : Variable, array or number
        An array of any backend, a Variable (its data) or a number.

    Returns
    -------
    cupy.ndarray
        The values of ``x`` on the GPU.

    Raises
    ------
    agrad.BackendUnavailableError
        If CuPy is not installed or no CUDA device is usable; the message says which.

    Examples
    --------
    >>> import agrad
    >>> x = agrad.current_backend().asarray([1.0, 2.0])
    >>> y = agrad.cuda.as_cupy(x) if agrad.cuda.gpu_enable else None  # only with a GPU
    >>> y is None or agrad.cuda.as_numpy(y).tolist() == [1.0, 2.0]
    True
    """
    cupy = get_backend("cupy")
    cupy.require()
    x = _unwrap(x)
    return cupy.asarray(_scalar(x) if _is_number(x) else x)
