"""The NCCL engine for CuPy arrays: NCCL collectives on the GPU, bootstrapped over MPI.

Each process drives one GPU (``cupy.cuda.Device(local_rank)``); rank 0 makes the NCCL unique id
and broadcasts it over MPI. Needs a CUDA GPU, CuPy built with NCCL, and mpi4py.
"""

from __future__ import annotations

import importlib
from typing import Any

from agrad.backends import Backend, backend_of, get_backend
from agrad.distributed.communicator import Communicator
from agrad.distributed.exchange import DONE, Pending
from agrad.distributed.mpi import MpiCommunicator


def nccl_module(backend: Any) -> Any:
    """CuPy's NCCL bindings, or ImportError saying why not: CuPy built without NCCL imports
    ``cupy.cuda.nccl`` fine but sets ``available = False`` there."""
    try:
        module = backend.nccl()
    except ImportError as exc:
        raise ImportError(f"the 'nccl' communicator needs CuPy built with NCCL ({exc})") from exc
    if not getattr(module, "available", True):
        raise ImportError(
            "the 'nccl' communicator needs CuPy built with NCCL: this CuPy has none "
            "(cupy.cuda.nccl.available is False); install a CuPy wheel with NCCL, e.g. "
            "pip install cupy-cuda12x, or use create_communicator('mpi')"
        )
    return module


class NcclCommunicator(Communicator):
    """Collectives through ``cupy.cuda.nccl`` on the current stream for CuPy arrays; other
    arrays go through MPI."""

    name = "nccl"

    def __init__(self, mpi_comm: Any, device: int | None = None, **options: Any) -> None:
        super().__init__(mpi_comm, **options)
        backend = get_backend("cupy")
        cupy = backend.library()
        if device is None:  # one GPU per process on each machine: the rank among its neighbours
            mpi = importlib.import_module("mpi4py.MPI")
            local_rank = mpi_comm.Split_type(mpi.COMM_TYPE_SHARED).Get_rank()
            device = local_rank % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(device).use()  # before any CuPy work, so no context opens on GPU 0
        backend.require()
        self._nccl = nccl_module(backend)
        self._cupy = cupy
        self._host = MpiCommunicator(mpi_comm, **options)  # for arrays that are not on a GPU
        uid = self._nccl.get_unique_id() if self.rank == 0 else None
        uid = mpi_comm.bcast(uid, root=0)
        self._comm = self._nccl.NcclCommunicator(self.size, uid, self.rank)
        self._types = {
            "float16": self._nccl.NCCL_FLOAT16,
            "float32": self._nccl.NCCL_FLOAT32,
            "float64": self._nccl.NCCL_FLOAT64,
            "int32": self._nccl.NCCL_INT32,
            "int64": self._nccl.NCCL_INT64,
        }

    def _nccl_type(self, buffer: Any) -> int:
        name = backend_of(buffer).dtype_name(buffer.dtype)
        try:
            return self._types[name]
        except KeyError:
            raise TypeError(f"the NCCL communicator does not reduce {name} arrays") from None

    def _on_gpu(self, buffer: Any) -> bool:
        return backend_of(buffer).name == "cupy"

    def _exchange_backend(self, backend: Backend) -> Backend:
        return backend if backend.name == "cupy" else self._host._exchange_backend(backend)

    def _start_allreduce(self, buffer: Any, blocking: bool = True) -> Pending:
        if not self._on_gpu(buffer):
            return self._host._start_allreduce(buffer, blocking)
        stream = self._cupy.cuda.get_current_stream().ptr
        ptr = buffer.data.ptr  # in place: NCCL allows the same send and receive buffer
        self._comm.allReduce(
            ptr, ptr, buffer.size, self._nccl_type(buffer), self._nccl.NCCL_SUM, stream
        )
        return DONE  # queued on the current stream: later work on it sees the sum

    def _allreduce_flat(self, buffer: Any) -> Any:
        if not self._on_gpu(buffer):
            return self._host._allreduce_flat(buffer)
        send = self._cupy.ascontiguousarray(buffer)
        out = self._cupy.empty_like(send)
        stream = self._cupy.cuda.get_current_stream().ptr
        self._comm.allReduce(
            send.data.ptr,
            out.data.ptr,
            send.size,
            self._nccl_type(send),
            self._nccl.NCCL_SUM,
            stream,
        )
        return out

    def _bcast_flat(self, buffer: Any, root: int) -> Any:
        if not self._on_gpu(buffer):
            return self._host._bcast_flat(buffer, root)
        out = self._cupy.ascontiguousarray(buffer).copy()
        stream = self._cupy.cuda.get_current_stream().ptr
        self._comm.bcast(out.data.ptr, out.size, self._nccl_type(out), root, stream)
        return out
