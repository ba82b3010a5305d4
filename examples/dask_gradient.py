"""Gradient of a loss over a data set larger than its chunks, never loaded whole (Dask).

A least-squares fit of ``y = X @ w`` on ``--rows`` rows, made lazily chunk by chunk by Dask
(``--chunk`` rows each). agrad records its graph over Dask expressions; ``backward()`` adds the
gradient's expressions; only ``.compute()`` runs them, one chunk at a time on a local scheduler,
so memory holds a few chunks, not the data set.

The same code runs on a ``dask.distributed`` cluster: make a client before the loop
(``from dask.distributed import Client; Client("tcp://scheduler:8786")``) and every
``.compute()`` runs on its workers; nothing else changes.

    python examples/dask_gradient.py [--rows 2000000] [--chunk 100000] [--steps 5]
"""

from __future__ import annotations

import argparse
import time

import agrad
import agrad.functions as F
from agrad import Parameter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()

    backend = agrad.use("dask", fallback=False)
    da = backend.xp  # array-api-compat's dask.array namespace
    agrad.seed(0)
    n, d = args.rows, args.features
    # the data set: made chunk by chunk when computed, never materialised as a whole
    X = da.reshape(backend.randn((n * d,)), (n, d)).rechunk((args.chunk, d))
    true_w = da.reshape(da.arange(1, d + 1, dtype=da.float64) / d, (d, 1))
    y = X @ true_w + 0.01 * da.reshape(backend.randn((n,)), (n, 1)).rechunk((args.chunk, 1))
    print(f"data: {n} x {d} float64 ({n * d * 8 / 2**20:.0f} MiB) in {X.numblocks[0]} chunks")

    w = Parameter(da.zeros((d, 1), dtype=da.float64), name="w")
    for step in range(args.steps):
        start = time.perf_counter()
        w.cleargrad()
        loss = F.mean_squared_error(F.matmul(X, w), y)
        loss.backward()
        # one pass over the chunks computes the loss and the gradient together
        loss_value, grad = backend.xp.compute(loss.data, w.grad.data)  # dask.compute
        w.data = da.asarray(w.data.compute() - args.lr * grad)  # a small (d, 1) array
        print(f"step {step}: loss {float(loss_value):.6f} ({time.perf_counter() - start:.2f} s)")
    error = float(da.max(da.abs(w.data - true_w)).compute())
    print(f"largest error in w: {error:.4f}")


if __name__ == "__main__":
    main()
