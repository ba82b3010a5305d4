"""Newton's method with second derivatives from double backprop (the book's step 33).

``backward(create_graph=True)`` records the backward pass, so the gradient ``gx`` is itself a
differentiable Variable; differentiating it again gives f''(x).

    python examples/newton.py [--backend array_api_strict] [--quick]
"""

from __future__ import annotations

import argparse

import agrad
from agrad import Variable


def f(x: Variable) -> Variable:
    return x**4 - 2 * x**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy, cupy or array_api_strict")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="the same 10 steps (already quick)")
    args = parser.parse_args()
    if args.backend:
        agrad.use(args.backend)
    backend = agrad.current_backend()

    x = Variable(backend.asarray(2.0))
    for i in range(args.iters):
        y = f(x)
        x.cleargrad()
        y.backward(create_graph=True)
        gx = x.grad  # f'(x) = 4x^3 - 4x, as a graph
        x.cleargrad()
        gx.backward()
        gx2 = x.grad  # f''(x) = 12x^2 - 4
        print(f"step {i}: x = {float(x.data):.10f}  f'(x) = {float(gx.data):.3g}")
        x.data = x.data - gx.data / gx2.data
    print(f"on {backend.name}: x = {float(x.data):.10f} (a minimum of x^4 - 2x^2 is at x = 1)")


if __name__ == "__main__":
    main()
