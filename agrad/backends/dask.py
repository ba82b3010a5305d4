"""Dask: chunked, lazy arrays; agrad builds its graph on top of Dask's task graph.

Every operation agrad records is a Dask expression; nothing is computed until a value is needed on
the host (``to_host``, ``float()``, printing) or ``.compute()`` is called on ``Variable.data``, so
a gradient over a data set larger than one chunk is computed chunk by chunk by Dask's scheduler
(a local one, or a ``dask.distributed`` cluster once a ``Client`` is made).

Dask cannot know some shapes before it computes (``x[mask]`` with a boolean mask). agrad needs
every shape to build the backward pass, so an array with an unknown shape is refused with an error
that says so (call ``.compute_chunk_sizes()`` on it first).
"""

from __future__ import annotations

import importlib
import math
import sys
from typing import Any

from agrad.backends._base import Backend, flat_positions
from agrad.backends.numpy import host


class UnknownShapeError(ValueError):
    """A Dask array whose shape is not known until it is computed."""


def _da() -> Any:
    return importlib.import_module("dask.array")


def require_known_shape(x: Any, what: str) -> None:
    """Raise ``UnknownShapeError`` naming ``what`` if Dask does not know ``x``'s shape."""
    if any(isinstance(n, float) and math.isnan(n) for n in x.shape):
        raise UnknownShapeError(
            f"{what}: the Dask array has an unknown shape {tuple(x.shape)} (nan: known only after "
            "computing, as after x[mask]); agrad needs every shape to build the backward pass; "
            "call .compute_chunk_sizes() on the array first"
        )


class _Namespace:
    """array-api-compat's ``dask.array`` namespace plus what it lacks (``take_along_axis``, a
    ``reshape`` that takes any shape, NumPy's ``float16``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.__name__ = inner.__name__
        self.float16 = host.float16  # chunks are NumPy arrays; the standard names no float16

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        setattr(self, name, value)  # later lookups skip __getattr__
        return value

    def reshape(self, x: Any, /, shape: tuple[int, ...], *, copy: bool | None = None) -> Any:
        """``x`` in ``shape``; where Dask refuses (it reshapes only by merging or splitting whole
        dimensions, e.g. not ``(a, b * c) -> (a * b, c)`` across chunks), through the flat array:
        merging every dimension and splitting one are both moves Dask knows."""
        try:
            return self._inner.reshape(x, shape, copy=copy)
        except NotImplementedError:
            return self._inner.reshape(self._inner.reshape(x, (-1,), copy=copy), shape)

    def take_along_axis(self, x: Any, indices: Any, /, *, axis: int = -1) -> Any:
        """``x``'s entries at ``indices`` along ``axis``, by comparison with every position
        (Dask has no gather along an axis; the one-hot sum stays chunked and lazy)."""
        xp = self._inner
        axis %= x.ndim
        n = x.shape[axis]
        positions = xp.reshape(xp.arange(n), (n, *(1,) * (x.ndim - axis - 1)))
        hit = xp.expand_dims(indices, axis=axis + 1) == positions  # (..., K, n, ...)
        zero = xp.zeros((), dtype=x.dtype)
        return xp.sum(xp.where(hit, xp.expand_dims(x, axis=axis), zero), axis=axis + 1)

    def __repr__(self) -> str:
        return f"<agrad's {self.__name__}>"


class DaskBackend(Backend):
    """Arrays are ``dask.array.Array`` (chunks of NumPy arrays) computed by Dask's scheduler;
    random numbers from a ``dask.array.random`` generator this backend holds."""

    name = "dask"
    known_shapes = False
    lazy = True
    slow_dispatch = True
    checks_index_bounds = False  # a Dask index array is never checked (a NumPy one is)
    ints_are_advanced = False
    mutable_arrays = False  # no buffer to write into: `x += y` makes a new Dask array

    def __init__(self) -> None:
        super().__init__()
        self._generator: Any = None

    def _check(self) -> None:
        da = _da()
        da.zeros(2, chunks=1).sum().compute()
        importlib.import_module("array_api_compat.dask.array")

    def install_hint(self) -> str:
        if self.probe()[0]:
            return ""
        return (
            "install Dask: from a checkout `pip install -e '.[dask]'`, "
            "else `pip install 'dask[array]'`"
        )

    def _load(self) -> tuple[Any, type]:
        self.require()
        return _Namespace(importlib.import_module("array_api_compat.dask.array")), _da().Array

    def owns(self, x: Any) -> bool:
        module = sys.modules.get("dask.array")
        return module is not None and isinstance(x, module.Array)

    def is_writable(self, x: Any) -> bool:
        return False  # see mutable_arrays

    def require_known_shape(self, x: Any, what: str) -> None:
        require_known_shape(x, what)

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        if self.owns(data):
            require_known_shape(data, "agrad.backends dask asarray")
        return super().asarray(data, dtype)

    def to_host(self, x: Any) -> Any:
        return host.array(x.compute() if self.owns(x) else x)

    def persist(self, arrays: list[Any]) -> list[Any]:
        return list(importlib.import_module("dask").persist(*arrays))

    def from_result(self, value: Any) -> Any:
        return value if isinstance(value, self.array_type) else self.xp.asarray(value)

    def dtype(self, name: str) -> Any:
        return host.dtype(name)  # Dask's dtypes are NumPy's

    def dtype_name(self, dtype: Any) -> str:
        return host.dtype(dtype).name

    def device_name(self) -> str:
        scheduler = importlib.import_module("dask").config.get("scheduler", None)
        return f"CPU (Dask, {scheduler or 'default'} scheduler)"

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        # Dask has no accumulating scatter: the sums per flat position come from bincount, which
        # adds repeated positions, and stay lazy and chunked
        da = _da()
        shape = tuple(target.shape)
        size = math.prod(shape)
        positions = flat_positions(self.xp, shape, indices)
        require_known_shape(positions, "scatter_add (the gradient of x[indices])")
        values = da.broadcast_to(da.asarray(values), tuple(positions.shape))
        flat = self.xp.reshape(positions, (-1,))
        weights = self.xp.reshape(values, (-1,)).rechunk(flat.chunks)  # bincount: same chunks
        sums = da.bincount(flat, weights=weights, minlength=size)
        return target + da.reshape(sums, shape).astype(target.dtype)

    # -- random numbers: one generator held here ---------------------------------------------
    def _rng(self) -> Any:
        if self._generator is None:
            self.seed(0)
        return self._generator

    def seed(self, seed: int) -> None:
        self.require()
        self._generator = _da().random.default_rng(seed)

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return self._rng().random(shape).astype(dtype or host.float64)

    def randn(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return self._rng().standard_normal(shape).astype(dtype or host.float64)

    def permutation(self, n: int) -> Any:
        return self._rng().permutation(n)


backend = DaskBackend()
