"""Checkpoint and resume of a data-parallel run: rank 0 writes, every process resumes.

After ``allreduce_grad`` every process holds the same parameters and optimizer state, so one
copy is enough: rank 0 writes it (beside the target, then renamed over it) and every process
waits until the file is complete. ``load_checkpoint`` reads it on rank 0 and broadcasts it, so
the other processes need not see the same file system.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import tempfile
import zipfile
import zlib
from typing import Any

from agrad.backends import current_backend
from agrad.backends.numpy import host
from agrad.core import Parameter
from agrad.distributed.exchange import named_params
from agrad.layers import _TEMP_TAG, _cast_for_loading, _mode_for, _remove_stale_temporaries

_SKIPPED = ("target", "hooks")


def _optimizer_state(optimizer: Any, names: dict[int, str]) -> tuple[dict, dict]:
    """(arrays, scalars): per-parameter state (dicts keyed by Parameter: moments, velocities)
    under ``attribute/parameter name``, and plain numbers (step count, learning rate)."""
    arrays, scalars = {}, {}
    for attribute, value in vars(optimizer).items():
        if attribute in _SKIPPED:
            continue
        if isinstance(value, dict) and all(isinstance(k, Parameter) for k in value):
            for param, array in value.items():
                if id(param) not in names:
                    raise ValueError(
                        f"save_checkpoint: optimizer state {attribute!r} holds a parameter "
                        "that is not in the model"
                    )
                arrays[f"{attribute}/{names[id(param)]}"] = param.backend.to_host(array)
        elif isinstance(value, (bool, int, float, str)) or value is None:
            scalars[attribute] = value
    return arrays, scalars


def _unwrap(optimizer: Any) -> Any:
    return optimizer.__dict__.get("actual_optimizer", optimizer)


def save_checkpoint(
    path: str | os.PathLike, comm: Any, model: Any, optimizer: Any = None, **state: Any
) -> None:
    """Write ``model``'s parameters, ``optimizer``'s state and ``state`` (JSON values: epoch,
    iteration, ...) to the ``.npz`` file ``path``; rank 0 writes, every process waits for it.

    The file is written beside ``path`` (``.<name>.agrad-<pid>-<random>.tmp``), flushed to disk
    and renamed over it, so a crash never leaves half a checkpoint; the temporaries of a save that
    was killed are removed by the next save of the same file. A failure on rank 0 (a parameter
    not initialised, a full disk) is raised on every process, none waits for the file forever.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (rank 0's file system).
    comm : Communicator
        Gives ``rank`` and ``bcast_obj``.
    model : Layer, Parameter or iterable of Parameter
        Whose parameters to save.
    optimizer : Optimizer or MultiNodeOptimizer, optional
        Whose per-parameter state (moments, velocities) and numbers (step count, rate) to save.
    **state
        Anything JSON can hold, returned by :func:`load_checkpoint`.

    Raises
    ------
    ValueError
        If a parameter is not initialised yet, or the optimizer holds state for a parameter
        that is not in ``model`` (on every process).
    TypeError
        If ``state`` holds something JSON cannot write (on every process).
    OSError
        If rank 0 cannot write the file (on every process).

    Examples
    --------
    A stand-in ``comm`` for one process (under ``mpiexec``, pass the communicator):

    >>> import agrad
    >>> from types import SimpleNamespace
    >>> from agrad.distributed import load_checkpoint, save_checkpoint
    >>> comm = SimpleNamespace(rank=0, size=1, barrier=lambda: None, bcast_obj=lambda o, root: o)
    >>> x = agrad.current_backend().asarray([[1.0, 2.0]])
    >>> model = agrad.models.MLP((3, 1))
    >>> _ = model(x)  # creates the lazily initialised weights
    >>> optimizer = agrad.optimizers.MomentumSGD().setup(model)
    >>> save_checkpoint("run.npz", comm, model, optimizer, epoch=3)
    >>> restored = agrad.models.MLP((3, 1))
    >>> load_checkpoint("run.npz", comm, restored, agrad.optimizers.MomentumSGD().setup(restored))
    {'epoch': 3}
    >>> bool(agrad.functions.sum((restored(x) - model(x)) ** 2).item() == 0)
    True
    """
    error = None
    if comm.rank == 0:
        try:
            _save_on_root(os.fspath(path), model, optimizer, state)
        except Exception as exc:  # every process must hear of it, not wait in a barrier
            error = (type(exc).__name__, str(exc))
    error = comm.bcast_obj(error, root=0)
    if error is not None:
        raise _rebuild(error, "rank 0")


def _save_on_root(path: str, model: Any, optimizer: Any, state: dict) -> None:
    named = named_params(model)
    names = {id(p): name for name, p in named}
    arrays = {}
    for name, param in named:
        if param.data is None:
            raise ValueError(
                f"save_checkpoint: parameter {name!r} is not initialised yet; run a forward "
                "pass first"
            )
        arrays[f"model/{name}"] = param.backend.to_host(param.data)
    scalars: dict[str, Any] = {}
    meta: dict[str, Any] = {"optimizer": scalars, "state": state}
    if optimizer is not None:
        actual = _unwrap(optimizer)
        opt_arrays, scalars = _optimizer_state(actual, names)
        arrays.update({f"optimizer/{k}": v for k, v in opt_arrays.items()})
        meta["optimizer"] = scalars
        meta["optimizer_class"] = type(actual).__name__
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"save_checkpoint: the extra state must be JSON values (numbers, strings, lists, "
            f"dicts): {exc}"
        ) from exc
    arrays["meta"] = host.asarray(text)
    _write_atomically(path, arrays)


# a save's temporary is ".<name>.agrad-<pid>-<random>.tmp", as save_weights names its own: the
# next save of the same file removes those whose process is gone (a save killed midway)
def _write_atomically(path: str, arrays: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    _remove_stale_temporaries(directory, name)
    fd, temp = tempfile.mkstemp(
        prefix=f".{name}.{_TEMP_TAG}{os.getpid()}-", suffix=".tmp", dir=directory
    )
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "wb") as f:
            host.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:  # KeyboardInterrupt included: never leave the temporary behind
        with contextlib.suppress(OSError):
            os.remove(temp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (a crash after it must not bring the old file back)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is done either way
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike, comm: Any, model: Any, optimizer: Any = None) -> dict:
    """Restore what ``save_checkpoint`` wrote on every process (rank 0 reads, then broadcasts);
    returns the extra ``state``.

    All or nothing, on every process alike: each checks the file against its model and
    optimizer (names, shapes, the optimizer's kind and settings) and converts every array before
    anything changes, then the processes compare notes; a problem on any of them (a damaged
    file on rank 0, a model that differs on rank 1) is raised on all of them as the same
    error, and no parameter or optimizer state has changed anywhere.

    Parameters keep their backend and dtype; ones not initialised yet are created on the
    default backend with the file's dtype. Arrays are cast as ``Layer.load_weights`` casts
    them: within a kind (float64 into float32), never complex into real or float into int,
    never a finite value into inf.

    Parameters
    ----------
    path : str or os.PathLike
        The file :func:`save_checkpoint` wrote (read by rank 0 only).
    comm : Communicator
        Gives ``rank``, ``size``, ``bcast_obj`` and (with several processes)
        ``allgather_obj``.
    model : Layer, Parameter or iterable of Parameter
        Built like the saved one.
    optimizer : Optimizer or MultiNodeOptimizer, optional
        Receives the saved optimizer state.

    Returns
    -------
    dict
        The ``**state`` given to :func:`save_checkpoint`.

    Raises
    ------
    OSError
        On every process, if rank 0 cannot open ``path`` (FileNotFoundError if it is missing).
    ValueError
        On every process, if the file is damaged or not a checkpoint, its parameters do not fit
        ``model`` (names and shapes, all listed), its optimizer state is of another optimizer
        class or does not fit ``optimizer``, or a value would overflow its parameter's dtype.
    TypeError
        On every process, if an array is not numeric or cannot be cast to its parameter's
        dtype (complex into real, float into int).

    Examples
    --------
    See :func:`save_checkpoint`; a model that does not fit is refused before anything changes:

    >>> import agrad
    >>> from types import SimpleNamespace
    >>> from agrad.distributed import load_checkpoint, save_checkpoint
    >>> comm = SimpleNamespace(rank=0, size=1, barrier=lambda: None, bcast_obj=lambda o, root: o)
    >>> model = agrad.models.MLP((3, 1))
    >>> _ = model(agrad.current_backend().asarray([[1.0, 2.0]]))
    >>> save_checkpoint("run.npz", comm, model)
    >>> load_checkpoint("run.npz", comm, agrad.models.MLP((4, 1)))
    Traceback (most recent call last):
    ...
    ValueError: load_checkpoint('run.npz') does not fit the model: ...
    """
    path = os.fspath(path)
    message = None
    if comm.rank == 0:
        try:
            message = ("ok", _read(path))
        except Exception as exc:  # every process raises it, none waits in a collective
            message = ("error", type(exc).__name__, str(exc))
    message = comm.bcast_obj(message, root=0)
    if message[0] == "error":
        raise _rebuild(message[1:], "")
    contents, meta = message[1]
    # every check and conversion first, on every process; then all agree; then assign
    try:
        assign = _prepare(path, contents, meta, model, optimizer)
        error = None
    except (TypeError, ValueError) as exc:
        assign, error = None, (type(exc).__name__, str(exc))
    if getattr(comm, "size", 1) > 1:
        everyone = comm.allgather_obj(error)
        failed = [(rank, e) for rank, e in enumerate(everyone) if e is not None]
        if failed:
            first = failed[0][1]
            if all(e == first for _, e in failed):
                where = "" if len(failed) == len(everyone) else f"rank {failed[0][0]}"
                if len(failed) > 1 and where:
                    where = "ranks " + ", ".join(str(r) for r, _ in failed)
                raise _rebuild(first, where)
            detail = "; ".join(f"rank {r}: {text}" for r, (_, text) in failed)
            raise ValueError(f"load_checkpoint({path!r}) failed on several processes: {detail}")
    elif error is not None:
        raise _rebuild(error, "")
    assign()
    if optimizer is not None and "needs_broadcast" in optimizer.__dict__:
        optimizer.__dict__["needs_broadcast"] = False  # every process has the same state now
    return meta["state"]


def _rebuild(error: tuple[str, str], where: str) -> Exception:
    """The same exception on every process from ``error`` = (type name, message): a built-in
    OSError, TypeError or ValueError keeps its type, anything else becomes a ValueError."""
    kind, text = error
    cls = getattr(builtins, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, (OSError, TypeError, ValueError))):
        cls, text = ValueError, f"{kind}: {text}"
    return cls(f"{text} (on {where})" if where else text)


_UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)


def _read(path: str) -> tuple[dict[str, Any], dict]:
    """The arrays and the metadata of the checkpoint at ``path``, or a named error."""
    try:
        file = open(path, "rb")  # noqa: SIM115 (closed below; only the open's errors differ)
    except OSError as exc:
        raise type(exc)(f"load_checkpoint: cannot read {path!r}: {exc}") from exc
    with file:
        try:
            loaded = host.load(file, allow_pickle=False)
            if not hasattr(loaded, "files"):
                raise ValueError("it holds a single array, not an .npz archive")
            with loaded as npz:
                contents = {key: npz[key] for key in npz.files}
        except _UNREADABLE as exc:
            raise ValueError(
                f"load_checkpoint: {path!r} is not a checkpoint written by save_checkpoint, or "
                f"it is damaged ({type(exc).__name__}: {exc})"
            ) from exc
    try:
        meta = json.loads(str(contents.pop("meta")))
        if not (isinstance(meta.get("optimizer"), dict) and isinstance(meta.get("state"), dict)):
            raise ValueError("its metadata lacks the optimizer or state entry")
    except (KeyError, ValueError, AttributeError) as exc:
        raise ValueError(
            f"load_checkpoint: {path!r} is not a checkpoint written by save_checkpoint "
            f"(no readable metadata: {type(exc).__name__}: {exc})"
        ) from exc
    return contents, meta


def _cast(path: str, key: str, array: Any, dtype_name: str | None) -> Any:
    """As ``load_weights`` casts: same kind only, no overflow to inf, numbers only."""
    return _cast_for_loading(f"load_checkpoint({path!r})", key, array, dtype_name)


def _prepare(path: str, contents: dict, meta: dict, model: Any, optimizer: Any) -> Any:
    """Check the file against ``model`` and ``optimizer`` and convert every array; returns a
    function that assigns them (and cannot fail). Raises, changing nothing, on any problem."""
    named = named_params(model)
    by_name = dict(named)
    saved = {k[len("model/") :]: v for k, v in contents.items() if k.startswith("model/")}
    problems = [f"missing from the file: {n}" for n, _ in named if n not in saved]
    problems += [f"not in the model: {n}" for n in saved if n not in by_name]
    problems += [
        f"{n}: file {tuple(saved[n].shape)}, model {tuple(p.data.shape)}"
        for n, p in named
        if n in saved and p.data is not None and tuple(saved[n].shape) != tuple(p.data.shape)
    ]
    if problems:
        raise ValueError(
            f"load_checkpoint({path!r}) does not fit the model: " + "; ".join(problems)
        )
    default = current_backend()
    params: list[tuple[Parameter, Any]] = []
    places = {}
    for name, param in named:
        if param.data is not None:
            backend, dtype = param.backend, param.backend.dtype_name(param.data.dtype)
        else:
            backend, dtype = default, None
        array = _cast(path, f"model/{name}", saved[name], dtype)
        places[name] = (backend, backend.dtype_name(array.dtype) if dtype is None else dtype)
        params.append((param, backend.asarray(array)))
    states: list[tuple[dict, Parameter, Any]] = []
    scalars: dict[str, Any] = {}
    if optimizer is not None:
        actual = _unwrap(optimizer)
        states, scalars = _prepare_optimizer(path, contents, meta, actual, by_name, places)

    def assign() -> None:
        for param, value in params:
            param.data = value
        if optimizer is not None:
            for store, param, value in states:
                store[param] = value
            for attribute, value in scalars.items():
                setattr(actual, attribute, value)

    return assign


def _prepare_optimizer(
    path: str, contents: dict, meta: dict, actual: Any, by_name: dict, places: dict
) -> tuple[list, dict]:
    own = vars(actual)
    kind = type(actual).__name__
    saved_kind = meta.get("optimizer_class")
    if saved_kind is not None and saved_kind != kind:
        raise ValueError(
            f"load_checkpoint({path!r}): the file holds the state of a {saved_kind} optimizer, "
            f"not of the {kind} given; pass a {saved_kind} (or optimizer=None for the model only)"
        )
    problems = []
    scalars = meta["optimizer"]
    for attribute, value in scalars.items():
        if attribute not in own or attribute in _SKIPPED:
            problems.append(f"{kind} has no setting {attribute!r}")
        elif not isinstance(value, (bool, int, float, str)) and value is not None:
            problems.append(f"{attribute!r} is {value!r}, not a number or string")
    states = []
    for key, array in contents.items():
        if not key.startswith("optimizer/"):
            continue
        attribute, _, name = key[len("optimizer/") :].partition("/")
        store = own.get(attribute)
        if not isinstance(store, dict) or attribute in _SKIPPED:
            problems.append(f"{kind} keeps no per-parameter state {attribute!r}")
            continue
        if name not in by_name:
            problems.append(f"state {attribute!r} of a parameter not in the model: {name}")
            continue
        backend, dtype = places[name]
        if tuple(array.shape) != tuple(contents[f"model/{name}"].shape):
            problems.append(
                f"state {attribute}/{name} has shape {tuple(array.shape)}, its parameter "
                f"{tuple(contents[f'model/{name}'].shape)}"
            )
            continue
        value = _cast(path, key, array, dtype)
        states.append((store, by_name[name], backend.asarray(value)))
    if problems:
        raise ValueError(
            f"load_checkpoint({path!r}): the optimizer state does not fit the {kind} given: "
            + "; ".join(problems)
        )
    return states, scalars
