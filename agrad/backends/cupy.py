"""CuPy: the CUDA GPU backend. Usable only where CuPy imports and a CUDA device answers."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from agrad.backends._base import Backend, BackendUnavailableError
from agrad.backends.numpy import host


class CupyBackend(Backend):
    """Arrays are ``cupy.ndarray`` on the current CUDA device."""

    name = "cupy"
    gpu = True
    checks_index_bounds = False  # CuPy wraps an out-of-range index array around

    def erf(self, x: Any) -> Any:
        return importlib.import_module("cupyx.scipy.special").erf(x)

    def _check(self) -> None:
        cupy = importlib.import_module("cupy")
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            raise RuntimeError("CuPy imports but no CUDA device is visible")
        cupy.zeros(1).sum().item()  # a kernel launch proves the driver and device work
        importlib.import_module("array_api_compat.cupy")  # the namespace agrad computes through

    def install_hint(self) -> str:
        ok, why = self.probe()
        if ok:
            return ""
        if why.startswith(("ModuleNotFoundError", "ImportError")) and "cupy" in why:
            return (
                "install CuPy for your CUDA driver (nvidia-smi shows its CUDA version): from a "
                "checkout `pip install -e '.[cuda12]'` or `pip install -e '.[cuda13]'`, "
                "else `pip install cupy-cuda12x` or `pip install cupy-cuda13x`"
            )
        return "CuPy is installed; check that `nvidia-smi` lists a GPU and that its driver works"

    def library(self) -> Any:
        """The ``cupy`` module itself (for code that needs CUDA specifics, e.g. NCCL); imports it
        without touching a device. ``BackendUnavailableError`` if CuPy is not installed."""
        try:
            return importlib.import_module("cupy")
        except ImportError as exc:
            raise BackendUnavailableError(
                self.unusable_message(f"{type(exc).__name__}: {exc}")
            ) from exc

    def nccl(self) -> Any:
        """CuPy's NCCL bindings (``cupy.cuda.nccl``); ImportError when CuPy was built without."""
        return importlib.import_module("cupy.cuda.nccl")

    def _load(self) -> tuple[Any, type]:
        self.require()
        cupy = importlib.import_module("cupy")
        xp = importlib.import_module("array_api_compat.cupy")
        return xp, cupy.ndarray

    def owns(self, x: Any) -> bool:
        module = sys.modules.get("cupy")
        return module is not None and isinstance(x, module.ndarray)

    def to_host(self, x: Any) -> Any:
        return x.get()

    def is_writable(self, x: Any) -> bool:
        # CuPy has no read-only flag: a broadcast view shows itself by a zero stride
        return all(stride != 0 or n <= 1 for stride, n in zip(x.strides, x.shape))

    # CuPy's dtypes are NumPy's
    def dtype(self, name: str) -> Any:
        return host.dtype(name)

    def dtype_name(self, dtype: Any) -> str:
        return host.dtype(dtype).name

    def array_device(self, x: Any) -> str:
        return str(x.device.id)

    def device_name(self) -> str:
        cupy = importlib.import_module("cupy")
        device = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(device.id)
        name = props["name"]
        return f"CUDA device {device.id} ({name.decode() if isinstance(name, bytes) else name})"

    def devices(self) -> list[str]:
        cupy = importlib.import_module("cupy")
        found = []
        for i in range(cupy.cuda.runtime.getDeviceCount()):
            props = cupy.cuda.runtime.getDeviceProperties(i)
            name = props["name"]
            name = name.decode() if isinstance(name, bytes) else name
            memory = props.get("totalGlobalMem", 0) / 2**30
            found.append(f"CUDA device {i}: {name}, {memory:.1f} GiB")
        return found

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        cupyx = importlib.import_module("cupyx")
        out = target.copy()
        cupyx.scatter_add(out, indices, values)
        return out

    stride_tricks = True

    def _as_strided(
        self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...], writeable: bool
    ) -> Any:
        # CuPy's views are always writeable; agrad writes only through views of its own buffers
        stride_tricks = importlib.import_module("cupy.lib.stride_tricks")
        return stride_tricks.as_strided(x, shape, strides)

    def seed(self, seed: int) -> None:
        self.require()
        importlib.import_module("cupy").random.seed(seed)

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        cupy = importlib.import_module("cupy")
        return cupy.random.random_sample(shape).astype(dtype or "float64", copy=False)

    def randn(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        cupy = importlib.import_module("cupy")
        return cupy.random.standard_normal(shape).astype(dtype or "float64", copy=False)

    def permutation(self, n: int) -> Any:
        return importlib.import_module("cupy").random.permutation(n)


backend = CupyBackend()
