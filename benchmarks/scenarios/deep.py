"""A deep graph: ``tanh`` applied 2,000 and 100,000 times to a (10,) vector, forward + backward.

Reports microseconds per op; the two depths show whether time stays linear in depth. Building,
differentiating and freeing the graph all count (the graph dies at the end of each step).
"""

from __future__ import annotations

from common import LIBRARIES, Case, Measured, rng, timed, to_numpy

TOLERANCE = {"rtol": 1e-9, "atol": 1e-12}


def cases(quick: bool) -> list[Case]:
    return [
        Case(f"deep tanh x{depth:,} (10,)", "µs/op", {"depth": depth}) for depth in (2_000, 100_000)
    ]


def run(library: str, case: Case, quick: bool) -> Measured:
    depth = case.params["depth"]
    x0 = rng(0).uniform(-1.0, 1.0, size=(10,))
    step, collect = _BUILDERS[library](x0, depth)
    if depth > 10_000:  # a second or more per call: the check call warms up, then time a few
        calls = 0 if quick else 3  # --quick: the checked call is the one sample
        return timed(step, collect, quick, 1e6 / depth, warmup=False, min_calls=calls, budget_s=0)
    return timed(step, collect, quick, 1e6 / depth)


def _agrad(x0, depth):
    import agrad
    import agrad.functions as F

    x = agrad.Variable(x0)
    last = {}

    def step():
        y = x
        for _ in range(depth):
            y = F.tanh(y)
        x.cleargrad()
        y.backward()
        last["y"] = y.data

    return step, lambda: {"y": to_numpy(last["y"]), "gx": to_numpy(x.grad)}


def _numpy(x0, depth):
    import numpy as np

    last = {}

    def step():
        ys = []
        y = x0
        for _ in range(depth):
            y = np.tanh(y)
            ys.append(y)
        g = np.ones_like(y)
        for y_i in reversed(ys):
            g = g * (1 - y_i * y_i)
        last["y"], last["gx"] = y, g

    return step, lambda: {"y": to_numpy(last["y"]), "gx": to_numpy(last["gx"])}


def _torch(x0, depth):
    import torch

    x = torch.tensor(x0, requires_grad=True)
    last = {}

    def step():
        y = x
        for _ in range(depth):
            y = torch.tanh(y)
        x.grad = None
        y.backward(torch.ones_like(y))
        last["y"] = y.detach()

    return step, lambda: {"y": to_numpy(last["y"]), "gx": to_numpy(x.grad)}


_BUILDERS = {"agrad": _agrad, "numpy": _numpy, "torch": _torch}
assert set(_BUILDERS) == set(LIBRARIES)
