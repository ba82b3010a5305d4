"""JAX: immutable arrays, computed on eagerly; agrad differentiates, ``jax.grad`` is never used.

Three things differ from NumPy and are handled here. Arrays are immutable: ``mutable_arrays`` is
False, so agrad builds every result as a new array (``x.at[i].set(v)``, ``x.at[i].add(v)``).
Random numbers come from a PRNG key this backend holds and splits at every draw (``seed``
replaces it). And JAX computes in 32 bits unless ``jax_enable_x64`` is on.

That flag is process-wide, and JAX offers no way to keep float64 working for agrad's arrays
alone: its scoped ``jax.enable_x64`` context covers array creation, but arrays made inside it
lose float64 in operations outside it (``x * 2`` and ``sum(x)`` come back float32), and
agrad's operators run wherever the user calls them. So:

- probing the backend (``agrad.available_backends()``, ``python -m agrad info``,
  ``Backend.probe``) imports JAX and leaves the flag as it is;
- loading it (``agrad.use("jax")``, ``agrad.using_backend("jax")``, or the first array agrad
  makes on JAX) turns the flag on,
  since agrad keeps float64 as float64 (DeZero's default dtype, what gradient checks need), and
  says so once with a ``UserWarning``, unless the flag is on already (``JAX_ENABLE_X64=1`` in
  the environment, or ``jax.config.update("jax_enable_x64", True)`` before agrad loads JAX:
  the way to silence the warning);
- ``AGRAD_JAX_X64=0`` in the environment keeps JAX's 32-bit default: agrad then leaves the flag
  alone and computes in float32 on JAX (JAX truncates float64 requests to float32, and warns
  where they are explicit).
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from typing import Any

from agrad.backends._base import Backend
from agrad.backends.numpy import host

#: set to 0 to keep JAX's 32-bit default (agrad then leaves ``jax_enable_x64`` off)
X64_VARIABLE = "AGRAD_JAX_X64"


def _jax() -> Any:
    return importlib.import_module("jax")


def _enable_x64() -> None:
    """Turn ``jax_enable_x64`` on for the process unless it is on or the user opted out; say so."""
    jax = _jax()
    if jax.config.jax_enable_x64:
        return
    if os.environ.get(X64_VARIABLE, "").strip() == "0":
        return
    jax.config.update("jax_enable_x64", True)
    warnings.warn(
        "agrad turned on jax_enable_x64 for this process, so that float64 stays float64: JAX "
        "arrays made elsewhere without a dtype are now 64-bit too (jnp.asarray(1.0) is "
        "float64). Set JAX_ENABLE_X64=1 (or jax.config.update('jax_enable_x64', True)) before "
        f"agrad loads JAX to silence this, or {X64_VARIABLE}=0 to keep JAX's 32-bit default "
        "(agrad then computes in float32 on JAX)",
        UserWarning,
        stacklevel=5,  # _enable_x64, _load, Backend.__getattr__, agrad.use: the user's call
    )


class JaxBackend(Backend):
    """Arrays are ``jax.Array`` on JAX's default device (a GPU where jaxlib has CUDA)."""

    name = "jax"
    mutable_arrays = False
    slow_dispatch = True
    checks_index_bounds = False  # out-of-range indices clamp to the last row

    def erf(self, x: Any) -> Any:
        return importlib.import_module("jax.scipy.special").erf(x)

    def sigmoid(self, x: Any) -> Any:
        jax = _jax()
        if not jax.numpy.issubdtype(x.dtype, jax.numpy.inexact):  # its logistic takes no ints
            return super().sigmoid(x)
        return jax.nn.sigmoid(x)

    def __init__(self) -> None:
        super().__init__()
        self._key: Any = None

    def _check(self) -> None:
        # the flag stays as it is: probing must change nothing in the user's JAX (see the module
        # docstring); _load turns it on
        _jax()
        float(importlib.import_module("jax.numpy").zeros(1).sum())  # the default device answers

    def install_hint(self) -> str:
        ok, why = self.probe()
        if ok:
            return ""
        if why.startswith(("ModuleNotFoundError", "ImportError")):
            return "install JAX: from a checkout `pip install -e '.[jax]'`, else `pip install jax`"
        return "JAX is installed; `python -c 'import jax; print(jax.devices())'` shows why it fails"

    def _load(self) -> tuple[Any, type]:
        self.require()
        _enable_x64()
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

    def compile(self, fn: Any) -> Any:
        return _jax().jit(fn)  # XLA: one fused program for the whole replayed step

    def set_at(self, target: Any, key: Any, value: Any) -> Any:
        return target.at[key].set(value)

    def add_at(self, target: Any, key: Any, value: Any) -> Any:
        return target.at[key].add(value)  # one dispatch, not a read, an add and a write

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        # repeated indices accumulate; an index out of range clamps, as in the gather of x[key]
        # (the default, "drop", would lose the gradient of a row the forward did read)
        return target.at[indices].add(values, mode="clip")

    # -- random numbers: a key held here, split at every draw --------------------------------
    def _next_key(self) -> Any:
        random = importlib.import_module("jax.random")
        if self._key is None:
            _ = self.xp  # loads the backend (and the x64 flag) before the first draw
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
