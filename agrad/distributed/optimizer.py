"""An optimizer wrapper that averages gradients across processes before each step."""

from __future__ import annotations

from typing import Any

from agrad.distributed.communicator import Communicator


class MultiNodeOptimizer:
    """Wraps any agrad optimizer: the first ``update()`` broadcasts rank 0's parameters, every
    ``update()`` replaces the gradients by their mean over all processes, then the wrapped
    optimizer runs its hooks and steps. Other attributes pass through to the wrapped one."""

    def __init__(self, actual_optimizer: Any, communicator: Communicator) -> None:
        self.__dict__["actual_optimizer"] = actual_optimizer
        self.__dict__["communicator"] = communicator
        self.__dict__["needs_broadcast"] = True

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
        """Synchronise parameters (first call) and gradients, then step."""
        target = self.actual_optimizer.target
        if target is None:
            raise RuntimeError("MultiNodeOptimizer.update(): call setup(model) first")
        if self.needs_broadcast:
            self.communicator.bcast_data(target)
            self.__dict__["needs_broadcast"] = False
        self.communicator.allreduce_grad(target)
        self.actual_optimizer.update()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["actual_optimizer"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.actual_optimizer, name, value)


def create_multi_node_optimizer(actual_optimizer: Any, communicator: Communicator) -> Any:
    """Wrap ``actual_optimizer`` so that it trains data-parallel over ``communicator``."""
    return MultiNodeOptimizer(actual_optimizer, communicator)
