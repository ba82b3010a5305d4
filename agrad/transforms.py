"""Per-item data transforms (DeZero's ``transforms``), applied by a ``Dataset`` to each item.

They work on host NumPy arrays (what data sets hold) and on arrays of any agrad backend; the
result is on the backend of the input. Python numbers and lists become host NumPy arrays.
The PIL-image transforms of DeZero (``Convert``, ``Resize``, ``CenterCrop``, ``ToArray``,
``ToPIL``) are not provided: Pillow is not a dependency.

Examples
--------
>>> import agrad
>>> from agrad import transforms
>>> t = transforms.Compose([transforms.Normalize(mean=1.0, std=2.0), transforms.Flatten()])
>>> x = agrad.current_backend().asarray([[1.0, 3.0], [5.0, 7.0]])
>>> agrad.cuda.as_numpy(t(x)).tolist()
[0.0, 1.0, 2.0, 3.0]
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

from agrad.backends import backend_of, get_backend

__all__ = ["Compose", "Normalize", "Flatten", "AsType", "ToFloat", "ToInt"]


def _backend(x: Any) -> Any:
    backend = backend_of(x, None)
    return backend if backend is not None else get_backend("numpy")


def _as_array(x: Any) -> tuple[Any, Any]:
    """``(array, backend)``; Python numbers and lists become host NumPy arrays."""
    backend = backend_of(x, None)
    if backend is None:
        backend = get_backend("numpy")
        x = backend.xp.asarray(x)
    return x, backend


class Compose:
    """Apply ``transforms`` in order (an empty list is the identity).

    Parameters
    ----------
    transforms : sequence of callable, default ()
        Each takes one item and returns the transformed item.

    Examples
    --------
    >>> import agrad
    >>> from agrad import transforms
    >>> t = transforms.Compose([transforms.Flatten(), transforms.AsType("float32")])
    >>> t
    Compose([Flatten(), AsType('float32')])
    >>> backend = agrad.current_backend()
    >>> y = t(backend.asarray([[1, 2], [3, 4]]))
    >>> y.shape, backend.dtype_name(y.dtype)
    ((4,), 'float32')
    >>> transforms.Compose()(5)
    5
    """

    def __init__(self, transforms: Sequence[Callable] = ()) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        """``x`` after every transform."""
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class Normalize:
    """``(x - mean) / std``; a sequence ``mean``/``std`` applies per channel (axis 0).

    Parameters
    ----------
    mean : float or sequence of float, default 0
        Subtracted; one value per channel (the first axis of an item, as in ``(C, H, W)``) when a
        sequence.
    std : float or sequence of float, default 1
        Divided by, likewise.

    Examples
    --------
    >>> import agrad
    >>> from agrad.transforms import Normalize
    >>> x = agrad.current_backend().asarray([[[0.0, 2.0]], [[10.0, 30.0]]])  # (C=2, H=1, W=2)
    >>> y = Normalize(mean=[1.0, 10.0], std=[1.0, 10.0])(x)
    >>> agrad.cuda.as_numpy(y).tolist()
    [[[-1.0, 1.0]], [[0.0, 2.0]]]
    """

    def __init__(self, mean: float | Sequence[float] = 0, std: float | Sequence[float] = 1) -> None:
        self.mean = mean
        self.std = std

    def _shaped(self, value: Any, x: Any, backend: Any) -> Any:
        if isinstance(value, numbers.Number):
            return value
        xp = backend.xp
        value = xp.asarray(list(value), dtype=x.dtype)
        return xp.reshape(value, (value.shape[0],) + (1,) * (x.ndim - 1))

    def __call__(self, x: Any) -> Any:
        """``x`` normalised, with ``x``'s dtype for sequence ``mean``/``std``."""
        x, backend = _as_array(x)
        return (x - self._shaped(self.mean, x, backend)) / self._shaped(self.std, x, backend)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean!r}, std={self.std!r})"


class Flatten:
    """Flatten one item to a vector.

    Examples
    --------
    >>> import agrad
    >>> from agrad.transforms import Flatten
    >>> Flatten()(agrad.current_backend().xp.zeros((2, 3, 4))).shape
    (24,)
    """

    def __call__(self, x: Any) -> Any:
        """``x`` reshaped to one dimension."""
        x, backend = _as_array(x)
        return backend.xp.reshape(x, (-1,))

    def __repr__(self) -> str:
        return "Flatten()"


class AsType:
    """Cast to ``dtype`` (a name such as ``'float32'`` or a NumPy dtype).

    Parameters
    ----------
    dtype : str, numpy.dtype or type, default "float32"
        The target dtype: a name of the Array API standard (``"float32"``, ``"int64"``, ...), a
        NumPy dtype, or the Python types ``float`` (float64) and ``int`` (int64). It is resolved
        on the backend of each item.

    Examples
    --------
    >>> import agrad
    >>> from agrad.transforms import AsType
    >>> backend = agrad.current_backend()
    >>> y = AsType("float32")(backend.asarray([1, 2, 3]))
    >>> backend.dtype_name(y.dtype)
    'float32'
    >>> backend.dtype_name(AsType(int)(backend.asarray([1.5])).dtype)
    'int64'
    """

    def __init__(self, dtype: Any = "float32") -> None:
        self.dtype = dtype

    def __call__(self, x: Any) -> Any:
        """``x`` cast to the dtype."""
        x, backend = _as_array(x)
        name = self.dtype if isinstance(self.dtype, str) else _dtype_name(self.dtype)
        return backend.xp.astype(x, backend.dtype(name))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.dtype!r})"


def _dtype_name(dtype: Any) -> str:
    if dtype is int:
        return "int64"
    if dtype is float:
        return "float64"
    return get_backend("numpy").dtype_name(dtype)


class ToFloat(AsType):
    """Cast to a floating dtype (float32 by default).

    Examples
    --------
    >>> import agrad
    >>> from agrad.transforms import ToFloat
    >>> backend = agrad.current_backend()
    >>> backend.dtype_name(ToFloat()(backend.asarray([1, 2])).dtype)
    'float32'
    """


class ToInt(AsType):
    """Cast to an integer dtype (int64 by default).

    Examples
    --------
    >>> import agrad
    >>> from agrad.transforms import ToInt
    >>> backend = agrad.current_backend()
    >>> y = ToInt()(backend.asarray([1.0, 2.0]))
    >>> backend.dtype_name(y.dtype), agrad.cuda.as_numpy(y).tolist()
    ('int64', [1, 2])
    """

    def __init__(self, dtype: Any = "int64") -> None:
        super().__init__(dtype)
