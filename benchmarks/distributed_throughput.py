"""Data-parallel throughput on this machine: samples per second with 1 and 2 MPI processes.

    python benchmarks/distributed_throughput.py [--steps 50] [--batch 256] [--processes 1 2]

Each run trains an MLP 784-1000-1000-10 (float32, SGD) on random data with a fixed global batch
split across the processes, gradients averaged every step through agrad.distributed. Reported,
not asserted: on a 2-core machine two processes compete for the same cores as NumPy does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(steps: int, global_batch: int) -> None:
    import numpy as np

    import agrad
    import agrad.distributed as dist
    import agrad.functions as F
    from agrad import models, optimizers

    comm = dist.create_communicator("mpi")
    agrad.seed(0)
    local = global_batch // comm.size
    rng = np.random.default_rng(comm.rank)
    x = rng.standard_normal((local, 784)).astype(np.float32)
    t = rng.integers(0, 10, local)
    model = models.MLP((1000, 1000, 10), activation=F.relu)
    optimizer = dist.create_multi_node_optimizer(optimizers.SGD(lr=0.01), comm)
    model(x)  # create the lazy weights so setup() broadcasts them
    optimizer.setup(model)

    def step() -> None:
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()

    for _ in range(3):
        step()
    comm.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    comm.barrier()
    elapsed = time.perf_counter() - start
    if comm.rank == 0:
        print(
            json.dumps(
                {"processes": comm.size, "seconds": elapsed, "samples": steps * global_batch}
            )
        )


def launch(processes: int, steps: int, batch: int) -> dict:
    mpiexec = Path(sys.executable).with_name("mpiexec")
    env = {
        **os.environ,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    command = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(processes)]
    command += ["--oversubscribe", sys.executable, __file__, "--worker"]
    command += ["--steps", str(steps), "--batch", str(batch)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=256, help="global batch size")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.steps, args.batch)
        return
    print(
        f"MLP 784-1000-1000-10 float32, global batch {args.batch}, {args.steps} steps, "
        "1 thread per process"
    )
    print("| processes | samples/s | speed-up |")
    print("| --- | --- | --- |")
    base = None
    for n in args.processes:
        result = launch(n, args.steps, args.batch)
        rate = result["samples"] / result["seconds"]
        base = base or rate
        print(f"| {n} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
