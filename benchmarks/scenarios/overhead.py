"""Per-operation overhead: a chain of 200 cheap elementwise ops, forward + backward.

The chain repeats ``sin, exp, *0.5, +x``: values stay bounded, and ``+x`` makes the input's
gradient accumulate from 50 places. The result is microseconds per op (forward + backward).
"""

from __future__ import annotations

from common import DEVICE, LIBRARIES, Case, Measured, rng, timed, to_numpy

DEVICES = ("cpu", "cuda", "cuda-emulated")

# on a GPU, CUDA's sin/exp in CuPy and in PyTorch may round differently by an ulp, and 200
# chained ops can grow that: still far below any real disagreement
TOLERANCE = {"rtol": 1e-7 if DEVICE.gpu else 1e-9, "atol": 1e-12}
OPS_PER_ROUND = 4  # sin, exp, *0.5, +x


def cases(quick: bool) -> list[Case]:
    shapes = [(1,), (100,), (1000, 1000)]
    out = []
    for shape in shapes:
        big = shape == (1000, 1000)
        # one (1000, 1000) chain of 200 takes over a second per library; --quick shortens it
        n_ops = 20 if (big and quick) else 200
        name = f"overhead {shape} float64, {n_ops} ops"
        out.append(Case(name, "µs/op", {"shape": shape, "n_ops": n_ops}))
    return out


def _input(shape):
    return rng(0).uniform(-1.0, 1.0, size=shape)


def run(library: str, case: Case, quick: bool) -> Measured:
    shape, n_ops = case.params["shape"], case.params["n_ops"]
    rounds = n_ops // OPS_PER_ROUND
    step, collect = _BUILDERS[library](_input(shape), rounds)
    big = shape == (1000, 1000)
    if big:  # the checked call warms up; a call takes 0.1 s (--quick) to 1.5 s
        return timed(step, collect, quick, 1e6 / n_ops, warmup=False, min_calls=2, budget_s=0)
    return timed(step, collect, quick, 1e6 / n_ops)


def _agrad(x0, rounds):
    import agrad
    import agrad.functions as F

    x = agrad.Variable(DEVICE.to_agrad(x0))
    last = {}

    def step():
        y = x
        for _ in range(rounds):
            y = F.sin(y)
            y = F.exp(y)
            y = y * 0.5
            y = y + x
        x.cleargrad()
        y.backward()
        last["y"] = y.data

    return step, lambda: {"y": to_numpy(last["y"]), "gx": to_numpy(x.grad)}


def _numpy(x0, rounds):
    np = DEVICE.xp

    x = DEVICE.to_device(x0)
    last = {}

    def step():
        saved = []
        y = x
        for _ in range(rounds):
            s = np.sin(y)
            e = np.exp(s)
            saved.append((y, e))
            y = e * 0.5 + x
        g = np.ones_like(y)
        gx = np.zeros_like(x)
        for sin_input, e in reversed(saved):
            gx = gx + g
            g = g * 0.5
            g = g * e
            g = g * np.cos(sin_input)
        last["y"], last["gx"] = y, gx + g

    return step, lambda: {"y": to_numpy(last["y"]), "gx": to_numpy(last["gx"])}


def _torch(x0, rounds):
    import torch

    x = DEVICE.torch_tensor(x0, requires_grad=True)
    last = {}

    def step():
        y = x
        for _ in range(rounds):
            y = torch.sin(y)
            y = torch.exp(y)
            y = y * 0.5
            y = y + x
        x.grad = None
        y.backward(torch.ones_like(y))
        last["y"] = y

    return step, lambda: {"y": to_numpy(last["y"]), "gx": to_numpy(x.grad)}


_BUILDERS = {"agrad": _agrad, "numpy": _numpy, "torch": _torch}
assert set(_BUILDERS) == set(LIBRARIES)
