"""What every scenario shares: the data every library starts from, the device, timing, skipping.

Each library builds its own copy of the same inputs from a seeded NumPy generator, so that the
results can be compared before anything is timed.

The device (``DEVICE``, chosen with ``run.py --device``) says where the three libraries compute:
``cpu`` (agrad on NumPy, hand-written NumPy, PyTorch on the CPU), ``cuda`` (agrad on CuPy,
hand-written CuPy, PyTorch on CUDA) or ``cuda-emulated`` (the ``cuda`` code paths with NumPy
standing in for CuPy and PyTorch's CPU for CUDA: tests the GPU benchmark without a GPU; its
numbers mean nothing). A scenario that supports devices other than the CPU lists them in
``DEVICES`` and builds its libraries through ``DEVICE``.
"""

from __future__ import annotations

import importlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LIBRARIES = ("agrad", "numpy", "torch")
DEVICES = ("cpu", "cuda", "cuda-emulated")
DEVICE_VARIABLE = "AGRAD_BENCH_DEVICE"


class Skip(Exception):  # noqa: N818 - reads as `raise Skip("why")`
    """This library cannot run this case; the message says why."""


@dataclass
class Case:
    """One row of the results table."""

    name: str
    unit: str
    params: dict[str, Any] = field(default_factory=dict)
    #: lower is better for every unit; "time" cases are timed, "value" cases measure themselves
    kind: str = "time"


@dataclass
class Measured:
    """What a library reports for one case: the number and the arrays to compare."""

    value: float
    check: dict[str, Any]
    samples: list[float] = field(default_factory=list)


class Device:
    """Where the libraries of a run compute, and how to wait for, move and weigh their arrays.

    ``xp`` is the array module the hand-written baseline uses (``numpy`` or ``cupy``),
    ``backend`` agrad's backend, ``torch_device`` PyTorch's device.
    """

    def __init__(self, name: str) -> None:
        if name not in DEVICES:
            raise ValueError(f"unknown benchmark device {name!r}; known: {', '.join(DEVICES)}")
        self.name = name
        self.gpu = name == "cuda"
        self.syncs = 0  # counted, so that a test can see the clock reads are synchronised
        self._xp: Any = None

    @property
    def xp(self) -> Any:
        if self._xp is None:
            self._xp = importlib.import_module("cupy" if self.gpu else "numpy")
        return self._xp

    @property
    def backend(self) -> Any:
        import agrad

        return agrad.get_backend("cupy" if self.gpu else "numpy")

    @property
    def torch_device(self) -> str:
        return "cuda" if self.gpu else "cpu"

    def labels(self) -> dict[str, str]:
        """What each library is called in the table on this device."""
        if self.name == "cpu":
            return {"agrad": "agrad", "numpy": "numpy", "torch": "torch"}
        suffix = " (emulated)" if self.name == "cuda-emulated" else ""
        return {
            "agrad": f"agrad-cupy{suffix}",
            "numpy": f"cupy-hand{suffix}",
            "torch": f"torch-cuda{suffix}",
        }

    def sync(self) -> None:
        """Wait until every kernel queued on the device has finished (before any clock read)."""
        self.syncs += 1
        if self.gpu:
            self.xp.cuda.Device().synchronize()
            torch = _loaded_torch()
            if torch is not None:
                torch.cuda.synchronize()

    def to_device(self, host_array: Any) -> Any:
        """A copy of a NumPy array in the baseline's array module."""
        return self.xp.array(host_array, copy=True)

    def to_agrad(self, host_array: Any) -> Any:
        """A copy of a NumPy array on agrad's backend for this device."""
        return self.backend.asarray(host_array.copy())

    def torch_tensor(self, host_array: Any, requires_grad: bool = False) -> Any:
        import torch

        if self.gpu:  # full float32 everywhere, as CuPy computes without CUPY_TF32
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        return torch.tensor(host_array, device=self.torch_device, requires_grad=requires_grad)

    def peak_bytes(self, library: str, step: Callable[[], Any]) -> int:
        """Bytes allocated at the peak of one call of ``step``, beyond what existed before.

        CUDA: CuPy's memory pool (its used bytes, watched at every allocation) for agrad and the
        hand-written baseline, ``torch.cuda.max_memory_allocated`` for PyTorch; both round every
        block up to 512 bytes. CPU and emulated: ``tracemalloc`` (PyTorch's CPU allocations are
        invisible to it: ``Skip``).
        """
        if self.gpu and library == "torch":
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            step()
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - before
        if self.gpu:
            return _cupy_pool_peak(self.xp, step)
        if library == "torch":
            raise Skip("PyTorch's CPU allocations are invisible to tracemalloc")
        import tracemalloc

        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            step()
            return tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()


