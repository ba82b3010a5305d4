"""One pair of variables reused across many backward passes: gradient descent on Rosenbrock.

The book's pattern (step 28): build a new graph from the same leaves each iteration,
``cleargrad`` them, ``backward``, and update ``data`` in place. Reports microseconds per
iteration; the check compares the point reached after the first 100 iterations.
"""

from __future__ import annotations

from common import LIBRARIES, Case, Measured, timed, to_numpy

TOLERANCE = {"rtol": 1e-9, "atol": 1e-12}
LR = 0.001
ITERATIONS = 100


def cases(quick: bool) -> list[Case]:
    return [Case("cleargrad rosenbrock, 2 scalars", "µs/iter", {})]


def run(library: str, case: Case, quick: bool) -> Measured:
    step, collect = _BUILDERS[library]()
    return timed(step, collect, quick, 1e6 / ITERATIONS)


def _agrad():
    import agrad
    from agrad.backends.numpy import host as np

    x0 = agrad.Variable(np.array(0.0))
    x1 = agrad.Variable(np.array(2.0))

    def step():
        for _ in range(ITERATIONS):
            y = 100 * (x1 - x0**2) ** 2 + (1 - x0) ** 2
            x0.cleargrad()
            x1.cleargrad()
            y.backward()
            x0.data -= LR * x0.grad.data
            x1.data -= LR * x1.grad.data

    def collect():
        return {"x": np.stack([to_numpy(x0), to_numpy(x1)])}

    return step, collect


def _numpy():
    import numpy as np

    x = np.array([0.0, 2.0])

    def step():
        for _ in range(ITERATIONS):
            x0, x1 = x[0], x[1]
            inner = x1 - x0 * x0
            g0 = -400.0 * inner * x0 - 2.0 * (1 - x0)
            g1 = 200.0 * inner
            x[0] -= LR * g0
            x[1] -= LR * g1

    return step, lambda: {"x": x.copy()}


def _torch():
    import torch

    x0 = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    x1 = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)

    def step():
        for _ in range(ITERATIONS):
            y = 100 * (x1 - x0**2) ** 2 + (1 - x0) ** 2
            x0.grad = None
            x1.grad = None
            y.backward()
            with torch.no_grad():
                x0.sub_(LR * x0.grad)
                x1.sub_(LR * x1.grad)

    def collect():
        return {"x": torch.stack([x0.detach(), x1.detach()]).numpy().copy()}

    return step, collect


_BUILDERS = {"agrad": _agrad, "numpy": _numpy, "torch": _torch}
assert set(_BUILDERS) == set(LIBRARIES)
