"""The gradient exchange without MPI, on every backend: a communicator whose one other process
holds the same gradients, so the mean must equal the local gradient."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest

import agrad
import agrad.distributed as dist
import agrad.functions as F
from agrad import models, optimizers
from agrad.cuda import as_numpy
from agrad.distributed.exchange import DONE


class TwinComm(dist.Communicator):
    """Two processes, the other one simulated with the same gradients: a sum doubles."""

    name = "twin"

    def __init__(self, **options):
        super().__init__(types.SimpleNamespace(Get_rank=lambda: 0, Get_size=lambda: 2), **options)
        self.started = []

    def _exchange_backend(self, backend):
        return backend if backend.name == "numpy" else agrad.get_backend("numpy")

    def _start_allreduce(self, buffer, blocking=True):
        self.started.append(math.prod(buffer.shape))
        buffer[...] = buffer * 2
        return DONE

    def _bcast_flat(self, buffer, root):
        return agrad.backends.backend_of(buffer).xp.asarray(buffer, copy=True)

    def allgather_obj(self, obj):
        return [obj, obj]


def _model(xp):
    agrad.seed(0)
    model = models.MLP((5, 3))
    model(xp.ones((2, 4), dtype=xp.float32))
    return model


def _loss(model, xp):
    x = xp.reshape(xp.arange(8, dtype=xp.float32), (2, 4)) / 8
    return F.sum(model(x) ** 2)


def test_mean_over_identical_processes_is_the_local_gradient(xp):
    comm = TwinComm()
    model = _model(xp)
    extra = agrad.Parameter(xp.asarray([1.0, 2.0], dtype=xp.float64), name="extra")
    unused = agrad.Parameter(xp.zeros(3, dtype=xp.float32), name="unused")
    (_loss(model, xp) + F.sum(extra * extra)).backward()
    params = [*model.params(), extra, unused]
    local = [as_numpy(p.grad.data).copy() if p.grad is not None else None for p in params]
    comm.allreduce_grad(params)
    assert unused.grad is None  # no process had a gradient: it stays None
    for p, before in zip(params[:-1], local):
        assert p.grad.backend is p.backend
        assert p.grad.dtype == p.dtype
        np.testing.assert_allclose(as_numpy(p.grad.data), before, rtol=1e-6)
    float32 = [*model.params(), unused]
    assert sorted(comm.started) == sorted(
        [sum(math.prod(p.shape) for p in float32) + len(float32), math.prod(extra.shape) + 1]
    )  # one bucket per dtype (gradients plus one has-a-gradient slot each)


def test_buckets_start_in_one_order_whatever_order_the_hooks_fire(xp):
    comm = TwinComm(bucket_cap_mb=1e-6)  # one bucket per parameter
    params = [agrad.Parameter(xp.ones(k + 1, dtype=xp.float32)) for k in range(4)]
    exchange = comm.grad_exchange(params)
    exchange.arm()
    order = [b.slots[0].index for b in exchange.buckets]
    assert order == [3, 2, 1, 0]  # last parameter first, as backward produces them
    for p in params:
        p.grad = agrad.Variable(xp.full(p.shape, 3.0, dtype=xp.float32))
    exchange._grad_ready(params[0])  # the last bucket is ready first: it must wait
    exchange._grad_ready(params[2])
    assert comm.started == []
    exchange._grad_ready(params[3])  # the first bucket: it and the next ready one go
    assert comm.started == [5, 4]
    exchange.finish()  # the rest now, in order
    assert comm.started == [5, 4, 3, 2]
    assert all(as_numpy(p.grad.data).tolist() == [3.0] * math.prod(p.shape) for p in params)


def test_buckets_leave_during_backward_from_the_second_update(xp):
    comm = TwinComm(bucket_cap_mb=1e-6)
    model = _model(xp)
    opt = dist.create_multi_node_optimizer(optimizers.SGD(lr=0.1), comm).setup(model)
    during = []
    for _ in range(3):
        model.cleargrads()
        comm.started.clear()
        _loss(model, xp).backward()
        during.append(len(comm.started))
        opt.update()
        assert len(comm.started) == 4
    assert during == [0, 3, 3]  # the last bucket always leaves from update()
    # a second backward after the buckets left: the sent gradients are out of date
    _loss(model, xp).backward()
    _loss(model, xp).backward()
    with pytest.raises(RuntimeError, match="changed after it was sent"):
        opt.update()
    model.cleargrads()
    with opt.no_sync():
        _loss(model, xp).backward()
    _loss(model, xp).backward()
    opt.update()


def test_float16_on_the_wire_keeps_the_parameter_dtype(xp):
    comm = TwinComm(allreduce_grad_dtype="float16")
    p = agrad.Parameter(xp.zeros(3, dtype=xp.float32))
    p.grad = agrad.Variable(xp.asarray([1 / 3, 1000.0, -2.5], dtype=xp.float32))
    comm.allreduce_grad([p])
    assert p.grad.dtype == xp.float32
    np.testing.assert_allclose(as_numpy(p.grad.data), [1 / 3, 1000.0, -2.5], rtol=1e-3)


def test_gradients_are_writable_views_of_one_persistent_buffer():
    comm = TwinComm()
    p = agrad.Parameter(np.zeros((2, 3), dtype=np.float32))
    seen = []
    for step in range(2):
        p.grad = agrad.Variable(np.full((2, 3), step + 1.0, dtype=np.float32))
        comm.allreduce_grad([p])
        seen.append(p.grad.data)
    assert np.shares_memory(seen[0], seen[1])
    p.grad.data *= 0.5  # a user's own clipping works
    assert p.grad.data.tolist() == [[1.0] * 3] * 2


@pytest.mark.parametrize(
    "collective",
    ["allreduce_grad", "allreduce", "allreduce_obj", "bcast_data", "barrier"],
)
def test_a_collective_inside_a_jitted_function_is_refused(xp, collective):
    # replays run array operations only: the exchange would happen at the trace alone, and the
    # processes would part ways without a word
    comm = TwinComm()
    model = _model(xp)
    calls = {
        "allreduce_grad": lambda: comm.allreduce_grad(model),
        "allreduce": lambda: comm.allreduce(model.l0.W),
        "allreduce_obj": lambda: comm.allreduce_obj(1.0),
        "bcast_data": lambda: comm.bcast_data(model),
        "barrier": comm.barrier,
    }

    def step():
        model.cleargrads()
        _loss(model, xp).backward()
        calls[collective]()

    with pytest.raises(agrad.TraceError, match=f"{collective} was called inside a jitted"):
        agrad.jit(step)()
