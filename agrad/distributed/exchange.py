"""Gradient exchange: persistent flat buffers, packed once per step, reduced in place, in buckets.

Parameters are grouped by (backend, dtype). Each group owns one flat buffer that lives where the
engine can reduce it (the parameters' own backend, or host memory for arrays it cannot hand to
MPI directly), allocated once and reused every step. A group is cut into buckets of about
``bucket_cap_mb`` megabytes, last parameters first (backward produces their gradients first).

Each bucket is exchanged with one in-place allreduce, either as soon as every gradient in it is
final (``register_post_accumulate_grad_hook``, PyTorch DDP's design; nonblocking) or at the next
``finish()`` for buckets whose hooks did not all fire. The last bucket is always sent by
``finish()``, blocking (MPI's blocking collectives are the faster ones; backward is over when it
is ready, so there is nothing left to overlap it with). Buckets always start in the same
fixed order, so every process issues the same collectives in the same order whatever order its
hooks fire in. After the exchange each gradient is a view of the buffer (when no conversion is
needed): it stays valid until the next exchange overwrites the buffer.

Behind the gradients, each bucket carries one slot per parameter saying whether the process had
a gradient for it: a parameter that no process has a gradient for keeps ``grad = None``.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

from agrad.backends import Backend
from agrad.backends.numpy import host
from agrad.core import Parameter, Variable

WIRE_DTYPES = ("float16", "float32", "float64")


class Pending:
    """A collective in flight: ``test()`` moves it on (MPI progresses only inside MPI calls) and
    says whether it is done; ``wait()`` blocks until it is."""

    def __init__(self, request: Any = None, comm: Any = None) -> None:
        self.request = request
        self.comm = comm  # for the watchdog of its timeout, if given

    def test(self) -> bool:
        """Whether the collective has completed (and a chance for MPI to progress it)."""
        return self.request is None or bool(self.request.Test())

    def wait(self) -> None:
        """Block until the collective has completed."""
        if self.request is not None:
            previous = self.comm._enter("allreduce") if self.comm is not None else None
            try:
                self.request.Wait()
            finally:
                if self.comm is not None:
                    self.comm._leave(previous)
            self.request = None


DONE = Pending()  # a collective that completed when it was started (or is stream-ordered)


class _Slot:
    __slots__ = ("bucket", "flag", "index", "offset", "param", "shape", "size")

    def __init__(self, index: int, param: Parameter, offset: int) -> None:
        self.index = index
        self.param = param
        self.shape = tuple(param.data.shape)
        self.size = math.prod(param.data.shape)  # torch tensors: .size is a method
        self.offset = offset
        self.flag = 0  # offset of the "has a gradient" slot, set when the bucket closes
        self.bucket: _Bucket | None = None


class _Bucket:
    __slots__ = ("group", "launched", "pending", "ready", "slots", "start", "stop")

    def __init__(self, group: _Group, slots: list[_Slot], start: int, stop: int) -> None:
        self.group = group
        self.slots = slots
        self.start = start
        self.stop = stop
        self.ready: set[int] = set()
        self.launched = False
        self.pending: Pending | None = None


class _Group:
    """Parameters of one backend and dtype, and the buffers their gradients travel in."""

    def __init__(self, backend: Backend, wire_backend: Backend, dtype: str, wire_dtype: str):
        self.backend = backend
        self.wire_backend = wire_backend
        self.narrowed = wire_dtype != dtype
        self.dtype = wire_backend.dtype(dtype)  # the parameters' dtype, where the buffers live
        self.wire_dtype = wire_backend.dtype(wire_dtype)
        self.slots: list[_Slot] = []
        self.buckets: list[_Bucket] = []
        self.wire: Any = None
        # where unpacked gradients are viewed from when the wire buffer cannot be: the same
        # backend in the parameters' dtype (after float16), or None for a copy per gradient
        self.full: Any = None
        self.same_place = wire_backend is backend

    def allocate(self, total: int) -> None:
        xp = self.wire_backend.xp
        self.wire = xp.zeros(total, dtype=self.wire_dtype)
        if self.narrowed:
            self.full = xp.zeros(total, dtype=self.dtype)


def _signature(named: list[tuple[str, Parameter]]) -> list[tuple[str, Any, str]]:
    out = []
    for name, p in named:
        if p.data is None:
            out.append((name, None, None))
        else:
            out.append((name, tuple(p.data.shape), p.backend.dtype_name(p.data.dtype)))
    return out


def check_same_parameters(comm: Any, named: list[tuple[str, Parameter]], what: str) -> None:
    """Raise on every process, naming the first difference, unless all processes hold parameters
    of the same names, shapes and dtypes in the same order (else collectives would mix them)."""
    if comm.size == 1:
        return
    mine = _signature(named)
    everyone = comm.allgather_obj(mine)
    reference = everyone[0]
    for rank, theirs in enumerate(everyone[1:], start=1):
        if theirs == reference:
            continue
        if len(theirs) != len(reference):
            detail = f"rank 0 has {len(reference)} parameters, rank {rank} has {len(theirs)}"
            for a, b in zip(reference, theirs):
                if a != b:
                    detail += f"; first difference: rank 0 {_show(a)}, rank {rank} {_show(b)}"
                    break
        else:
            a, b = next((a, b) for a, b in zip(reference, theirs) if a != b)
            detail = f"rank 0 {_show(a)}, rank {rank} {_show(b)}"
        raise RuntimeError(
            f"{what}: the processes' models differ ({detail}); every process must build the "
            "same model (same layers, sizes and dtypes, in the same order)"
        )


def _show(entry: tuple[str, Any, str]) -> str:
    name, shape, dtype = entry
    if shape is None:
        return f"{name!r} (not initialised)"
    return f"{name!r} shape {shape} {dtype}"


def named_params(model: Any) -> list[tuple[str, Parameter]]:
    """(name, parameter) pairs of ``model`` (a Layer, a Parameter or an iterable of them)."""
    if isinstance(model, Parameter):
        return [(model.name or "param", model)]
    named = getattr(model, "named_params", None)
    if named is not None:
        return list(named())
    return [(p.name or f"param[{i}]", p) for i, p in enumerate(model)]


def persistent_ids(model: Any) -> set[int]:
    """ids of the running statistics in ``model`` (BatchNorm's ``avg_mean``/``avg_var``): state
    that is a Parameter (so it is saved) but never has a gradient."""
    from agrad.layers import BatchNorm

    found: set[int] = set()
    layers = getattr(model, "_all_layers", None)
    if layers is None:
        return found
    for layer in layers():
        if isinstance(layer, BatchNorm):
            found.update((id(layer.avg_mean), id(layer.avg_var)))
    return found


class GradExchange:
    """Averages the gradients of a fixed list of parameters over every process of ``comm``."""

    def __init__(
        self,
        comm: Any,
        params: list[Parameter],
        bucket_cap_mb: float = 25.0,
        wire_dtype: str | None = None,
    ) -> None:
        self.comm = comm
        self.params = params
        self.key = layout_key(params)
        self.inverse_size = 1.0 / comm.size
        self.armed = False
        self.paused = False  # inside no_sync(): hooks do nothing, finish() sends everything
        self.stale: Parameter | None = None
        self._handles: list[Any] = []
        self._next = 0  # buckets before this one have been started this step
        groups: dict[tuple[Backend, str], _Group] = {}
        for index, p in enumerate(params):
            backend = p.backend
            name = backend.dtype_name(p.data.dtype)
            group = groups.get((backend, name))
            if group is None:
                wire_backend = comm._exchange_backend(backend)
                floating = name in WIRE_DTYPES
                wire_name = wire_dtype if (wire_dtype and floating) else name
                group = groups[(backend, name)] = _Group(backend, wire_backend, name, wire_name)
            group.slots.append(_Slot(index, p, 0))
        cap = max(1, int(bucket_cap_mb * 2**20))
        self.buckets: list[_Bucket] = []
        for group in groups.values():
            self._cut(group, cap)
        self.groups = list(groups.values())
        self._by_param = {id(s.param): s for g in self.groups for s in g.slots}

    def _cut(self, group: _Group, cap: int) -> None:
        """Lay the group's gradients out last parameter first, in buckets of about ``cap`` bytes,
        each followed by its has-a-gradient slots."""
        itemsize = host.dtype(group.wire_backend.dtype_name(group.wire_dtype)).itemsize
        offset = 0
        pending: list[_Slot] = []
        start = 0
        nbytes = 0
        order = list(reversed(group.slots))
        for k, slot in enumerate(order):
            slot.offset = offset
            offset += slot.size
            pending.append(slot)
            nbytes += slot.size * itemsize
            if nbytes >= cap or k == len(order) - 1:
                for s in pending:
                    s.flag = offset
                    offset += 1
                bucket = _Bucket(group, pending, start, offset)
                for s in pending:
                    s.bucket = bucket
                group.buckets.append(bucket)
                self.buckets.append(bucket)
                pending, start, nbytes = [], offset, 0
        group.allocate(offset)

    # -- overlap with backward --------------------------------------------------------------
    def arm(self) -> None:
        """Start each bucket's exchange from backward, as soon as its gradients are final
        (but the last one: see ``_grad_ready``). Nothing to do for a single bucket."""
        if self.armed or len(self.buckets) < 2:
            return
        ref = weakref.ref(self)

        def on_final_grad(param: Variable) -> None:
            exchange = ref()
            if exchange is not None:
                exchange._grad_ready(param)

        for p in self.params:
            self._handles.append(p.register_post_accumulate_grad_hook(on_final_grad))
        self.armed = True

    def disarm(self) -> None:
        """Stop starting exchanges from backward (everything waits for ``finish``)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.armed = False

    def _grad_ready(self, param: Variable) -> None:
        slot = self._by_param.get(id(param))
        if slot is None or not self.armed or self.paused:
            return
        self._progress()
        bucket = slot.bucket
        if bucket.launched:  # a second backward before the update: this gradient changed
            self.stale = slot.param
            return
        bucket.ready.add(slot.index)
        buckets = self.buckets
        # start in the fixed bucket order only, so that all processes issue the same sequence;
        # never the last bucket: backward ends when it is ready, nothing is left to overlap
        # with, and finish() sends it with the faster blocking collective
        while self._next < len(buckets) - 1:
            candidate = buckets[self._next]
            if len(candidate.ready) < len(candidate.slots):
                break
            self._launch(candidate)
            self._next += 1

    def _progress(self) -> None:
        """Let the buckets in flight move on: MPI's nonblocking collectives advance only while
        the process is inside MPI, so each hook call gives them a moment."""
        for bucket in self.buckets[: self._next]:
            if bucket.pending is not None and bucket.pending.test():
                bucket.pending = None

    # -- the exchange -----------------------------------------------------------------------
    def _launch(self, bucket: _Bucket) -> None:
        group = bucket.group
        wire = group.wire
        flags = []
        for slot in bucket.slots:
            grad = slot.param.grad
            region = wire[slot.offset : slot.offset + slot.size]
            if grad is None:
                region[...] = 0
                flags.append(0.0)
                continue
            data = grad.data
            if not group.same_place:
                data = host.asarray(group.backend.to_host(data))
            flat = group.wire_backend.xp.reshape(data, (-1,))
            # a narrower type: scale while casting (in the wider type), so that sums fit
            region[...] = flat * self.inverse_size if group.narrowed else flat
            flags.append(1.0)
        first_flag = bucket.slots[0].flag
        wire[first_flag : first_flag + len(flags)] = group.wire_backend.xp.asarray(
            flags, dtype=group.wire_dtype
        )
        # nonblocking only when buckets may leave from backward: every process decides alike
        # (arming happens at the same update everywhere), and MPI never matches a blocking
        # collective with a nonblocking one; blocking ones use MPI's faster algorithms
        region = wire[bucket.start : bucket.stop]
        blocking = not self.armed or bucket is self.buckets[-1]
        bucket.pending = self.comm._start_allreduce(region, blocking=blocking)
        bucket.launched = True

    def finish(self) -> None:
        """Start the buckets backward did not, wait for all, and give each parameter the mean."""
        if self.stale is not None:
            stale = self.stale
            self.abandon_in_flight()
            raise RuntimeError(
                f"allreduce_grad: the gradient of parameter {stale.name or ''!s} (shape "
                f"{tuple(stale.shape)}) changed after it was sent (backward() ran again before "
                "update()); accumulate gradients inside `with optimizer.no_sync():` for every "
                "backward but the last, or pass overlap=False"
            )
        while self._next < len(self.buckets):
            self._launch(self.buckets[self._next])
            self._next += 1
        for bucket in self.buckets:
            if bucket.pending is not None:
                bucket.pending.wait()
            self._unpack(bucket)
        self._reset()

    def _reset(self) -> None:
        for bucket in self.buckets:
            bucket.ready.clear()
            bucket.launched = False
            bucket.pending = None
        self._next = 0
        self.stale = None

    def abandon_in_flight(self) -> None:
        """Complete the exchanges in flight without using their results."""
        for bucket in self.buckets:
            if bucket.launched and bucket.pending is not None:
                bucket.pending.wait()
        self._reset()

    def abandon(self) -> None:
        """``abandon_in_flight`` and remove the hooks (before this layout is dropped)."""
        self.abandon_in_flight()
        self.disarm()

    def _unpack(self, bucket: _Bucket) -> None:
        group = bucket.group
        region = group.wire[bucket.start : bucket.stop]
        source = group.wire
        if not group.narrowed:
            region *= self.inverse_size  # the mean, in place
        else:
            group.full[bucket.start : bucket.stop] = region
            source = group.full
        first_flag = bucket.slots[0].flag
        present = None
        if any(slot.param.grad is None for slot in bucket.slots):  # ask the slots (host read)
            flags = source[first_flag : first_flag + len(bucket.slots)]
            present = [float(f) > 0 for f in host.asarray(group.wire_backend.to_host(flags))]
        xp = group.wire_backend.xp
        for k, slot in enumerate(bucket.slots):
            if present is not None and not present[k]:
                continue
            value = xp.reshape(source[slot.offset : slot.offset + slot.size], slot.shape)
            if not group.same_place:
                value = group.backend.asarray(host.asarray(group.wire_backend.to_host(value)))
            slot.param.grad = Variable(value)


def layout_key(params: list[Parameter]) -> tuple:
    """What decides a buffer layout: which parameters, in which order, of which shape/dtype."""
    return tuple((id(p), p.data.shape, p.data.dtype, type(p.data)) for p in params)
