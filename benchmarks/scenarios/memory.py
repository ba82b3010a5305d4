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
* the core issue's network (MLP 512-6x512-10, batch 2048, float32, sigmoid, softmax
  cross-entropy), against NumPy written by hand to keep only what its backward reads (each
  layer's input; sigmoid's output is the next layer's input): the peak of one forward + backward;
  the peak of the book's loop (``loss = ...; model.cleargrads(); loss.backward();
  optimizer.update()``) over two iterations, the second built while the first ``loss`` is still
  bound (what the graph keeps after backward counts here);
  and what the graph holds after ``backward()`` (memory freed by dropping ``loss``), in MiB.
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
DEEP = (512, 512, 512, 512, 512, 512, 512, 10)  # the core issue's MLP 512 -> 6x512 -> 10
DEEP_BATCH = 2048
LR = 0.1


def cases(quick: bool) -> list[Case]:
    peak = Case("memory peak, MLP 784-2000-2000-10 b500", "MiB", {"what": "peak"}, kind="value")
    if DEVICE.name != "cpu":  # tracemalloc sees no device memory: growth is a CPU measurement
        return [peak]
    return [
        peak,
        Case("memory growth, steps 50->500", "KiB", {"what": "growth"}, kind="value"),
        Case("memory peak fwd+bwd, MLP 512-6x512-10 b2048", "MiB", {"what": "deep"}, kind="value"),
        Case("memory peak book loop, same MLP", "MiB", {"what": "loop"}, kind="value"),
        Case("memory held after backward, same MLP", "MiB", {"what": "held"}, kind="value"),
    ]


def run(library: str, case: Case, quick: bool) -> Measured:
    if case.params["what"] in ("deep", "loop", "held"):
        return _deep(library, case.params["what"])
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


def _deep(library: str, what: str) -> Measured:
    """The core issue's three numbers for one library (see the module docstring)."""
    if library not in _DEEP_BUILDERS:
        raise Skip("PyTorch's allocations are invisible to tracemalloc")
    x, t, params = shared_data(DEEP, batch=DEEP_BATCH)
    forward_backward, update, collect = _DEEP_BUILDERS[library](x, t, params)
    loss = forward_backward()  # the first step makes the lazily made state (caches, gradients)
    update()
    tracemalloc.start()
    try:
        if what == "deep":
            del loss
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            loss = forward_backward()
            value = tracemalloc.get_traced_memory()[1] - before
        elif what == "loop":  # two iterations: the second is built while `loss` is still bound
            del loss
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for _ in range(2):
                loss = forward_backward()
                update()
            value = tracemalloc.get_traced_memory()[1] - before
        else:
            loss = forward_backward()
            gc.collect()
            with_loss = tracemalloc.get_traced_memory()[0]
            del loss
            gc.collect()
            value = with_loss - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return Measured(value / 2**20, collect())


def _agrad_deep(x, t, params):
    import agrad.functions as F
    from agrad.models import MLP
    from agrad.optimizers import SGD

    model = MLP([W.shape[1] for W, _ in params], activation=F.sigmoid)
    for layer, (W, b) in zip(model.layers, params):
        layer.W.data, layer.b.data = W.copy(), b.copy()
    optimizer = SGD(LR).setup(model)
    first = {}

    def forward_backward():
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        if not first:  # the first step's results are the ones checked
            first["loss"] = float(loss.data)
            first["grads"] = [(L.W.grad.data.copy(), L.b.grad.data.copy()) for L in model.layers]
        return loss

    def collect():
        out = {"loss": first["loss"]}
        for i, (gW, gb) in enumerate(first["grads"]):
            out[f"gW{i}"], out[f"gb{i}"] = gW, gb
        return out

    return forward_backward, optimizer.update, collect


def _numpy_deep(x, t, params):
    import numpy as np

    params = [(W.copy(), b.copy()) for W, b in params]
    n = x.shape[0]
    rows = np.arange(n)
    state: dict = {}
    first = {}

    def forward_backward():
        inputs = []  # what backward reads: each layer's input (a sigmoid output past the first)
        a = x
        for W, b in params[:-1]:
            inputs.append(a)
            a = a @ W
            a += b
            np.negative(a, out=a)
            np.exp(a, out=a)
            a += 1
            np.reciprocal(a, out=a)
        inputs.append(a)
        W, b = params[-1]
        z = a @ W + b
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        total = z.sum(axis=1, keepdims=True)
        loss = float(-(np.log(z[rows, t] / total[:, 0])).mean())
        z /= total
        z[rows, t] -= 1
        z /= n
        g, grads = z, []
        for i in range(len(params) - 1, -1, -1):
            W, b = params[i]
            grads.append((inputs[i].T @ g, g.sum(axis=0)))
            if i > 0:
                s = inputs[i]
                g = g @ W.T
                g *= s
                g *= 1 - s
        grads.reverse()
        state["grads"] = grads
        if not first:  # the first step's results are the ones checked
            first["loss"] = loss
            first["grads"] = [(gW.copy(), gb.copy()) for gW, gb in grads]
        return loss

    def update():
        for (W, b), (gW, gb) in zip(params, state["grads"]):
            W -= LR * gW
            b -= LR * gb

    def collect():
        out = {"loss": first["loss"]}
        for i, (gW, gb) in enumerate(first["grads"]):
            out[f"gW{i}"], out[f"gb{i}"] = gW, gb
        return out

    return forward_backward, update, collect


_DEEP_BUILDERS = {"agrad": _agrad_deep, "numpy": _numpy_deep}
