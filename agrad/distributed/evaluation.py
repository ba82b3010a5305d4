"""Evaluation over every process's shard: metrics averaged across processes (ChainerMN's
``create_multi_node_evaluator``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from agrad.backends import backend_of
from agrad.core import Variable

SYNC_MODES = ("allreduce", "bcast", None)


def _to_float(name: str, value: Any) -> float:
    data = value.data if isinstance(value, Variable) else value
    if isinstance(data, (int, float)):
        return float(data)
    backend = backend_of(data, None)
    if backend is None or math.prod(data.shape) != 1:  # torch tensors: .size is a method
        raise TypeError(
            f"multi-node evaluator: metric {name!r} must be a number or a one-element "
            f"array/Variable, not {type(value).__name__}"
            + (f" of shape {tuple(data.shape)}" if hasattr(data, "shape") else "")
        )
    return float(backend.to_host(data).reshape(()))


class MultiNodeEvaluator:
    """Runs ``evaluate(*args, **kwargs)`` (which returns a dict of metrics computed on this
    process's shard) on every process and returns the metrics averaged over the processes.

    With ``model``, BatchNorm running statistics are first made equal on every process:
    averaged (``batch_norm='allreduce'``, ChainerMN's AllreducePersistent) or rank 0's
    (``'bcast'``); ``None`` leaves them as they are. Made by
    :func:`create_multi_node_evaluator`, which takes the same parameters.

    Parameters
    ----------
    evaluate : callable
        Returns a dict of metrics: numbers, or one-element arrays or Variables.
    comm : Communicator
        The processes to average over.
    model : Layer, optional
        Whose BatchNorm statistics to synchronise first.
    batch_norm : {"allreduce", "bcast", None}, default "allreduce"
        How to synchronise them.

    Raises
    ------
    ValueError
        If ``batch_norm`` is not one of those.
    TypeError
        When called, if ``evaluate`` returns something other than a dict, or a metric that is
        not a number or one-element array.
    RuntimeError
        When called, if the processes report different metric names.

    Examples
    --------
    See :func:`create_multi_node_evaluator`.

    >>> from types import SimpleNamespace
    >>> from agrad.distributed import MultiNodeEvaluator
    >>> comm = SimpleNamespace(allgather_obj=lambda mine: [mine])  # one process
    >>> MultiNodeEvaluator(lambda: {"accuracy": 0.75}, comm)()
    {'accuracy': 0.75}
    """

    def __init__(
        self,
        evaluate: Callable[..., dict[str, Any]],
        comm: Any,
        model: Any = None,
        batch_norm: str | None = "allreduce",
    ) -> None:
        if batch_norm not in SYNC_MODES:
            raise ValueError(f"batch_norm must be 'allreduce', 'bcast' or None, not {batch_norm!r}")
        self.evaluate = evaluate
        self.comm = comm
        self.model = model
        self.batch_norm = batch_norm

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        if self.model is not None and self.batch_norm == "allreduce":
            self.comm.allreduce_persistent(self.model)
        elif self.model is not None and self.batch_norm == "bcast":
            self.comm.bcast_persistent(self.model)
        metrics = self.evaluate(*args, **kwargs)
        if not isinstance(metrics, dict):
            raise TypeError(
                "multi-node evaluator: evaluate() must return a dict of metrics, "
                f"not {type(metrics).__name__}"
            )
        local = {str(k): _to_float(str(k), v) for k, v in metrics.items()}
        everyone = self.comm.allgather_obj(local)
        for rank, theirs in enumerate(everyone):
            if sorted(theirs) != sorted(everyone[0]):
                raise RuntimeError(
                    f"multi-node evaluator: rank 0 reports {sorted(everyone[0])}, rank {rank} "
                    f"reports {sorted(theirs)}; every process must report the same metrics"
                )
        return {k: sum(m[k] for m in everyone) / len(everyone) for k in everyone[0]}


def create_multi_node_evaluator(
    evaluate: Callable[..., dict[str, Any]],
    comm: Any,
    model: Any = None,
    batch_norm: str | None = "allreduce",
) -> MultiNodeEvaluator:
    """Wrap ``evaluate`` so that it returns metrics averaged over all processes.

    Parameters
    ----------
    evaluate : callable
        Computes this process's metrics on its shard; returns a dict of numbers, or
        one-element arrays or Variables.
    comm : Communicator
        The processes to average over.
    model : Layer, optional
        Whose BatchNorm running statistics are synchronised before each evaluation.
    batch_norm : {"allreduce", "bcast", None}, default "allreduce"
        Average them, take rank 0's, or leave them.

    Returns
    -------
    MultiNodeEvaluator
        Callable with ``evaluate``'s arguments; returns a dict of floats, the same on every
        process.

    Raises
    ------
    ValueError
        If ``batch_norm`` is not one of those.

    Examples
    --------
    A stand-in ``comm`` plays two processes: rank 1 reports a loss of 0.5.

    >>> import agrad
    >>> import agrad.functions as F
    >>> from types import SimpleNamespace
    >>> from agrad.distributed import create_multi_node_evaluator
    >>> comm = SimpleNamespace(allgather_obj=lambda mine: [mine, {"loss": 0.5}])
    >>> def evaluate(x):
    ...     return {"loss": F.mean(x)}
    >>> evaluator = create_multi_node_evaluator(evaluate, comm)
    >>> x = agrad.Variable(agrad.current_backend().asarray([1.0, 2.0]))
    >>> evaluator(x)
    {'loss': 1.0}
    """
    return MultiNodeEvaluator(evaluate, comm, model, batch_norm)
