"""Minimise the Rosenbrock function by gradient descent (the book's step 28).

Each step clears the gradients with ``cleargrad`` before ``backward``, since agrad, like DeZero,
adds new gradients to old ones. The minimum is at (1, 1).

    python examples/rosenbrock.py [--backend array_api_strict] [--quick]
"""

from __future__ import annotations

import argparse
import time

import agrad
from agrad import Variable


def rosenbrock(x0: Variable, x1: Variable) -> Variable:
    return 100 * (x1 - x0**2) ** 2 + (x0 - 1) ** 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy, cupy or array_api_strict")
    parser.add_argument("--iters", type=int, default=10000)
    parser.add_argument("--quick", action="store_true", help="1000 iterations only")
    args = parser.parse_args()
    if args.backend:
        agrad.use(args.backend)
    backend = agrad.current_backend()
    iters = 1000 if args.quick else args.iters
    lr = 0.001

    x0 = Variable(backend.asarray(0.0), name="x0")
    x1 = Variable(backend.asarray(2.0), name="x1")
    start = time.perf_counter()
    for _ in range(iters):
        y = rosenbrock(x0, x1)
        x0.cleargrad()
        x1.cleargrad()
        y.backward()
        x0.data = x0.data - lr * x0.grad.data
        x1.data = x1.data - lr * x1.grad.data
    seconds = time.perf_counter() - start
    print(
        f"{iters} steps on {backend.name}: x0 = {float(x0.data):.5f}, x1 = {float(x1.data):.5f}, "
        f"f = {float(rosenbrock(x0, x1).data):.3g} (minimum at 1, 1) in {seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
