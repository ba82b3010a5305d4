"""An optimizer wrapper that averages gradients across processes before each step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from agrad.distributed.communicator import Communicator


class MultiNodeOptimizer:
    """Wraps any agrad optimizer: the first ``update()`` broadcasts rank 0's parameters, every
    ``update()`` replaces the gradients by their mean over all processes, then the wrapped
    optimizer runs its hooks and steps. Other attributes pass through to the wrapped one.

    Made by :func:`create_multi_node_optimizer`, which takes the same parameters.

    Parameters
    ----------
    actual_optimizer : Optimizer
        The optimizer that steps (not set up yet: call this wrapper's ``setup``).
    communicator : Communicator
        The processes to average over.
    overlap : bool, default True
        Send gradient buckets during ``backward()`` (see :meth:`update`).

    Examples
    --------
    Setting an attribute sets it on the wrapped optimizer (a learning-rate schedule works
    unchanged); the stand-in ``comm`` is enough for that, ``setup`` and ``update`` need MPI:

    >>> import agrad
    >>> from types import SimpleNamespace
    >>> from agrad.distributed import MultiNodeOptimizer
    >>> sgd = agrad.optimizers.SGD(lr=0.1)
    >>> optimizer = MultiNodeOptimizer(sgd, SimpleNamespace(rank=0, size=1))
    >>> optimizer.lr = 0.05
    >>> sgd.lr, optimizer.actual_optimizer is sgd
    (0.05, True)
    """

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

        Parameters
        ----------
        target : Layer, Parameter or iterable of Parameter
            What to optimize, as for :meth:`agrad.optimizers.Optimizer.setup`.

        Returns
        -------
        MultiNodeOptimizer
            ``self``.

        Raises
        ------
        RuntimeError
            If the processes' models differ (names, shapes or dtypes of the parameters).

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            optimizer = create_multi_node_optimizer(agrad.optimizers.Adam(), comm)
            optimizer.setup(model)  # every process now holds rank 0's initial parameters
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

        Raises
        ------
        RuntimeError
            If ``setup`` was not called, a parameter is not initialised yet, or the processes'
            models differ.

        Examples
        --------
        Under ``mpiexec`` (not run here):

        .. code-block:: python

            model.cleargrads()
            loss.backward()
            optimizer.update()  # mean gradient over all processes, then the wrapped step
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
        backward passes, the last one outside the block (PyTorch DDP's ``no_sync``).

        Yields
        ------
        None

        Examples
        --------
        Under ``mpiexec`` (not run here), four micro-batches per step:

        .. code-block:: python

            model.cleargrads()
            with optimizer.no_sync():
                for x, t in micro_batches[:-1]:
                    F.softmax_cross_entropy(model(x), t).backward()
            x, t = micro_batches[-1]
            F.softmax_cross_entropy(model(x), t).backward()  # sends the summed gradients
            optimizer.update()
        """
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
    ``overlap`` sends gradient buckets during backward (see ``MultiNodeOptimizer.update``).

    Parameters
    ----------
    actual_optimizer : Optimizer
        Any agrad optimizer, not set up yet.
    communicator : Communicator
        From :func:`create_communicator`.
    overlap : bool, default True
        Send gradient buckets during ``backward()`` rather than all in ``update()``.

    Returns
    -------
    MultiNodeOptimizer
        Call its ``setup(model)``, then use it as the wrapped optimizer.

    Examples
    --------
    Under ``mpiexec`` (not run here):

    .. code-block:: python

        comm = agrad.distributed.create_communicator("mpi")
        optimizer = create_multi_node_optimizer(agrad.optimizers.Adam(), comm).setup(model)

    Attributes pass through to the wrapped optimizer (a stand-in ``comm`` suffices for that):

    >>> import agrad
    >>> from types import SimpleNamespace
    >>> from agrad.distributed import create_multi_node_optimizer
    >>> comm = SimpleNamespace(rank=0, size=1)
    >>> optimizer = create_multi_node_optimizer(agrad.optimizers.MomentumSGD(lr=0.1), comm)
    >>> optimizer.lr, optimizer.momentum
    (0.1, 0.9)
    """
    return MultiNodeOptimizer(actual_optimizer, communicator, overlap)
