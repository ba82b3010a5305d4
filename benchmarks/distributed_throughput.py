"""Data-parallel throughput on this machine: samples per second, 1 process vs 2 MPI processes.

    python benchmarks/distributed_throughput.py [--steps 50] [--batch 256] [--repeat 3]

Every configuration trains an MLP 784-1000-1000-10 (float32, SGD) on random data at the same
global batch, one BLAS thread per process:

- ``1 process (plain)``: no MPI, no communicator: the baseline every ratio is against;
- ``2 processes (agrad)``: ``agrad.distributed`` with its defaults (buckets sent during backward);
- ``2 processes (agrad, overlap=False)``: every bucket sent from ``update()``, blocking;
- ``2 processes (agrad, float16)``: the same with ``allreduce_grad_dtype='float16'``;
- ``2 processes (no exchange)``: each process trains on its half and never communicates: the
  limit of this machine for two processes (they share its cores and memory bandwidth).

``--exchange`` also times one gradient exchange of that model (7.2 MB) on 2 processes, in one
run: MPI's own in-place Allreduce of one buffer of that size (the floor), ``allreduce_grad``,
and the naive way (concatenate into a fresh array, Allreduce into another, divide into a third).

Each configuration runs ``--repeat`` times, interleaved, and reports its best run. Reported, not
asserted; the load average is printed with the numbers, since other work on the machine moves them.
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
CONFIGS = {
    "plain": (1, "1 process (plain)"),
    "agrad": (2, "2 processes (agrad)"),
    "no-overlap": (2, "2 processes (agrad, overlap=False)"),
    "float16": (2, "2 processes (agrad, float16)"),
    "no-exchange": (2, "2 processes (no exchange)"),
    "baseline": (2, "2 processes (agrad from --baseline PATH)"),
}


def worker(mode: str, steps: int, global_batch: int, bucket_cap_mb: float) -> None:
    import numpy as np

    import agrad
    import agrad.functions as F
    from agrad import models, optimizers

    comm = None
    if mode != "plain":
        import agrad.distributed as dist

        options = {"allreduce_grad_dtype": "float16"} if mode == "float16" else {}
        if mode != "baseline":  # another version of agrad may not know these options
            options["bucket_cap_mb"] = bucket_cap_mb
        comm = dist.create_communicator("mpi", **options)
    rank, size = (comm.rank, comm.size) if comm is not None else (0, 1)
    agrad.seed(0)
    local = global_batch // size
    rng = np.random.default_rng(rank)
    x = rng.standard_normal((local, 784)).astype(np.float32)
    t = rng.integers(0, 10, local)
    model = models.MLP((1000, 1000, 10), activation=F.relu)
    model(x)  # create the lazy weights
    optimizer = optimizers.SGD(lr=0.01)
    if mode == "baseline":
        optimizer = dist.create_multi_node_optimizer(optimizer, comm)
    elif mode in ("agrad", "float16", "no-overlap"):
        overlap = mode != "no-overlap"
        optimizer = dist.create_multi_node_optimizer(optimizer, comm, overlap=overlap)
    optimizer.setup(model)

    def step() -> None:
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()

    for _ in range(3):
        step()
    if comm is not None:
        comm.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if comm is not None:
        comm.barrier()
    elapsed = time.perf_counter() - start
    if rank == 0:
        print(json.dumps({"seconds": elapsed, "samples": steps * global_batch}))


def exchange_worker(steps: int) -> None:
    """Milliseconds per exchange of the MLP's gradients, three ways, interleaved."""
    import numpy as np
    from mpi4py import MPI

    import agrad
    import agrad.distributed as dist
    import agrad.functions as F
    from agrad import models

    comm = dist.create_communicator("mpi")
    agrad.seed(0)
    model = models.MLP((1000, 1000, 10), activation=F.relu)
    model(np.zeros((1, 784), dtype=np.float32))
    params = list(model.params())
    local = [np.full(p.shape, comm.rank + 1.0, dtype=np.float32) for p in params]
    flat = np.zeros(sum(g.size for g in local), dtype=np.float32)

    def floor() -> None:
        comm.mpi_comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)

    def agrad_exchange() -> None:
        for p, g in zip(params, local):
            p.grad = agrad.Variable(g)
        comm.allreduce_grad(model)

    def naive() -> None:
        send = np.concatenate([g.reshape(-1) for g in local])
        recv = np.empty_like(send)
        comm.mpi_comm.Allreduce(send, recv, op=MPI.SUM)
        mean = recv / comm.size
        offset = 0
        for p, g in zip(params, local):
            p.grad = agrad.Variable(mean[offset : offset + g.size].reshape(g.shape))
            offset += g.size

    def nonblocking() -> None:
        comm.mpi_comm.Iallreduce(MPI.IN_PLACE, flat, op=MPI.SUM).Wait()

    ways = {"MPI Allreduce in place (floor)": floor, "MPI Iallreduce in place": nonblocking}
    ways["agrad allreduce_grad"] = agrad_exchange
    ways["naive (fresh arrays)"] = naive
    best = {name: float("inf") for name in ways}
    for _ in range(steps):
        for name, way in ways.items():
            comm.barrier()
            start = time.perf_counter()
            way()
            best[name] = min(best[name], time.perf_counter() - start)
    if comm.rank == 0:
        print(json.dumps({name: 1e3 * t for name, t in best.items()}))


