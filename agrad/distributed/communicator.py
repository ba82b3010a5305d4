"""The communicator interface, gradient packing, and choosing an engine."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Iterable
from typing import Any

from agrad.backends import Backend, backend_of
from agrad.backends.numpy import host
from agrad.core import Parameter, Variable

ENGINES = ("mpi", "nccl")


class Communicator:
    """What every engine offers: ``rank``, ``size`` and the collectives a training loop needs.

    Engines implement ``_allreduce_flat(buffer)`` (sum in place semantics: return the summed
    array) and ``_bcast_flat(buffer, root)`` on flat arrays of one backend and dtype, plus
    ``bcast_obj``/``barrier``/``abort``; packing parameters into those buffers is shared here.
    """

    name = ""

    def __init__(self, mpi_comm: Any) -> None:
        self.mpi_comm = mpi_comm
        self.rank: int = mpi_comm.Get_rank()
        self.size: int = mpi_comm.Get_size()

    # -- engine primitives --------------------------------------------------------------------
    def _allreduce_flat(self, buffer: Any) -> Any:
        raise NotImplementedError

    def _bcast_flat(self, buffer: Any, root: int) -> Any:
        raise NotImplementedError

    def bcast_obj(self, obj: Any, root: int = 0) -> Any:
        """Broadcast a picklable Python object from ``root``."""
        return self.mpi_comm.bcast(obj, root=root)

    def barrier(self) -> None:
        """Wait until every process gets here."""
        self.mpi_comm.Barrier()

    def abort(self, code: int = 1) -> None:
        """End every process of the job (used when one of them fails)."""
        self.mpi_comm.Abort(code)

    # -- user-level collectives ---------------------------------------------------------------
    def allreduce(self, array: Any, op: str = "sum") -> Any:
        """Sum (``op='sum'``) or mean (``op='mean'``) of ``array`` over all processes; a new array
        of the same backend, shape and dtype."""
        data = array.data if isinstance(array, Variable) else array
        xp = backend_of(data).xp
        total = xp.reshape(self._allreduce_flat(xp.reshape(data, (-1,))), data.shape)
        if op == "mean":
            return total / self.size
        if op != "sum":
            raise ValueError(f"allreduce: op must be 'sum' or 'mean', not {op!r}")
        return total

    def bcast(self, array: Any, root: int = 0) -> Any:
        """``root``'s ``array`` on every process (each passes an array of the same shape/dtype)."""
        data = array.data if isinstance(array, Variable) else array
        xp = backend_of(data).xp
        return xp.reshape(self._bcast_flat(xp.reshape(data, (-1,)), root), data.shape)

    def bcast_data(self, model: Any, root: int = 0) -> None:
        """Give every process ``root``'s parameter values (one broadcast per backend and dtype)."""
        params = _params(model)
        missing = [i for i, p in enumerate(params) if p.data is None]
        if missing:
            raise RuntimeError(
                "bcast_data: some parameters are not initialised yet (lazy layers get their "
                "shape from the first input); run one forward pass before broadcasting"
            )
        for group, arrays in _group([p.data for p in params]):
            received = self._bcast_flat(_pack(group, arrays), root)
            for index, value in _unpack(group, arrays, received):
                params[index].data = value

    def allreduce_grad(self, model: Any) -> None:
        """Replace every parameter's gradient by its mean over all processes.

        Gradients are packed into one flat buffer per backend and dtype, together with one slot
        per parameter counting the processes that have its gradient, and reduced in one
        collective each. A process without a gradient for a parameter contributes zeros; a
        parameter that no process has a gradient for keeps ``grad = None``, as it would alone.
        """
        params = _params(model)
        grads = []
        for p in params:
            if p.data is None:
                raise RuntimeError("allreduce_grad: a parameter is not initialised yet")
            grads.append(p.grad.data if p.grad is not None else None)
        for indices, arrays in _group([p.data for p in params]):
            xp = backend_of(arrays[0]).xp
            present = [grads[i] is not None for i in indices]
            parts = [xp.reshape(grads[i], (-1,)) if grads[i] is not None else None for i in indices]
            parts = [
                part if part is not None else xp.zeros(arrays[k].size, dtype=arrays[k].dtype)
                for k, part in enumerate(parts)
            ]
            counts = xp.asarray([1.0 if flag else 0.0 for flag in present], dtype=arrays[0].dtype)
            total = self._allreduce_flat(xp.concat([*parts, counts]))
            n = total.shape[0] - len(indices)
            if all(present):
                have = present
            else:  # ask the counts (a host read), only when this process lacks a gradient
                have = [float(c) > 0 for c in host.asarray(backend_of(total).to_host(total[n:]))]
            mean = total[:n] / self.size
            for (index, value), has_grad in zip(_unpack(indices, arrays, mean), have):
                param = params[index]
                if not has_grad:
                    continue
                if param.grad is None:
                    param.grad = Variable(value)
                else:
                    param.grad.data = value


