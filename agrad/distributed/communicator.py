"""The communicator interface, gradient packing, and choosing an engine."""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from typing import Any

from agrad.backends import Backend, backend_of
from agrad.backends.numpy import host
from agrad.config import _active_trace
from agrad.core import Parameter, Variable
from agrad.distributed.exchange import (
    WIRE_DTYPES,
    GradExchange,
    Pending,
    check_same_parameters,
    layout_key,
    named_params,
    persistent_ids,
)
from agrad.tracing.tracer import refusal

ENGINES = ("mpi", "nccl")
MAX_EXCHANGES = 8  # gradient buffers kept for this many parameter lists
# long enough for one process to evaluate or save a checkpoint while the others wait in a
# barrier; short enough that a process that is gone ends the job within minutes, not never
DEFAULT_TIMEOUT = 300.0
# how long MPI_Abort gets to end this process before the kernel ends it (`_end_process_after`)
ABORT_GRACE = 10.0


def _refuse_under_jit(what: str) -> None:
    """A collective inside a function that agrad.jit traces would run at the trace only: the
    replays, which run array operations, would skip it and the processes would part ways."""
    if _active_trace.get() is not None:
        raise refusal(
            f"{what} was called",
            "replays run only array operations, so it would take place at the first call "
            "alone. Call it outside: jit the forward and backward, then "
            "`comm.allreduce_grad(model)` (or MultiNodeOptimizer.update), then a jitted or "
            "plain update",
        )


class _Watchdog:
    """Ends the job when one collective has waited longer than ``comm.timeout``.

    The collectives stay MPI's blocking ones (the fast ones: nonblocking collectives polled for
    a deadline cost twice the latency); around each, the caller notes what it waits for and
    since when, in one attribute, and a daemon thread looks once in a while. MPI cannot cancel
    a collective, so the only way out of one that never completes is ending the job."""

    def __init__(self, comm: Communicator) -> None:
        self.comm = comm
        self.current: tuple[str, float] | None = None
        self.thread: threading.Thread | None = None

    def enter(self, what: str) -> tuple[str, float] | None:
        previous = self.current
        self.current = (what, time.monotonic())
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._watch, name="agrad-collective-watchdog", daemon=True
            )
            self.thread.start()
        return previous

    def _watch(self) -> None:
        while True:
            timeout = self.comm.timeout
            time.sleep(1.0 if timeout is None else min(1.0, timeout / 10))
            current = self.current
            if timeout is None or current is None:
                continue
            what, since = current
            waited = time.monotonic() - since
            if waited > timeout:
                comm = self.comm
                sys.stderr.write(
                    f"[agrad.distributed] rank {comm.rank} of {comm.size}: {what} did not "
                    f"complete within {timeout:g} s (the communicator's timeout); another "
                    "process has stopped taking part: it ended, crashed or was killed, or ran "
                    "out of data (let processes with uneven data finish inside `with "
                    "optimizer.join():`). Ending the job. Raise the timeout if a process may "
                    "legitimately work alone that long.\n"
                )
                sys.stderr.flush()
                comm.abort(1)
                return


def _timeout_setting(timeout: Any) -> float | None:
    """``timeout`` checked; the default from ``$AGRAD_DISTRIBUTED_TIMEOUT`` (seconds, or
    ``none``), else ``DEFAULT_TIMEOUT``."""
    source = "timeout"
    if timeout == "default":
        source = "AGRAD_DISTRIBUTED_TIMEOUT"
        timeout = os.environ.get(source, "").strip() or DEFAULT_TIMEOUT
        if isinstance(timeout, str) and timeout.lower() == "none":
            return None
    if timeout is None:
        return None
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(timeout, bool) or not value > 0 or value == float("inf"):
        raise ValueError(f"{source} must be a positive number of seconds or None, not {timeout!r}")
    return value


