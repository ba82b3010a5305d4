"""Run under ``mpiexec -n N``: one scenario of the distributed tests, results written to a folder.

Usage: python mpi_worker.py SCENARIO OUTDIR
"""

from __future__ import annotations

import ctypes
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
    gathered = comm.allgather(np.full((rank + 1, 2), rank, dtype=np.int64))
    results["allgather"] = [[g.shape, str(g.dtype), g.tolist()] for g in gathered]
    on_root = comm.gather(np.asarray([rank * 1.5], dtype=np.float32), root=1)
    results["gather"] = None if on_root is None else [g.tolist() for g in on_root]
    strict = agrad.get_backend("array_api_strict")
    gathered = comm.allgather(strict.xp.asarray([rank + 0.5]))
    results["allgather_strict"] = [type(g).__module__.split(".")[0] for g in gathered]
    results["allreduce_obj"] = [
        comm.allreduce_obj(rank + 1),
        comm.allreduce_obj(rank + 1.0, op="mean"),
        comm.allreduce_obj(rank, op="max"),
        comm.allreduce_obj(rank, op="min"),
    ]
    results["gather_obj"] = comm.gather_obj({"rank": rank})
    results["allgather_obj"] = comm.allgather_obj(rank * 10)
    try:
        comm.allgather(np.zeros(1, dtype=np.float32 if rank == 0 else np.float64))
    except TypeError as exc:
        results["allgather_dtypes"] = str(exc)

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
    original = comm._start_allreduce
    comm._start_allreduce = lambda buf, blocking=True: (
        calls.append(buf.dtype.name),
        original(buf, blocking),
    )[1]
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


