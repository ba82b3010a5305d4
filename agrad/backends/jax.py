"""JAX: immutable arrays, computed on eagerly; agrad differentiates, ``jax.grad`` is never used.

Three things differ from NumPy and are handled here. Arrays are immutable: ``mutable_arrays`` is
False, so agrad builds every result as a new array (``x.at[i].set(v)``, ``x.at[i].add(v)``).
Random numbers come from a PRNG key this backend holds and splits at every draw (``seed``
replaces it). And JAX computes in 32 bits unless ``jax_enable_x64`` is on: agrad turns it on when
this backend loads, since agrad keeps float64 as float64 (DeZero's default dtype, and what
gradient checks need); a program that wants JAX's 32-bit default must cast its data itself.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from agrad.backends._base import Backend
from agrad.backends.numpy import host


def _jax() -> Any:
    return importlib.import_module("jax")


class JaxBackend(Backend):
    """Arrays are ``jax.Array`` on JAX's default device (a GPU where jaxlib has CUDA)."""

    name = "jax"
    mutable_arrays = False

    def __init__(self) -> None:
        super().__init__()
        self._key: Any = None

    def _check(self) -> None:
        jax = _jax()
        jax.config.update("jax_enable_x64", True)
        float(importlib.import_module("jax.numpy").zeros(1).sum())  # the default device answers

    def install_hint(self) -> str:
        ok, why = self.probe()
        if ok:
            return ""
        if why.startswith(("ModuleNotFoundError", "ImportError")):
            return "install JAX: from a checkout `pip install -e '.[jax]'`, else `pip install jax`"
        return "JAX is installed; `python -c 'import jax; print(jax.devices())'` shows why it fails"

    def _load(self) -> tuple[Any, type]:
        self.require()  # also turns on jax_enable_x64
        return importlib.import_module("jax.numpy"), _jax().Array

    def owns(self, x: Any) -> bool:
        module = sys.modules.get("jax")
        return module is not None and isinstance(x, module.Array)

    def to_host(self, x: Any) -> Any:
        return host.array(x)  # a writable copy: numpy.asarray of a JAX array is read-only

    def from_result(self, value: Any) -> Any:
        return value if isinstance(value, self.array_type) else self.xp.asarray(value)

    def is_writable(self, x: Any) -> bool:
        return False

    def dtype(self, name: str) -> Any:
        return host.dtype(name)  # JAX's dtypes are NumPy's

    def dtype_name(self, dtype: Any) -> str:
        return host.dtype(dtype).name

    def array_device(self, x: Any) -> str:
        device = next(iter(x.devices()))
        return "cpu" if device.platform == "cpu" else f"{device.platform}:{device.id}"

    def device_name(self) -> str:
        device = _jax().devices()[0]
        return f"JAX {device.platform}:{device.id} ({device.device_kind})"

    def devices(self) -> list[str]:
        return [f"JAX {d.platform}:{d.id} ({d.device_kind})" for d in _jax().devices()]

    def set_at(self, target: Any, key: Any, value: Any) -> Any:
        return target.at[key].set(value)

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        return target.at[indices].add(values)  # repeated indices accumulate

    # -- random numbers: a key held here, split at every draw --------------------------------
    def _next_key(self) -> Any:
        random = importlib.import_module("jax.random")
        if self._key is None:
            self.require()
            self._key = random.key(0)
        self._key, draw = random.split(self._key)
        return draw

    def seed(self, seed: int) -> None:
        self.require()
        self._key = importlib.import_module("jax.random").key(seed)

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        random = importlib.import_module("jax.random")
        return random.uniform(self._next_key(), shape, dtype=dtype or host.float64)

    def randn(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        random = importlib.import_module("jax.random")
        return random.normal(self._next_key(), shape, dtype=dtype or host.float64)

    def permutation(self, n: int) -> Any:
        return importlib.import_module("jax.random").permutation(self._next_key(), n)


backend = JaxBackend()
