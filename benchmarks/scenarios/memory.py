"""Memory: the peak of one forward + backward of a wide MLP, and growth over 500 training steps.

Measured with ``tracemalloc``, which NumPy reports its array buffers to, so Python objects and
array data both count. PyTorch allocates outside Python's view and is left out here.

* peak: MLP 784-2000-2000-10, batch 500, float32, sigmoid; parameters and inputs exist before
  the measurement starts, so the number is what the step itself allocates at its peak
  (activations, gradients, temporaries), in MiB. On a GPU: CuPy's memory pool for agrad and
  hand-written CuPy, ``torch.cuda.max_memory_allocated`` for PyTorch (``common.Device``).
* growth: a small MLP (784-100-10, batch 32) trained with SGD; traced memory after step 500 minus
  after step 50, in KiB (0 means nothing accumulates). A full ``gc.collect()`` comes before
  each reading: it also empties CPython's free lists, whose slow filling would otherwise look
  like growth.
"""

from __future__ import annotations

import gc
import tracemalloc

from common import DEVICE, Case, Measured, Skip

from scenarios.mlp import BUILDERS, shared_data

LIBRARIES = ("agrad", "numpy", "torch")
DEVICES = ("cpu", "cuda", "cuda-emulated")
TOLERANCE = {"rtol": 2e-4, "atol": 1e-7}
WIDE = (784, 2000, 2000, 10)
SMALL = (784, 100, 10)


def cases(quick: bool) -> list[Case]:
    peak = Case("memory peak, MLP 784-2000-2000-10 b500", "MiB", {"what": "peak"}, kind="value")
    if DEVICE.name != "cpu":  # tracemalloc sees no device memory: growth is a CPU measurement
        return [peak]
    return [peak, Case("memory growth, steps 50->500", "KiB", {"what": "growth"}, kind="value")]


def run(library: str, case: Case, quick: bool) -> Measured:
    if case.params["what"] == "peak":
        x, t, params = shared_data(WIDE, batch=500)
        step, collect = BUILDERS[library](x, t, params, "sigmoid")
        step()  # the first step creates the lazily made state (caches, optimizer slots)
        check = collect()
        del check
        peak = DEVICE.peak_bytes(library, step)
        return Measured(peak / 2**20, collect())
    if library == "torch":
        raise Skip("PyTorch's allocations are invisible to tracemalloc")
    x, t, params = shared_data(SMALL, batch=32)
    step, collect = BUILDERS[library](x, t, params, "sigmoid")
    tracemalloc.start()
    try:
        for _ in range(50):
            step()
        after_50 = _retained()
        for _ in range(450):
            step()
        after_500 = _retained()
    finally:
        tracemalloc.stop()
    return Measured((after_500 - after_50) / 2**10, collect())


def _retained() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]
