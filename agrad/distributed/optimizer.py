"""An optimizer wrapper that averages gradients across processes before each step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from agrad.distributed.communicator import Communicator


class MultiNodeOptimizer:
    """Wraps any agrad optimizer: the first ``update()`` broadcasts rank 0's parameters, every
    ``update()`` replaces the gradients by their mean over all processes, then the wrapped
    optimizer runs its hooks and steps. Other attributes pass through to the wrapped one."""

    def __init__(
        self, actual_optimizer: Any, communicator: Communicator, overlap: bool = True
    ) -> None:
        self.__dict__["actual_optimizer"] = actual_optimizer
        self.__dict__["communicator"] = communicator
        self.__dict__["needs_broadcast"] = True
        self.__dict__["overlap"] = overlap

    def setup(self, target: Any) -> MultiNodeOptimizer:
        """Optimize ``target``'s parameters; returns this wrapper.

        Parameters that exist already are broadcast from rank 0 now; lazily created ones (a
        ``Linear`` without ``in_size``) at the first ``update()``, whose gradients were then
        computed from each process's own initial values: seed every process alike
        (``agrad.seed``) or call ``comm.bcast_data(model)`` after a first forward pass.
        """
        self.actual_optimizer.setup(target)
        params = list(target.params()) if hasattr(target, "params") else list(target)
        initialised = all(p.data is not None for p in params)
        if initialised:
            self.communicator.bcast_data(target)
        self.__dict__["needs_broadcast"] = not initialised
        return self

    def update(self) -> None:
        """Synchronise parameters (first call) and gradients, then step.

        With ``overlap`` (the default) the gradient buckets of the next steps are sent during
        ``backward()``, each as soon as its gradients are final (from the second update on:
        the first one builds the buffers); the rest is sent here.
        """
        target = self.actual_optimizer.target
        if target is None:
            raise RuntimeError("MultiNodeOptimizer.update(): call setup(model) first")
        if self.needs_broadcast:
            self.communicator.bcast_data(target)
            self.__dict__["needs_broadcast"] = False
        exchange = self.communicator.grad_exchange(target)
        self.__dict__["_exchange"] = exchange
        exchange.finish()
        if self.overlap and not exchange.armed:
            exchange.arm()
        self.actual_optimizer.update()

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Within this block backward() sends nothing: accumulate gradients over several
        backward passes, the last one outside the block (PyTorch DDP's ``no_sync``)."""
        exchange = self.__dict__.get("_exchange")
        previous = exchange.paused if exchange is not None else False
        if exchange is not None:
            exchange.paused = True
        try:
            yield
        finally:
            if exchange is not None:
                exchange.paused = previous

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["actual_optimizer"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.actual_optimizer, name, value)


def create_multi_node_optimizer(
    actual_optimizer: Any, communicator: Communicator, overlap: bool = True
) -> Any:
    """Wrap ``actual_optimizer`` so that it trains data-parallel over ``communicator``;
    ``overlap`` sends gradient buckets during backward (see ``MultiNodeOptimizer.update``)."""
    return MultiNodeOptimizer(actual_optimizer, communicator, overlap)