class Communicator:
    """What every engine offers: ``rank``, ``size`` and the collectives a training loop needs.

    Engines implement ``_allreduce_flat(buffer)`` (return the sum as a new array),
    ``_bcast_flat(buffer, root)``, ``_exchange_backend(backend)`` (where gradient buffers of that
    backend live) and ``_start_allreduce(buffer, blocking)`` (an in-place sum, returning a
    ``Pending`` to wait for); packing parameters into buffers is shared here. Object collectives
    go through MPI.

    ``allreduce_grad_dtype='float16'`` sends floating gradients as float16 (half the bytes, about
    3 significant digits); ``bucket_cap_mb`` is the size of one gradient bucket; ``timeout``
    bounds every wait in a collective (MPI collectives, and the object collectives of every
    engine): when one waits longer, the process reports which collective it waited in and
    ends the whole job, so that a process that is gone does not leave the others waiting.

    Made by :func:`create_communicator`, not directly.

    Parameters
    ----------
    mpi_comm : mpi4py.MPI.Comm
        The processes taking part, and the channel for Python objects.
    allreduce_grad_dtype : str or dtype, optional
        ``'float16'``, ``'float32'`` or ``'float64'``: the dtype floating gradients travel in;
        None sends each in its own dtype.
    bucket_cap_mb : float, default 25.0
        The size of one gradient bucket, in MiB.
    timeout : float or None, default 300.0
        Seconds a collective may wait for the other processes before the job is ended with a
        message naming this process and the collective; None waits forever. The default
        comes from ``$AGRAD_DISTRIBUTED_TIMEOUT`` (seconds, or ``none``) when set.

    Attributes
    ----------
    rank : int
        This process's number, from 0.
    size : int
        How many processes there are.

    Raises
    ------
    ValueError
        If ``allreduce_grad_dtype`` is not one of those dtypes or None, or ``bucket_cap_mb`` or
        ``timeout`` is not positive.

    Examples
    --------
    Under ``mpiexec`` (not run here):

    .. code-block:: python

        comm = agrad.distributed.create_communicator("mpi")
        total = comm.allreduce(x)          # the sum of every process's x
        comm.bcast_data(model)             # rank 0's parameter values on every process
        comm.allreduce_grad(model)         # each gradient replaced by its mean

    The object collectives, in one process over a stand-in for mpi4py's communicator:

    >>> from types import SimpleNamespace
    >>> world = SimpleNamespace(  # stands in for mpi4py's COMM_WORLD: one process, no MPI
    ...     Get_rank=lambda: 0,
    ...     Get_size=lambda: 1,
    ...     bcast=lambda obj, root=0: obj,
    ...     gather=lambda obj, root=0: [obj],
    ...     allgather=lambda obj: [obj],
    ...     Barrier=lambda: None,
    ... )
    >>> from agrad.distributed import Communicator
    >>> comm = Communicator(world)
    >>> comm.rank, comm.size
    (0, 1)
    >>> comm.allgather_obj("ready"), comm.allreduce_obj(3, op="max")
    (['ready'], 3)
    >>> Communicator(world, allreduce_grad_dtype="int8")
    Traceback (most recent call last):
    ...
    ValueError: allreduce_grad_dtype must be one of float16, float32, float64 or None, not int8
    """

    name = ""

    def __init__(
        self,
        mpi_comm: Any,
        allreduce_grad_dtype: Any = None,
        bucket_cap_mb: float = 25.0,
        timeout: Any = "default",
    ) -> None:
        self.mpi_comm = mpi_comm
        self.rank: int = mpi_comm.Get_rank()
        self.size: int = mpi_comm.Get_size()
        if allreduce_grad_dtype is not None:
            try:
                allreduce_grad_dtype = host.dtype(allreduce_grad_dtype).name
            except TypeError:
                allreduce_grad_dtype = repr(allreduce_grad_dtype)
            if allreduce_grad_dtype not in WIRE_DTYPES:
                raise ValueError(
                    f"allreduce_grad_dtype must be one of {', '.join(WIRE_DTYPES)} or None, "
                    f"not {allreduce_grad_dtype}"
                )
        if not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be a positive number, not {bucket_cap_mb!r}")
        self.allreduce_grad_dtype: str | None = allreduce_grad_dtype
        self.bucket_cap_mb = float(bucket_cap_mb)
        self.timeout: float | None = _timeout_setting(timeout)
        self._watchdog = _Watchdog(self)
        # one exchange per list of parameters (a GAN's two optimizers keep one each)
        self._exchanges: dict[tuple[int, ...], GradExchange] = {}

    # -- engine primitives --------------------------------------------------------------------
    def _allreduce_flat(self, buffer: Any) -> Any:
        raise NotImplementedError

    def _bcast_flat(self, buffer: Any, root: int) -> Any:
        raise NotImplementedError

    def _exchange_backend(self, backend: Backend) -> Backend:
        raise NotImplementedError

    def _start_allreduce(self, buffer: Any, blocking: bool = True) -> Pending:
        raise NotImplementedError

    # -- waiting with a deadline ----------------------------------------------------------------
    def _enter(self, what: str) -> Any:
        """Note that this process now waits in the collective ``what`` (for the watchdog);
        returns what ``_leave`` restores."""
        if self.timeout is None or self.size < 2:
            return None
        return self._watchdog.enter(what)

    def _leave(self, previous: Any) -> None:
        if self.timeout is not None and self.size > 1:
            self._watchdog.current = previous

    # -- Python objects -------------------------------------------------------------------------
    def bcast_obj(self, obj: Any, root: int = 0) -> Any:
        """Broadcast a picklable Python object from ``root``.

        Parameters
        ----------
        obj : object
            What ``root`` sends (the others' values are ignored).
        root : int, default 0
            The sending process.

        Returns
        -------
        object
            ``root``'s ``obj``, on every process.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            config = comm.bcast_obj(read_config() if comm.rank == 0 else None)
        """
        _refuse_under_jit("bcast_obj")
        previous = self._enter("bcast_obj")
        try:
            return self.mpi_comm.bcast(obj, root=root)
        finally:
            self._leave(previous)

    def gather_obj(self, obj: Any, root: int = 0) -> list[Any] | None:
        """Every process's ``obj``, in rank order, on ``root``; None on the others.

        Parameters
        ----------
        obj : object
            This process's picklable value.
        root : int, default 0
            The receiving process.

        Returns
        -------
        list or None
            The values in rank order on ``root``, None elsewhere.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            hosts = comm.gather_obj(socket.gethostname())  # a list on rank 0, else None
        """
        _refuse_under_jit("gather_obj")
        previous = self._enter("gather_obj")
        try:
            return self.mpi_comm.gather(obj, root=root)
        finally:
            self._leave(previous)

    def allgather_obj(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process.

        Parameters
        ----------
        obj : object
            This process's picklable value.

        Returns
        -------
        list
            The values in rank order.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            counts = comm.allgather_obj(len(shard))  # the same list on every process
        """
        _refuse_under_jit("allgather_obj")
        previous = self._enter("allgather_obj")
        try:
            return self.mpi_comm.allgather(obj)
        finally:
            self._leave(previous)

    def allreduce_obj(self, obj: Any, op: str = "sum") -> Any:
        """Sum (``'sum'``), mean, max or min of a picklable value (numbers, or anything with
        ``+``) over all processes, on every process.

        Parameters
        ----------
        obj : object
            This process's value.
        op : {"sum", "mean", "max", "min"}, default "sum"
            The reduction.

        Returns
        -------
        object
            The reduced value, the same on every process.

        Raises
        ------
        ValueError
            If ``op`` is not one of those.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            mean_loss = comm.allreduce_obj(float(loss.data), op="mean")
        """
        _refuse_under_jit("allreduce_obj")
        values = self.allgather_obj(obj)
        if op == "sum" or op == "mean":
            total = values[0]
            for value in values[1:]:
                total = total + value
            return total / self.size if op == "mean" else total
        if op == "max":
            return max(values)
        if op == "min":
            return min(values)
        raise ValueError(f"allreduce_obj: op must be 'sum', 'mean', 'max' or 'min', not {op!r}")

    def barrier(self) -> None:
        """Wait until every process gets here.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            if comm.rank == 0:
                download_data()
            comm.barrier()  # the others wait for the download
        """
        _refuse_under_jit("barrier")
        previous = self._enter("barrier")
        try:
            self.mpi_comm.Barrier()
        finally:
            self._leave(previous)

    def abort(self, code: int = 1) -> None:
        """End every process of the job (used when one of them fails).

        Should MPI not have ended this process ``ABORT_GRACE`` seconds (10) later, the kernel
        ends it (an alarm signal), and the launcher then ends the others.

        Parameters
        ----------
        code : int, default 1
            The exit status MPI reports.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            if not os.path.exists(path):
                comm.abort(2)  # no process waits forever for this one
        """
        _end_process_after(ABORT_GRACE)
        self.mpi_comm.Abort(code)

    # -- arrays -------------------------------------------------------------------------------
    def allreduce(self, array: Any, op: str = "sum") -> Any:
        """Sum (``op='sum'``) or mean (``op='mean'``) of ``array`` over all processes; a new array
        of the same backend, shape and dtype.

        Parameters
        ----------
        array : array or Variable
            This process's values; every process passes the same shape and dtype.
        op : {"sum", "mean"}, default "sum"
            The reduction.

        Returns
        -------
        array
            The result, on every process.

        Raises
        ------
        ValueError
            If ``op`` is not ``'sum'`` or ``'mean'``.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            correct = comm.allreduce(xp.sum(predicted == t))  # over every shard
        """
        _refuse_under_jit("allreduce")
        if op not in ("sum", "mean"):
            raise ValueError(f"allreduce: op must be 'sum' or 'mean', not {op!r}")
        data = array.data if isinstance(array, Variable) else array
        xp = backend_of(data).xp
        total = xp.reshape(self._allreduce_flat(xp.reshape(data, (-1,))), data.shape)
        if op == "mean":
            return total / self.size
        return total

    def bcast(self, array: Any, root: int = 0) -> Any:
        """``root``'s ``array`` on every process (each passes an array of the same shape/dtype).

        Parameters
        ----------
        array : array or Variable
            This process's array (its values matter on ``root`` only).
        root : int, default 0
            The sending process.

        Returns
        -------
        array
            A new array holding ``root``'s values.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            noise = comm.bcast(backend.randn((16,)))  # rank 0's draw everywhere
        """
        _refuse_under_jit("bcast")
        data = array.data if isinstance(array, Variable) else array
        xp = backend_of(data).xp
        return xp.reshape(self._bcast_flat(xp.reshape(data, (-1,)), root), data.shape)

    def allgather(self, array: Any) -> list[Any]:
        """Every process's ``array`` (shapes may differ, dtypes may not), in rank order, on every
        process, on the backend of the local one. Travels through host memory.

        Parameters
        ----------
        array : array or Variable
            This process's array.

        Returns
        -------
        list of array
            One array per process, in rank order.

        Raises
        ------
        TypeError
            If the processes pass different dtypes (the message lists each rank's).

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            predictions = xp.concat(comm.allgather(my_predictions))
        """
        _refuse_under_jit("allgather")
        return self._gather(array, None)

    def gather(self, array: Any, root: int = 0) -> list[Any] | None:
        """Every process's ``array`` in rank order on ``root`` (see ``allgather``); None on the
        other processes.

        Parameters
        ----------
        array : array or Variable
            This process's array.
        root : int, default 0
            The receiving process.

        Returns
        -------
        list of array or None
            One array per process on ``root``; None elsewhere.

        Raises
        ------
        TypeError
            If the processes pass different dtypes.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            parts = comm.gather(my_predictions)
            if comm.rank == 0:
                save(parts)
        """
        _refuse_under_jit("gather")
        return self._gather(array, root)

    def _gather(self, array: Any, root: int | None) -> list[Any] | None:
        data = array.data if isinstance(array, Variable) else array
        backend = backend_of(data)
        local = host.ascontiguousarray(host.asarray(backend.to_host(data)))
        meta = self.allgather_obj((tuple(local.shape), local.dtype.name))
        dtypes = {dtype for _, dtype in meta}
        if len(dtypes) > 1:
            listing = ", ".join(f"rank {r}: {dtype}" for r, (_, dtype) in enumerate(meta))
            raise TypeError(f"gather/allgather: every process must pass one dtype ({listing})")
        counts = [int(host.prod(shape, dtype=host.int64)) for shape, _ in meta]
        displacements = [sum(counts[:r]) for r in range(self.size)]
        received = host.empty(sum(counts), dtype=local.dtype) if root in (None, self.rank) else None
        spec = [received, counts, displacements, None] if received is not None else None
        previous = self._enter("allgather" if root is None else "gather")
        try:
            if root is None:
                self.mpi_comm.Allgatherv(host.reshape(local, (-1,)), spec)
            else:
                self.mpi_comm.Gatherv(host.reshape(local, (-1,)), spec, root=root)
        finally:
            self._leave(previous)
        if received is None:
            return None
        return [
            backend.asarray(host.reshape(received[d : d + c], shape))
            for (shape, _), c, d in zip(meta, counts, displacements)
        ]

    # -- models -------------------------------------------------------------------------------
    def bcast_data(self, model: Any, root: int = 0) -> None:
        """Give every process ``root``'s parameter values (one broadcast per backend and dtype),
        after checking that all processes hold the same parameters (names, shapes, dtypes).

        Parameters
        ----------
        model : Layer, Parameter or iterable of Parameter
            Built alike on every process.
        root : int, default 0
            The process whose values everyone gets.

        Raises
        ------
        RuntimeError
            If the processes' models differ, or a parameter is not initialised yet.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            model(x_first_batch)  # lazy layers get their shapes
            comm.bcast_data(model)
        """
        _refuse_under_jit("bcast_data")
        named = named_params(model)
        check_same_parameters(self, named, "bcast_data")
        params = [p for _, p in named]
        if any(p.data is None for p in params):
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

        Gradients travel in persistent flat buffers, one per backend and dtype cut into buckets
        (see ``agrad.distributed.exchange``), reduced in place. A process without a gradient for
        a parameter contributes zeros; a parameter that no process has a gradient for keeps
        ``grad = None``, as it would alone. Afterwards each gradient is a view of the buffer,
        valid until the next exchange. BatchNorm's running statistics are not gradients: see
        ``allreduce_persistent``.

        Parameters
        ----------
        model : Layer, Parameter or iterable of Parameter
            Whose gradients to average.

        Raises
        ------
        RuntimeError
            If the processes' models differ, or a parameter is not initialised yet.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            loss.backward()
            comm.allreduce_grad(model)  # what MultiNodeOptimizer.update does
            optimizer.update()
        """
        _refuse_under_jit("allreduce_grad")
        self.grad_exchange(model).finish()

    def grad_exchange(self, model: Any) -> GradExchange:
        """The exchange for ``model``'s parameters, built (and the models compared across
        processes) the first time and whenever the parameters change.

        Parameters
        ----------
        model : Layer, Parameter or iterable of Parameter
            Whose gradients it exchanges (BatchNorm statistics left out).

        Returns
        -------
        agrad.distributed.exchange.GradExchange
            Its ``finish()`` averages the gradients; ``arm()`` starts sending buckets during
            ``backward()``.

        Raises
        ------
        RuntimeError
            If a parameter is not initialised yet, or the processes' models differ.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            comm.grad_exchange(model).finish()  # the same as comm.allreduce_grad(model)
        """
        _refuse_under_jit("grad_exchange")
        named = named_params(model)
        skip = persistent_ids(model)
        if skip:
            named = [(n, p) for n, p in named if id(p) not in skip]
        params = [p for _, p in named]
        for name, p in named:
            if p.data is None:
                raise RuntimeError(
                    f"allreduce_grad: parameter {name!r} is not initialised yet (lazy layers "
                    "get their shape from the first input); run a forward pass first"
                )
        ids = tuple(id(p) for p in params)
        exchange = self._exchanges.get(ids)
        if exchange is not None and exchange.key == layout_key(params):
            return exchange
        armed = exchange is not None and exchange.armed
        # a parameter belongs to one exchange only: its hooks must start one bucket
        mine = set(ids)
        for other_ids in [k for k in self._exchanges if mine.intersection(k)]:
            self._exchanges.pop(other_ids).abandon()
        while len(self._exchanges) >= MAX_EXCHANGES:  # the oldest: its models may be gone
            self._exchanges.pop(next(iter(self._exchanges))).abandon()
        check_same_parameters(self, named, "allreduce_grad")
        exchange = GradExchange(self, params, self.bucket_cap_mb, self.allreduce_grad_dtype)
        if armed:
            exchange.arm()
        self._exchanges[ids] = exchange
        return exchange

    def allreduce_persistent(self, model: Any) -> None:
        """Average BatchNorm running statistics (``avg_mean``, ``avg_var``) over all processes,
        so that every process evaluates with the same ones (ChainerMN's AllreducePersistent).

        Parameters
        ----------
        model : Layer
            Whose BatchNorm statistics to average (other parameters are left alone).

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            comm.allreduce_persistent(model)
            with agrad.test_mode():
                accuracy = evaluate(model, shard)
        """
        _refuse_under_jit("allreduce_persistent")
        for p in _persistents(model):
            p.data = self.allreduce(p.data, op="mean")

    def bcast_persistent(self, model: Any, root: int = 0) -> None:
        """Give every process ``root``'s BatchNorm running statistics.

        Parameters
        ----------
        model : Layer
            Whose BatchNorm statistics to replace by ``root``'s.
        root : int, default 0
            The process whose statistics everyone gets.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            comm.bcast_persistent(model)  # evaluate with rank 0's statistics everywhere
        """
        _refuse_under_jit("bcast_persistent")
        for p in _persistents(model):
            p.data = self.bcast(p.data, root=root)


def _persistents(model: Any) -> list[Parameter]:
    ids = persistent_ids(model)
    return [p for _, p in named_params(model) if id(p) in ids and p.data is not None]


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


def _end_process_after(seconds: float) -> None:
    """Have the kernel end this process in ``seconds`` (SIGALRM's default action), in case
    MPI_Abort does not return and does not end it either.

    mpi4py calls MPI_Abort holding the GIL, so no Python thread could step in should it stall;
    the kernel's alarm needs none. A process that ends without MPI_Finalize makes the launcher
    end the job's other processes.
    """
    if not hasattr(signal, "setitimer"):  # (Windows: no alarm; MPI_Abort alone)
        return
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    elif signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None):
        return  # a Python handler would need the GIL the stalled call holds
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _install_abort_hook(comm: Communicator) -> None:
    """One process failing ends the whole job, so that the others do not wait forever in a
    collective that never comes: an uncaught exception prints its traceback and aborts, and so
    does ``sys.exit(n)`` with a nonzero (or message) ``n``, once its ``finally`` blocks have run.
    """
    previous = sys.excepthook

    def abort_on_error(kind: type, value: BaseException, tb: Any) -> None:
        text = "".join(traceback.format_exception(kind, value, tb))
        sys.stderr.write(f"[agrad.distributed] rank {comm.rank} of {comm.size} failed:\n{text}")
        sys.stderr.flush()
        if comm.size > 1:
            comm.abort(1)
        previous(kind, value, tb)

    sys.excepthook = abort_on_error
    if comm.size < 2 or getattr(sys.exit, "_agrad_records_exit", False):
        return
    original_exit = sys.exit
    requested: list[Any] = []

    def exit_recorded(status: Any = None) -> None:
        requested[:] = [status]
        original_exit(status)

    exit_recorded._agrad_records_exit = True  # type: ignore[attr-defined]
    sys.exit = exit_recorded

    # atexit runs handlers last-registered first: this one before mpi4py's MPI_Finalize, which
    # would otherwise wait for processes that are themselves waiting for this one
    def abort_on_exit_status() -> None:
        if not requested or requested[0] is None or requested[0] == 0:
            return
        status = requested[0]
        code = status if isinstance(status, int) else 1
        sys.stderr.write(
            f"[agrad.distributed] rank {comm.rank} of {comm.size} called sys.exit({status!r}); "
            "ending the job\n"
        )
        sys.stderr.flush()
        comm.abort(code)

    atexit.register(abort_on_exit_status)


def create_communicator(name: str = "auto", mpi_comm: Any = None, **options: Any) -> Communicator:
    """A communicator over ``mpi_comm`` (default: ``MPI.COMM_WORLD``).

    ``'mpi'`` uses mpi4py on host (or CUDA-aware) buffers; ``'nccl'`` uses NCCL for CuPy arrays,
    bootstrapped over MPI; ``'auto'`` picks NCCL when the default backend is CuPy, else MPI.
    An uncaught exception on any process aborts the whole job (unless the environment variable
    ``AGRAD_DISTRIBUTED_NO_ABORT_HOOK`` is ``1``).

    Parameters
    ----------
    name : {"auto", "mpi", "nccl"}, default "auto"
        The engine.
    mpi_comm : mpi4py.MPI.Comm, optional
        The processes taking part; ``MPI.COMM_WORLD`` when omitted.
    **options
        Passed to the engine: ``allreduce_grad_dtype``, ``bucket_cap_mb``, ``timeout`` (see
        :class:`Communicator`); ``device`` (the GPU number) for NCCL.

    Returns
    -------
    Communicator
        The engine's communicator, with ``rank`` and ``size``.

    Raises
    ------
    ValueError
        If ``name`` is not an engine, or an option is out of range.
    ImportError
        If mpi4py (or an MPI library) is not installed.

    Examples
    --------
    In a script run with ``mpiexec -n 4 python train.py`` (not run here):

    .. code-block:: python

        comm = agrad.distributed.create_communicator("auto")
        print(f"process {comm.rank} of {comm.size}")

    The engine's name is checked before MPI is touched:

    >>> from agrad.distributed import create_communicator
    >>> create_communicator("gloo")
    Traceback (most recent call last):
    ...
    ValueError: unknown communicator 'gloo'; known: mpi, nccl, auto
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