def exchange(comm, outdir: Path) -> None:
    """Persistent buffers, float16 on the wire, buckets started during backward."""
    rank = comm.rank
    results = {}
    params = [
        agrad.Parameter(np.zeros((3, 2), np.float32)),
        agrad.Parameter(np.zeros(4, np.float32)),
    ]
    seen = []
    for step in range(2):
        for p in params:
            p.grad = agrad.Variable(np.full(p.shape, rank + step + 1.0, dtype=np.float32))
        comm.allreduce_grad(params)
        seen.append([p.grad.data for p in params])
        results[f"step{step}"] = [p.grad.data.tolist() for p in params]
    results["same_buffer"] = all(np.shares_memory(a, b) for a, b in zip(*seen))
    results["writable"] = all(g.flags.writeable for g in seen[1])

    strict = agrad.get_backend("array_api_strict")  # not handed to MPI: staged through the host
    sp = agrad.Parameter(strict.xp.zeros(3, dtype=strict.xp.float32))
    sp.grad = agrad.Variable(strict.xp.full(3, rank + 1.0, dtype=strict.xp.float32))
    comm.allreduce_grad([sp])
    results["strict"] = [sp.grad.backend.name, strict.dtype_name(sp.grad.dtype)]
    results["strict"].append(np.asarray(strict.to_host(sp.grad.data)).tolist())

    half = dist.create_communicator("mpi", allreduce_grad_dtype="float16")
    p = agrad.Parameter(np.zeros(3, dtype=np.float32))
    p.grad = agrad.Variable(np.asarray([1 / 3, 1000.0 + rank, 2.0 * rank], dtype=np.float32))
    half.allreduce_grad([p])
    results["float16"] = p.grad.data.tolist()
    results["float16_dtype"] = str(p.grad.dtype)

    # one bucket per parameter; the hooks of this rank fire in its own order
    tiny = dist.create_communicator("mpi", bucket_cap_mb=1e-6)
    ps = [agrad.Parameter(np.zeros(k + 1, dtype=np.float64)) for k in range(4)]
    exch = tiny.grad_exchange(ps)
    exch.arm()
    results["buckets"] = len(exch.buckets)
    for p in ps:
        p.grad = agrad.Variable(np.full(p.shape, 10.0 * rank + p.size))
    for p in ps if rank == 0 else reversed(ps):
        exch._grad_ready(p)
    exch.finish()
    results["any_order"] = [p.grad.data.tolist() for p in ps]

    # a model trained with overlap: buckets leave during backward from the second step on
    agrad.seed(0)
    model = models.MLP((5, 3))
    extra = agrad.Parameter(np.ones(2, dtype=np.float32), name="extra")
    x = np.random.default_rng(rank).standard_normal((4, 2)).astype(np.float32)
    t = np.asarray([0, 1, 2, 1])
    model(x)
    params = [extra, *model.params()]  # extra's bucket is the last one (buckets go backwards)
    opt = dist.create_multi_node_optimizer(optimizers.SGD(lr=0.1), tiny).setup(params)
    started = []
    original = tiny._start_allreduce
    tiny._start_allreduce = lambda buf, blocking=True: (
        started.append(buf.size),
        original(buf, blocking),
    )[1]
    during, after = [], []
    for _ in range(3):
        loss = F.softmax_cross_entropy(model(x), t)
        if rank == 1:  # a parameter only one process has a gradient for: sent at update()
            loss = loss + F.sum(extra * extra)
        model.cleargrads()
        extra.cleargrad()
        started.clear()
        loss.backward()
        during.append(len(started))
        local = [p.grad.data.copy() if p.grad is not None else np.zeros(p.shape) for p in params]
        opt.update()
        after.append(len(started))
        everyone = tiny.allgather_obj(local)
        for k, p in enumerate(params):
            expected = np.mean([r[k] for r in everyone], axis=0)
            np.testing.assert_allclose(p.grad.data, expected, rtol=1e-6, atol=1e-7)
    results["started_during_backward"] = during
    results["started_in_all"] = after
    # a second backward before update() changed a gradient that had been sent
    for _ in range(2):
        loss = F.softmax_cross_entropy(model(x), t)
        loss.backward()
    try:
        opt.update()
        results["stale"] = "no error"
    except RuntimeError as exc:
        results["stale"] = str(exc)
    # the same inside no_sync: accepted
    model.cleargrads()
    with opt.no_sync():
        F.softmax_cross_entropy(model(x), t).backward()
    F.softmax_cross_entropy(model(x), t).backward()
    opt.update()
    results["no_sync"] = "ok"

    # two models with an optimizer each on one communicator (a GAN): one exchange each, kept
    pair = dist.create_communicator("mpi", bucket_cap_mb=1e-6)
    nets = [models.MLP((4, 2)), models.MLP((3, 2))]
    opts = []
    for net in nets:
        net(x)
        opts.append(dist.create_multi_node_optimizer(optimizers.SGD(lr=0.1), pair).setup(net))
    built = []
    for _ in range(3):
        for net, opt2 in zip(nets, opts):
            net.cleargrads()
            F.sum(net(x) ** 2).backward()
            local = [p.grad.data.copy() for p in net.params()]
            opt2.update()
            built.append(id(pair.grad_exchange(net)))
            everyone = pair.allgather_obj(local)
            for k, p in enumerate(net.params()):
                np.testing.assert_allclose(p.grad.data, (everyone[0][k] + everyone[1][k]) / 2)
    results["exchanges_kept"] = [len(pair._exchanges), len(set(built))]
    (outdir / f"exchange.{rank}.json").write_text(json.dumps(results))


def scatter(comm, outdir: Path) -> None:
    data = agrad.datasets.Spiral()
    shards = {}
    for shuffle in (False, True):
        shard = dist.scatter_dataset(data, comm, shuffle=shuffle, seed=3)
        shards[str(shuffle)] = shard.indices
        x, _ = shard[0]
        assert x.shape == (2,)
    seven = list(range(7))  # any indexable works; 7 items do not split evenly in two
    shards["pad"] = [dist.scatter_dataset(seven, comm)[i] for i in range(4)]
    shards["pad_len"] = len(dist.scatter_dataset(seven, comm, shuffle=True, seed=1))
    shards["drop"] = dist.scatter_dataset(seven, comm, drop_remainder=True).indices
    shards["one"] = dist.scatter_dataset([42], comm).indices
    (outdir / f"scatter.{comm.rank}.json").write_text(json.dumps(shards))


