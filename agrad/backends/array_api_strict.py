"""array-api-strict: the Array API standard and nothing more; proves agrad relies on no extras."""

from __future__ import annotations

import importlib
from typing import Any

from agrad.backends._base import Backend
from agrad.backends.numpy import backend as numpy_backend
from agrad.backends.numpy import draw_normal, draw_uniform, host


def _module() -> Any:
    return importlib.import_module("array_api_strict")


class ArrayApiStrictBackend(Backend):
    """Arrays are ``array_api_strict.Array`` on the host; random numbers are drawn by NumPy."""

    name = "array_api_strict"

    def _check(self) -> None:
        _module().zeros(1)

    def install_hint(self) -> str:
        if self.probe()[0]:
            return ""
        return (
            "install array-api-strict: from a checkout `pip install -e '.[strict]'`, "
            "else `pip install array-api-strict`"
        )

    def _load(self) -> tuple[Any, type]:
        xp = _module()
        return xp, type(xp.asarray(0.0))  # the Array class is not exported by name

    def owns(self, x: Any) -> bool:
        import sys

        if sys.modules.get("array_api_strict") is None:
            return False
        return isinstance(x, self.array_type)

    def to_host(self, x: Any) -> Any:
        return host.asarray(x)

    def is_writable(self, x: Any) -> bool:
        return x._array.flags.writeable  # the NumPy array inside; broadcast views are read-only

    def dtype_name(self, dtype: Any) -> str:
        return str(dtype).rsplit(".", 1)[-1]

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        return self._from_host(
            numpy_backend.scatter_add(
                host.asarray(target), _host_index(indices), host.asarray(values)
            )
        )

    def _from_host(self, a: Any) -> Any:
        return self.xp.asarray(host.ascontiguousarray(a))

    def seed(self, seed: int) -> None:
        numpy_backend.seed(seed)

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return self.xp.asarray(draw_uniform(shape), dtype=dtype)

    def randn(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return self.xp.asarray(draw_normal(shape), dtype=dtype)

    def permutation(self, n: int) -> Any:
        return self.xp.asarray(host.random.permutation(n))


def _host_index(index: Any) -> Any:
    """Turn an index that may hold strict arrays into one NumPy understands."""
    if isinstance(index, tuple):
        return tuple(_host_index(i) for i in index)
    if backend.owns(index):
        return host.asarray(index)
    return index


backend = ArrayApiStrictBackend()
