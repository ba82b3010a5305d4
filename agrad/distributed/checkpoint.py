"""Checkpoint and resume of a data-parallel run: rank 0 writes, every process resumes.

After ``allreduce_grad`` every process holds the same parameters and optimizer state, so one
copy is enough: rank 0 writes it (beside the target, then renamed over it) and every process
waits until the file is complete. ``load_checkpoint`` reads it on rank 0 and broadcasts it, so
the other processes need not see the same file system.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from agrad.backends import current_backend
from agrad.backends.numpy import host
from agrad.core import Parameter
from agrad.distributed.exchange import named_params

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

    The file is written beside ``path`` and renamed over it, so a crash never leaves half a
    checkpoint.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (rank 0's file system).
    comm : Communicator
        Gives ``rank`` and ``barrier``.
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
        that is not in ``model``.
    TypeError
        If ``state`` holds something JSON cannot write.

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
    if comm.rank == 0:
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
        if optimizer is not None:
            opt_arrays, scalars = _optimizer_state(_unwrap(optimizer), names)
            arrays.update({f"optimizer/{k}": v for k, v in opt_arrays.items()})
        meta = {"optimizer": scalars, "state": state}
        arrays["meta"] = host.asarray(json.dumps(meta))
        _write_atomically(os.fspath(path), arrays)
    comm.barrier()


def _write_atomically(path: str, arrays: dict[str, Any]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            host.savez(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # as an ordinary open() would create it
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def load_checkpoint(path: str | os.PathLike, comm: Any, model: Any, optimizer: Any = None) -> dict:
    """Restore what ``save_checkpoint`` wrote on every process (rank 0 reads, then broadcasts);
    returns the extra ``state``. Names and shapes are checked before anything changes.

    Parameters keep their backend and dtype; ones not initialised yet are created on the
    default backend with the file's dtype.

    Parameters
    ----------
    path : str or os.PathLike
        The file :func:`save_checkpoint` wrote (read by rank 0 only).
    comm : Communicator
        Gives ``rank`` and ``bcast_obj``.
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
        On every process, if rank 0 cannot read ``path``.
    ValueError
        If the file's parameters do not fit ``model`` (names and shapes, all listed).

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
    contents = None
    error = None
    if comm.rank == 0:
        try:
            with host.load(os.fspath(path), allow_pickle=False) as npz:
                contents = {key: npz[key] for key in npz.files}
        except (OSError, ValueError) as exc:
            error = f"load_checkpoint: cannot read {os.fspath(path)!r}: {exc}"
    error = comm.bcast_obj(error, root=0)
    if error is not None:
        raise OSError(error)
    contents = comm.bcast_obj(contents, root=0)
    meta = json.loads(str(contents.pop("meta")))
    named = named_params(model)
    saved = {k[len("model/") :]: v for k, v in contents.items() if k.startswith("model/")}
    problems = [f"missing from the file: {n}" for n, _ in named if n not in saved]
    problems += [f"not in the model: {n}" for n in saved if n not in dict(named)]
    problems += [
        f"{n}: file {tuple(saved[n].shape)}, model {tuple(p.data.shape)}"
        for n, p in named
        if n in saved and p.data is not None and tuple(saved[n].shape) != tuple(p.data.shape)
    ]
    if problems:
        raise ValueError(
            f"load_checkpoint({os.fspath(path)!r}) does not fit the model: " + "; ".join(problems)
        )
    default = current_backend()
    for name, param in named:
        backend = param.backend if param.data is not None else default
        dtype = param.backend.dtype_name(param.data.dtype) if param.data is not None else None
        param.data = backend.asarray(saved[name], dtype=dtype)
    if optimizer is not None:
        actual = _unwrap(optimizer)
        by_name = dict(named)
        for key, array in contents.items():
            if not key.startswith("optimizer/"):
                continue
            attribute, name = key[len("optimizer/") :].split("/", 1)
            param = by_name[name]
            store = getattr(actual, attribute)
            dtype = param.backend.dtype_name(param.data.dtype)
            store[param] = param.backend.asarray(array, dtype=dtype)
        for attribute, value in meta["optimizer"].items():
            setattr(actual, attribute, value)
        if "needs_broadcast" in optimizer.__dict__:  # every process has the same state now
            optimizer.__dict__["needs_broadcast"] = False
    return meta["state"]
