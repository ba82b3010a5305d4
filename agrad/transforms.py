"""Per-item data transforms (DeZero's ``transforms``), applied by a ``Dataset`` to each item.

They work on host NumPy arrays (what data sets hold) and on arrays of any agrad backend.
The PIL-image transforms of DeZero (``Convert``, ``Resize``, ``CenterCrop``, ``ToArray``,
``ToPIL``) are not provided: Pillow is not a dependency.
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
    """Apply ``transforms`` in order (an empty list is the identity)."""

    def __init__(self, transforms: Sequence[Callable] = ()) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class Normalize:
    """``(x - mean) / std``; a sequence ``mean``/``std`` applies per channel (axis 0)."""

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
        x, backend = _as_array(x)
        return (x - self._shaped(self.mean, x, backend)) / self._shaped(self.std, x, backend)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean!r}, std={self.std!r})"


class Flatten:
    """Flatten one item to a vector."""

    def __call__(self, x: Any) -> Any:
        x, backend = _as_array(x)
        return backend.xp.reshape(x, (-1,))

    def __repr__(self) -> str:
        return "Flatten()"


class AsType:
    """Cast to ``dtype`` (a name such as ``'float32'`` or a NumPy dtype)."""

    def __init__(self, dtype: Any = "float32") -> None:
        self.dtype = dtype

    def __call__(self, x: Any) -> Any:
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
    """Cast to a floating dtype (float32 by default)."""


class ToInt(AsType):
    """Cast to an integer dtype (int64 by default)."""

    def __init__(self, dtype: Any = "int64") -> None:
        super().__init__(dtype)
