"""The MPI engine: collectives through mpi4py. NumPy buffers go to MPI as they are; CuPy buffers
go to MPI directly where the MPI library is CUDA-aware, else through host memory; other
backends' arrays (array-api-strict) through host memory."""

from __future__ import annotations

import ctypes
import importlib
import os
from typing import Any

from agrad.backends import Backend, backend_of
from agrad.backends.numpy import backend as host_backend
from agrad.backends.numpy import host
from agrad.distributed.communicator import Communicator
from agrad.distributed.exchange import DONE, Pending


def mpi_is_cuda_aware() -> bool:
    """Whether the loaded MPI library takes CUDA device pointers: ``$AGRAD_MPI_CUDA_AWARE`` (1/0)
    decides, else Open MPI's ``MPIX_Query_cuda_support``; any other MPI counts as not."""
    setting = os.environ.get("AGRAD_MPI_CUDA_AWARE", "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    try:
        with open("/proc/self/maps") as maps:
            libraries = sorted({line.split()[-1] for line in maps if "libmpi" in line})
    except OSError:
        return False
    for path in libraries:
        try:
            query = ctypes.CDLL(path).MPIX_Query_cuda_support
        except (OSError, AttributeError):
            continue
        query.restype = ctypes.c_int
        return bool(query())
    return False


class MpiCommunicator(Communicator):
    """Collectives over an mpi4py communicator."""

    name = "mpi"

    def __init__(self, mpi_comm: Any, **options: Any) -> None:
        super().__init__(mpi_comm, **options)
        self._MPI = importlib.import_module("mpi4py.MPI")
        self._cuda_aware: bool | None = None

    @property
    def cuda_aware(self) -> bool:
        """Whether CuPy buffers are handed to MPI directly (asked once)."""
        if self._cuda_aware is None:
            self._cuda_aware = mpi_is_cuda_aware()
        return self._cuda_aware

    def _direct(self, backend: Backend) -> bool:
        """Whether MPI reads and writes this backend's arrays where they are."""
        return backend.name == "numpy" or (backend.gpu and self.cuda_aware)

    def _exchange_backend(self, backend: Backend) -> Backend:
        return backend if self._direct(backend) else host_backend

    def _start_allreduce(self, buffer: Any, blocking: bool = True) -> Pending:
        if backend_of(buffer).gpu:
            buffer.device.synchronize()  # MPI reads device memory outside CuPy's stream order
        if blocking:
            previous = self._enter("allreduce")
            try:
                self.mpi_comm.Allreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)
            finally:
                self._leave(previous)
            return DONE
        request = self.mpi_comm.Iallreduce(self._MPI.IN_PLACE, buffer, op=self._MPI.SUM)
        return Pending(request, self)

    def _allreduce_flat(self, buffer: Any) -> Any:
        backend = backend_of(buffer)
        if self._direct(backend):
            out = backend.xp.asarray(buffer, copy=True)
            self._start_allreduce(out)
            return out
        out = host.array(backend.to_host(buffer), copy=True)
        self._start_allreduce(out)
        return backend.asarray(out)

    def _bcast_flat(self, buffer: Any, root: int) -> Any:
        backend = backend_of(buffer)
        if self._direct(backend):
            out = backend.xp.asarray(buffer, copy=True)
            if backend.gpu:
                out.device.synchronize()
            self._bcast_buffer(out, root)
            return out
        out = host.array(backend.to_host(buffer), copy=True)
        self._bcast_buffer(out, root)
        return backend.asarray(out)

    def _bcast_buffer(self, buffer: Any, root: int) -> None:
        previous = self._enter("bcast")
        try:
            self.mpi_comm.Bcast(buffer, root=root)
        finally:
            self._leave(previous)