def launch(
    mode: str, steps: int, batch: int, bucket_cap_mb: float = 25.0, baseline: str = ""
) -> float:
    processes = CONFIGS[mode][0] if mode in CONFIGS else 2
    env = {
        **os.environ,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONPATH": baseline if mode == "baseline" else str(ROOT),
    }
    command = [sys.executable, __file__, "--worker", mode, "--steps", str(steps)]
    command += ["--batch", str(batch), "--bucket-cap-mb", str(bucket_cap_mb)]
    if mode != "plain":
        mpiexec = Path(sys.executable).with_name("mpiexec")
        mpiexec = str(mpiexec) if mpiexec.exists() else "mpiexec"
        command = [mpiexec, "-n", str(processes), "--oversubscribe", *command]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stdout}\n{out.stderr}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if mode == "exchange":
        return result
    return result["samples"] / result["seconds"]


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch", type=int, default=256, help="global batch size")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (best)")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["plain", "agrad", "no-overlap", "no-exchange"],
        choices=list(CONFIGS),
        help="float16 is not run by default: MPI sums float16 on the CPU slowly (see README)",
    )
    parser.add_argument("--exchange", action="store_true", help="also time one exchange")
    parser.add_argument("--bucket-cap-mb", type=float, default=25.0, help="agrad's bucket size")
    parser.add_argument(
        "--baseline",
        default="",
        help="a directory holding another agrad (e.g. `git archive OLD agrad | tar -x -C DIR`): "
        "adds its 2-process row, for an A/B in one run",
    )
    parser.add_argument("--worker", choices=[*CONFIGS, "exchange"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline and "baseline" not in args.configs:
        args.configs.insert(1, "baseline")
    if args.worker == "exchange":
        exchange_worker(args.steps)
        return
    if args.worker:
        worker(args.worker, args.steps, args.batch, args.bucket_cap_mb)
        return
    print(
        f"MLP 784-1000-1000-10 float32, global batch {args.batch}, {args.steps} steps, "
        f"1 thread per process, best of {args.repeat}, buckets of {args.bucket_cap_mb:g} MB; "
        f"{os.cpu_count()} CPUs, "
        f"load average before: {load_average()}"
    )
    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for mode in args.configs:
            rate = launch(mode, args.steps, args.batch, args.bucket_cap_mb, args.baseline)
            best[mode] = max(best.get(mode, 0.0), rate)
    base = best.get("plain")
    print("| configuration | samples/s | vs 1 process (plain) |")
    print("| --- | --: | --: |")
    for mode in args.configs:
        ratio = f"{best[mode] / base:.2f}x" if base else "-"
        print(f"| {CONFIGS[mode][1]} | {best[mode]:,.0f} | {ratio} |")
    if args.exchange:
        times = launch("exchange", 20, args.batch)
        floor = times["MPI Allreduce in place (floor)"]
        print("\n| one exchange of 7.2 MB, 2 processes | ms (best of 20) | vs MPI floor |")
        print("| --- | --: | --: |")
        for name, ms in times.items():
            print(f"| {name} | {ms:.2f} | {ms / floor:.2f}x |")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
