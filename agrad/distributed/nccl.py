"""The NCCL engine for CuPy arrays: NCCL collectives on the GPU, bootstrapped over MPI.

Each process drives one GPU (``cupy.cuda.Device(local_rank)``); rank 0 makes the NCCL unique id
and broadcasts it over MPI. Needs a CUDA GPU, CuPy built with NCCL, and mpi4py.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from agrad.backends import backend_of, get_backend
from agrad.distributed.communicator import Communicator


class NcclCommunicator(Communicator):
    """Collectives through ``cupy.cuda.nccl`` on the current stream; buffers must be CuPy."""

    name = "nccl"

    def __init__(self, mpi_comm: Any, device: int | None = None) -> None:
        super().__init__(mpi_comm)
        get_backend("cupy").require()
        cupy = importlib.import_module("cupy")
        try:
            self._nccl = importlib.import_module("cupy.cuda.nccl")
        except ImportError as exc:
            raise ImportError("the 'nccl' communicator needs CuPy built with NCCL") from exc
        if device is None:
            local_rank = os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK") or os.environ.get(
                "MPI_LOCALRANKID", "0"
            )
            device = int(local_rank) % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(device).use()
        self._cupy = cupy
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

    def _require_cupy(self, buffer: Any) -> Any:
        if backend_of(buffer).name != "cupy":
            raise TypeError(
                f"the NCCL communicator works on CuPy arrays, not {backend_of(buffer).name!r}; "
                "move the model with to_gpu() or use create_communicator('mpi')"
            )
        return self._cupy.ascontiguousarray(buffer)

    def _allreduce_flat(self, buffer: Any) -> Any:
        send = self._require_cupy(buffer)
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
        out = self._require_cupy(buffer).copy()
        stream = self._cupy.cuda.get_current_stream().ptr
        self._comm.bcast(out.data.ptr, out.size, self._nccl_type(out), root, stream)
        return out
