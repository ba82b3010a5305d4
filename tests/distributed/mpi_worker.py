"""Run under ``mpiexec -n N``: one scenario of the distributed tests, results written to a folder.

Usage: python mpi_worker.py SCENARIO OUTDIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import agrad
import agrad.distributed as dist
import agrad.functions as F
from agrad import models, optimizers


def spiral_batches(global_batch: int, steps: int):
    x, t = agrad.datasets.get_spiral(train=True)
    return [
        (x[i * global_batch : (i + 1) * global_batch], t[i * global_batch : (i + 1) * global_batch])
        for i in range(steps)
    ]


def train(comm, outdir: Path, steps: int = 5, global_batch: int = 60) -> None:
    """A few SGD steps; each process takes its slice of every global batch."""
    size = comm.size if comm is not None else 1
    rank = comm.rank if comm is not None else 0
    batches = spiral_batches(global_batch, steps)  # get_spiral reseeds NumPy (DeZero), so first
    agrad.seed(0)  # the same seed everywhere (test_collectives checks bcast_data separately)
    model = models.MLP((16, 3))
    opt = optimizers.MomentumSGD(lr=0.5)
    opt.add_hook(optimizers.WeightDecay(1e-3))
    opt.add_hook(optimizers.ClipGrad(5.0))
    if comm is not None:
        opt = dist.create_multi_node_optimizer(opt, comm)
    opt.setup(model)
    local = global_batch // size
    for x, t in batches:
        x, t = x[rank * local : (rank + 1) * local], t[rank * local : (rank + 1) * local]
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
    if rank == 0:
        np.savez(outdir / "params.npz", **{n: p.data for n, p in model.named_params()})


def equivalence(comm, outdir: Path) -> None:
    train(comm, outdir)


def single(comm, outdir: Path) -> None:
    """The reference: one process, no communicator, same seed as rank 0."""
    train(None, outdir)


def collectives(comm, outdir: Path) -> None:
    rank = comm.rank
    results = {}
    summed = comm.allreduce(np.full(3, rank + 1.0, dtype=np.float32))
    results["allreduce_sum"] = summed.tolist()
    results["allreduce_dtype"] = str(summed.dtype)
    results["allreduce_mean"] = comm.allreduce(np.full(2, float(rank)), op="mean").tolist()
    results["bcast"] = comm.bcast(np.arange(4.0) + 10 * rank, root=0).tolist()

    model = models.MLP((4, 2))
    agrad.seed(rank)
    model(np.ones((1, 3), dtype=np.float32))  # lazy parameters exist after a forward pass
    comm.bcast_data(model)
    results["params"] = [p.data.tolist() for p in model.params()]

    # gradients: rank r has r+1 everywhere (float32) and one float64 parameter
    extra = agrad.Parameter(np.zeros(2))
    params = [*model.params(), extra]
    for p in params:
        p.grad = agrad.Variable(np.full(p.shape, rank + 1.0, dtype=p.dtype))
    calls = []
    original = comm._allreduce_buffer
    comm._allreduce_buffer = lambda s, r: (calls.append(s.dtype.name), original(s, r))
    unused = agrad.Parameter(np.zeros(3, dtype=np.float32))  # no gradient on any process
    only_rank0 = agrad.Parameter(np.zeros(2, dtype=np.float32))
    if rank == 0:
        only_rank0.grad = agrad.Variable(np.full(2, 4.0, dtype=np.float32))
    comm.allreduce_grad([*params, unused, only_rank0])
    results["grad_means"] = sorted({float(v) for p in params for v in np.ravel(p.grad.data)})
    results["grad_dtypes"] = [str(p.grad.dtype) for p in params]
    results["unused_grad"] = unused.grad is None
    results["only_rank0"] = only_rank0.grad.data.tolist()
    results["collective_calls"] = calls
    (outdir / f"collectives.{rank}.json").write_text(json.dumps(results))


def scatter(comm, outdir: Path) -> None:
    data = agrad.datasets.Spiral()
    shards = {}
    for shuffle in (False, True):
        shard = dist.scatter_dataset(data, comm, shuffle=shuffle, seed=3)
        shards[str(shuffle)] = shard.indices
        x, _ = shard[0]
        assert x.shape == (2,)
    (outdir / f"scatter.{comm.rank}.json").write_text(json.dumps(shards))


def abort(comm, outdir: Path) -> None:
    if comm.rank == 1:
        raise ValueError("boom on rank 1")
    comm.allreduce(np.ones(1))  # would wait forever without the abort hook
    comm.barrier()


SCENARIOS = {f.__name__: f for f in (equivalence, single, collectives, scatter, abort)}

if __name__ == "__main__":
    scenario, outdir = sys.argv[1], Path(sys.argv[2])
    comm = None if scenario == "single" else dist.create_communicator("mpi")
    SCENARIOS[scenario](comm, outdir)