def _params(model: Any) -> list[Parameter]:
    if isinstance(model, Parameter):
        return [model]
    params = getattr(model, "params", None)
    found = list(params()) if params is not None else list(model)
    return found


def _group(arrays: Iterable[Any]) -> list[tuple[list[int], list[Any]]]:
    """Indices and arrays grouped by (backend, dtype), in first-seen order."""
    groups: dict[tuple[Backend, str], tuple[list[int], list[Any]]] = {}
    for index, array in enumerate(arrays):
        backend = backend_of(array)
        key = (backend, backend.dtype_name(array.dtype))
        indices, members = groups.setdefault(key, ([], []))
        indices.append(index)
        members.append(array)
    return list(groups.values())


def _pack(indices: list[int], arrays: list[Any]) -> Any:
    xp = backend_of(arrays[0]).xp
    return xp.concat([xp.reshape(a, (-1,)) for a in arrays])


def _unpack(indices: list[int], arrays: list[Any], flat: Any):
    xp = backend_of(flat).xp
    offset = 0
    for index, array in zip(indices, arrays):
        n = 1
        for s in array.shape:
            n *= s
        yield index, xp.reshape(flat[offset : offset + n], array.shape)
        offset += n


def _install_abort_hook(comm: Communicator) -> None:
    """An uncaught exception on one rank prints its traceback and aborts the whole job, so the
    other processes do not wait forever in a collective that never comes."""
    previous = sys.excepthook

    def abort_on_error(kind: type, value: BaseException, tb: Any) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(f"[agrad.distributed] rank {comm.rank} of {comm.size} failed:\n{text}")
        sys.stderr.flush()
        if comm.size > 1:
            comm.abort(1)
        previous(kind, value, tb)

    sys.excepthook = abort_on_error


def create_communicator(name: str = "auto", mpi_comm: Any = None, **options: Any) -> Communicator:
    """A communicator over ``mpi_comm`` (default: ``MPI.COMM_WORLD``).

    ``'mpi'`` uses mpi4py on host (or CUDA-aware) buffers; ``'nccl'`` uses NCCL for CuPy arrays,
    bootstrapped over MPI; ``'auto'`` picks NCCL when the default backend is CuPy, else MPI.
    An uncaught exception on any process aborts the whole job.
    """
    if name not in (*ENGINES, "auto"):
        raise ValueError(f"unknown communicator {name!r}; known: {', '.join(ENGINES)}, auto")
    try:
        mpi = importlib.import_module("mpi4py.MPI")
    except ImportError as exc:
        raise ImportError(
            "agrad.distributed needs mpi4py and an MPI library: pip install 'agrad[mpi]'"
        ) from exc
    if mpi_comm is None:
        mpi_comm = mpi.COMM_WORLD
    if name == "auto":
        from agrad.backends import current_backend

        name = "nccl" if current_backend().name == "cupy" else "mpi"
    if name == "nccl":
        from agrad.distributed.nccl import NcclCommunicator

        comm: Communicator = NcclCommunicator(mpi_comm, **options)
    else:
        from agrad.distributed.mpi import MpiCommunicator

        comm = MpiCommunicator(mpi_comm, **options)
    if os.environ.get("AGRAD_DISTRIBUTED_NO_ABORT_HOOK") != "1":
        _install_abort_hook(comm)
    return comm