def _loaded_torch() -> Any:
    import sys

    return sys.modules.get("torch")


def _cupy_pool_peak(cupy: Any, step: Callable[[], Any]) -> int:
    pool = cupy.get_default_memory_pool()
    peak = [0]

    def malloc(size: int) -> Any:
        memory = pool.malloc(size)
        peak[0] = max(peak[0], pool.used_bytes())
        return memory

    cupy.cuda.Device().synchronize()
    before = pool.used_bytes()
    peak[0] = before
    cupy.cuda.set_allocator(malloc)
    try:
        step()
        cupy.cuda.Device().synchronize()
    finally:
        cupy.cuda.set_allocator(pool.malloc)
    return peak[0] - before


DEVICE = Device(os.environ.get(DEVICE_VARIABLE, "cpu"))


def rng(seed: int = 0) -> np.random.RandomState:
    """The generator every library draws its shared inputs from."""
    return np.random.RandomState(seed)


def time_step(
    step: Callable[[], Any], quick: bool, *, min_calls: int = 3, budget_s: float | None = None
) -> list[float]:
    """Seconds per call of ``step`` (already warmed up), one sample per call.

    Calls until ``budget_s`` seconds have passed and at least ``min_calls`` were made (none
    when both are 0). The device is synchronised before every clock read, so a GPU's queued
    kernels are counted in the call that queued them.
    """
    if budget_s is None:
        budget_s = 0.15 if quick else 1.0
    if DEVICE.name == "cuda-emulated":  # its numbers mean nothing: exercise the paths, quickly
        budget_s = min(budget_s, 0.02)
    samples = []
    clock = time.perf_counter
    sync = DEVICE.sync
    sync()
    started = clock()
    while len(samples) < min_calls or clock() - started < budget_s:
        t0 = clock()
        step()
        sync()
        samples.append(clock() - t0)
        if len(samples) >= 10_000:
            break
    return samples


def timed(
    step: Callable[[], Any],
    collect: Callable[[], dict[str, Any]],
    quick: bool,
    scale: float,
    warmup: bool = True,
    **options: Any,
) -> Measured:
    """Run ``step`` once and ``collect`` its results for the check, then time it.

    The reported value is the median seconds per call times ``scale`` (units per second divided
    by operations per call, say). With ``min_calls=0, budget_s=0`` the one checked call is the
    sample (for steps of seconds in --quick mode).
    """
    DEVICE.sync()
    started = time.perf_counter()
    step()
    DEVICE.sync()
    first_call = time.perf_counter() - started
    check = collect()
    # warm up caches, allocators and lazy initialisation (PyTorch's first calls are slow)
    if warmup:
        time_step(step, quick, min_calls=2, budget_s=0.05 if quick else 0.2)
    samples = time_step(step, quick, **options) or [first_call]  # min_calls=0: the first call
    return Measured(statistics.median(samples) * scale, check, [s * scale for s in samples])


def to_numpy(x: Any) -> np.ndarray:
    """A host NumPy copy of an agrad Variable, a torch tensor or an array (CuPy's too)."""
    if isinstance(x, (np.ndarray, np.generic, int, float)):
        return np.array(x, copy=True)
    if hasattr(x, "detach"):  # a torch tensor
        return x.detach().cpu().numpy().copy()
    import agrad

    if isinstance(x, agrad.Variable):
        x = x.data
    if hasattr(x, "get"):  # a CuPy array
        return x.get()
    return np.array(x, copy=True)