class BNNet(agrad.Model):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = agrad.layers.Linear(4)
        self.bn = agrad.layers.BatchNorm()
        self.l2 = agrad.layers.Linear(3)

    def forward(self, x):
        return self.l2(F.relu(self.bn(self.l1(x))))


def evaluator(comm, outdir: Path) -> None:
    rank = comm.rank
    results = {}
    agrad.seed(0)
    model = BNNet()
    x = np.random.default_rng(rank).standard_normal((6, 3)).astype(np.float32) + 3 * rank
    model(x)  # train mode: each process's running statistics follow its own data
    stats = [model.bn.avg_mean.data.copy(), model.bn.avg_var.data.copy()]
    everyone = comm.allgather_obj(stats)
    results["differed"] = not np.allclose(everyone[0][0], everyone[1][0])
    comm.bcast_persistent(model)
    results["bcast_is_rank0"] = bool(np.array_equal(model.bn.avg_mean.data, everyone[0][0]))
    model.bn.avg_mean.data, model.bn.avg_var.data = stats
    comm.allreduce_persistent(model)
    results["allreduce_is_mean"] = [
        bool(np.allclose(model.bn.avg_mean.data, (everyone[0][0] + everyone[1][0]) / 2)),
        bool(np.allclose(model.bn.avg_var.data, (everyone[0][1] + everyone[1][1]) / 2)),
    ]
    results["dtype"] = str(model.bn.avg_mean.dtype)
    # BN statistics are not gradients: the exchange leaves them out
    model.cleargrads()
    F.sum(model(x)).backward()
    results["exchange_size"] = len(comm.grad_exchange(model).params)
    results["model_size"] = len(list(model.params()))

    def evaluate(scale):
        return {"loss": agrad.Variable(np.asarray(scale * (rank + 1), dtype=np.float32)), "n": 4}

    model.bn.avg_mean.data = stats[0]  # different again: the evaluator syncs them first
    metrics = dist.create_multi_node_evaluator(evaluate, comm, model=model)(2.0)
    results["metrics"] = metrics
    results["synced"] = comm.allgather_obj(model.bn.avg_mean.data.tolist())
    try:
        dist.create_multi_node_evaluator(lambda: {f"m{rank}": 1.0}, comm)()
    except RuntimeError as exc:
        results["mismatch"] = str(exc)
    (outdir / f"evaluator.{rank}.json").write_text(json.dumps(results))


def _resume_batch(step: int, rank: int, size: int):
    rng = np.random.default_rng(100 + step)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    t = rng.integers(0, 3, 8)
    local = 8 // size
    return x[rank * local : (rank + 1) * local], t[rank * local : (rank + 1) * local]


def _resume_setup(comm):
    agrad.seed(0)
    model = BNNet()
    model(np.zeros((2, 3), dtype=np.float32))
    opt = dist.create_multi_node_optimizer(optimizers.Adam(alpha=0.05), comm).setup(model)
    opt.add_hook(optimizers.WeightDecay(1e-3))
    return model, opt


def _resume_steps(comm, model, opt, first: int, last: int) -> None:
    for step in range(first, last):
        x, t = _resume_batch(step, comm.rank, comm.size)
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()


def _resume_save(comm, model, outdir: Path, name: str) -> None:
    if comm.rank == 0:
        np.savez(outdir / name, **{n: p.data for n, p in model.named_params()})


def uninterrupted(comm, outdir: Path) -> None:
    model, opt = _resume_setup(comm)
    _resume_steps(comm, model, opt, 0, 6)
    _resume_save(comm, model, outdir, "uninterrupted.npz")


def resume_first(comm, outdir: Path) -> None:
    model, opt = _resume_setup(comm)
    _resume_steps(comm, model, opt, 0, 3)
    dist.save_checkpoint(outdir / "ckpt.npz", comm, model, opt, step=3)


def resume_second(comm, outdir: Path) -> None:
    agrad.seed(1234 + comm.rank)  # other weights everywhere: all must come from the file
    model = BNNet()
    opt = dist.create_multi_node_optimizer(optimizers.Adam(alpha=0.05), comm)
    opt.add_hook(optimizers.WeightDecay(1e-3))
    state = dist.load_checkpoint(outdir / "ckpt.npz", comm, model, opt)
    opt.setup(model)
    _resume_steps(comm, model, opt, state["step"], 6)
    _resume_save(comm, model, outdir, "resumed.npz")


def _outcome(action) -> list:
    try:
        action()
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return ["ok", ""]


def checkpoint_errors(comm, outdir: Path) -> None:
    """Each failure, wherever it happens, is raised on both processes, and neither hangs."""
    agrad.seed(0)
    model = models.MLP((4, 3))
    model(np.ones((1, 3), dtype=np.float32))
    opt = optimizers.MomentumSGD().setup(model)
    path = outdir / "ckpt.npz"
    results = {"saved": _outcome(lambda: dist.save_checkpoint(path, comm, model, opt))}
    if comm.rank == 0:
        data = path.read_bytes()
        path.with_name("truncated.npz").write_bytes(data[: len(data) // 2])
    comm.barrier()
    results["truncated"] = _outcome(
        lambda: dist.load_checkpoint(outdir / "truncated.npz", comm, model, opt)
    )
    results["missing"] = _outcome(lambda: dist.load_checkpoint(outdir / "no.npz", comm, model))
    other = models.MLP((4 + comm.rank, 3))  # rank 1's model differs
    other(np.ones((1, 3), dtype=np.float32))
    results["rank1_model"] = _outcome(lambda: dist.load_checkpoint(path, comm, other))
    adam = optimizers.Adam().setup(model)
    results["adam"] = _outcome(lambda: dist.load_checkpoint(path, comm, model, adam))
    lazy = models.MLP((2,))
    results["lazy_save"] = _outcome(lambda: dist.save_checkpoint(path, comm, lazy))
    results["ok"] = _outcome(lambda: dist.load_checkpoint(path, comm, model, opt))
    (outdir / f"checkpoint_errors.{comm.rank}.json").write_text(json.dumps(results))


def _uneven_batch(step: int, rank: int):
    rng = np.random.default_rng(1000 * rank + step)
    return rng.standard_normal((3, 3)).astype(np.float32)


def _uneven_loss(model, x):
    return F.sum(F.tanh(model(x)) ** 2)


def uneven_join(comm, outdir: Path) -> None:
    """Rank 0 has 4 batches, rank 1 has 3; then rank 0 has 2 and rank 1 none."""
    plans = [{0: 4, 1: 3}, {0: 2, 1: 0}]
    agrad.seed(0)
    model = models.MLP((4, 2))
    model(np.ones((1, 3), dtype=np.float32))
    opt = dist.create_multi_node_optimizer(optimizers.SGD(lr=0.1), comm).setup(model)
    first = 0
    for plan in plans:
        with opt.join():
            for step in range(first, first + plan[comm.rank]):
                model.cleargrads()
                _uneven_loss(model, _uneven_batch(step, comm.rank)).backward()
                opt.update()
        first += max(plan.values())
    model.cleargrads()  # after the blocks, an ordinary update with overlap works again
    _uneven_loss(model, _uneven_batch(99, comm.rank)).backward()
    opt.update()
    results = {"params": [p.data.tolist() for p in model.params()]}
    if comm.rank == 0:  # the same steps in one process: the mean over the ranks with data
        agrad.seed(0)
        ref = models.MLP((4, 2))
        ref(np.ones((1, 3), dtype=np.float32))
        first = 0
        schedule = []
        for plan in plans:
            for k in range(max(plan.values())):
                schedule.append([(first + k, r) for r in range(2) if k < plan[r]])
            first += max(plan.values())
        schedule.append([(99, 0), (99, 1)])
        for batches in schedule:
            total = None
            for step, rank in batches:
                ref.cleargrads()
                _uneven_loss(ref, _uneven_batch(step, rank)).backward()
                grads = [p.grad.data.copy() for p in ref.params()]
                total = grads if total is None else [a + b for a, b in zip(total, grads)]
            for p, g in zip(ref.params(), total):
                p.data = p.data - 0.1 * g / len(batches)
        results["reference"] = [p.data.tolist() for p in ref.params()]
    (outdir / f"uneven_join.{comm.rank}.json").write_text(json.dumps(results))


def uneven_no_join(comm, outdir: Path) -> None:
    """Rank 1 has 3 batches, rank 0 has 4, and no join: rank 0 must not wait forever."""
    model = models.MLP((4, 2))
    model(np.ones((1, 3), dtype=np.float32))
    opt = dist.create_multi_node_optimizer(optimizers.SGD(), comm).setup(model)
    for step in range(4 - comm.rank):
        model.cleargrads()
        _uneven_loss(model, _uneven_batch(step, comm.rank)).backward()
        opt.update()


def exit_zero_midway(comm, outdir: Path) -> None:
    model = models.MLP((4, 2))
    model(np.ones((1, 3), dtype=np.float32))
    opt = dist.create_multi_node_optimizer(optimizers.SGD(), comm).setup(model)
    for step in range(3):
        if comm.rank == 1 and step == 1:
            sys.exit(0)
        F.sum(model(np.ones((2, 3), dtype=np.float32))).backward()
        opt.update()


def abort(comm, outdir: Path) -> None:
    if comm.rank == 1:
        raise ValueError("boom on rank 1")
    comm.allreduce(np.ones(1))  # would wait forever without the abort hook
    comm.barrier()


class _StalledAbort:
    """An MPI communicator whose Abort never returns and holds the GIL, as a stalled
    MPI_Abort called from mpi4py would."""

    def __init__(self, mpi_comm) -> None:
        self._mpi_comm = mpi_comm

    def __getattr__(self, name: str):
        return getattr(self._mpi_comm, name)

    def Abort(self, code: int = 0) -> None:
        ctypes.PyDLL(None).sleep(600)  # libc's sleep, called without releasing the GIL


def abort_stalls(comm, outdir: Path) -> None:
    """Rank 1 fails and its MPI_Abort stalls: the job still ends, within the grace period."""
    dist.communicator.ABORT_GRACE = 1.0
    comm.mpi_comm = _StalledAbort(comm.mpi_comm)
    abort(comm, outdir)


def exit_midway(comm, outdir: Path) -> None:
    model = models.MLP((4, 2))
    model(np.ones((1, 3), dtype=np.float32))
    opt = dist.create_multi_node_optimizer(optimizers.SGD(), comm).setup(model)
    for step in range(3):
        if comm.rank == 1 and step == 1:
            sys.exit(3)
        F.sum(model(np.ones((2, 3), dtype=np.float32))).backward()
        opt.update()  # rank 0 would wait here forever for rank 1


def mismatch(comm, outdir: Path) -> None:
    """Same parameter count, different shapes (rank 1 has 5 inputs, rank 0 has 4)."""
    model = models.MLP((3, 2))
    model(np.ones((1, 4 + comm.rank), dtype=np.float32))
    dist.create_multi_node_optimizer(optimizers.SGD(), comm).setup(model)


def mismatch_count(comm, outdir: Path) -> None:
    model = models.MLP((3, 2) if comm.rank == 0 else (3, 3, 2))
    model(np.ones((1, 4), dtype=np.float32))
    dist.create_multi_node_optimizer(optimizers.SGD(), comm).setup(model)


SCENARIOS = {
    f.__name__: f
    for f in (
        equivalence,
        single,
        collectives,
        exchange,
        scatter,
        abort,
        abort_stalls,
        exit_midway,
        evaluator,
        uninterrupted,
        resume_first,
        resume_second,
        checkpoint_errors,
        uneven_join,
        uneven_no_join,
        exit_zero_midway,
        mismatch,
        mismatch_count,
    )
}

if __name__ == "__main__":
    scenario, outdir = sys.argv[1], Path(sys.argv[2])
    comm = None if scenario == "single" else dist.create_communicator("mpi")
    SCENARIOS[scenario](comm, outdir)
