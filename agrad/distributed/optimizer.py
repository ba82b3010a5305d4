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
        self._step(joined=False)

    def _step(self, joined: bool) -> bool:
        """One update; ``joined``: this process has no data left and shadows the others (its
        gradients count as absent). Returns False, having done nothing, once every process has
        joined. Every process issues the same collectives in the same order either way."""
        target = self.actual_optimizer.target
        if target is None:
            raise RuntimeError("MultiNodeOptimizer.update(): call setup(model) first")
        joining = self.__dict__.get("_joining", False)
        active = self.communicator.size
        if joining:  # how many processes still have data: they share the mean
            active = self.communicator.allreduce_obj(0 if joined else 1)
            if active == 0:
                return False
        if self.needs_broadcast:
            self.communicator.bcast_data(target)
            self.__dict__["needs_broadcast"] = False
        exchange = self.communicator.grad_exchange(target)
        self.__dict__["_exchange"] = exchange
        if joined:
            for param in exchange.params:
                param.grad = None  # contributes zeros, and a "no gradient" flag
        exchange.inverse_size = 1.0 / active
        try:
            exchange.finish()
        finally:
            exchange.inverse_size = 1.0 / self.communicator.size
        if self.overlap and not exchange.armed and not joining:
            exchange.arm()
        # every process steps with the same mean gradients, so the joined ones stay in step
        self.actual_optimizer.update()
        return True

    @contextlib.contextmanager
    def join(self) -> Iterator[None]:
        """Train on uneven data (PyTorch DDP's ``join``): a process that leaves this block
        before the others (its data ran out) keeps taking part in their updates, contributing
        no gradient, until every process has left it.

        Each ``update()`` inside the block averages the gradients over the processes that still
        have data (a process done contributes zeros and is not counted) and every process,
        done or not, takes the same step, so the parameters stay identical everywhere. Enter
        the block on every process at the same point; inside it, only the optimizer's own
        collectives are shadowed (a ``comm.allreduce`` for logging, or an evaluator, must not
        be called by some processes only). Costs one small extra collective per update;
        gradient buckets are not sent during backward inside the block.

        Yields
        ------
        None

        Raises
        ------
        RuntimeError
            If ``setup`` was not called, or blocks are nested.

        Examples
        --------
        Under ``mpiexec`` (not run here), shards of different lengths:

        .. code-block:: python

            with optimizer.join():
                for x, t in agrad.DataLoader(my_uneven_shard, batch_size=32):
                    loss = F.softmax_cross_entropy(model(x), t)
                    model.cleargrads()
                    loss.backward()
                    optimizer.update()
            # every process gets here, with the same parameters

        Outside MPI (a stand-in communicator of one process) the block is transparent:

        >>> import agrad
        >>> from types import SimpleNamespace
        >>> from agrad.distributed import create_multi_node_optimizer
        >>> comm = SimpleNamespace(rank=0, size=1, allreduce_obj=lambda n: n)
        >>> optimizer = create_multi_node_optimizer(agrad.optimizers.SGD(), comm)
        >>> with optimizer.join():
        ...     pass
        """
        if self.__dict__.get("_joining", False):
            raise RuntimeError("MultiNodeOptimizer.join(): blocks cannot be nested")
        exchange = self.__dict__.get("_exchange")
        if exchange is not None:  # buckets sent from backward would not be mirrored
            exchange.disarm()
        self.__dict__["_joining"] = True
        try:
            yield
        except BaseException:
            self.__dict__["_joining"] = False
            raise
        try:
            if self.communicator.size > 1:
                if self.actual_optimizer.target is None:
                    raise RuntimeError("MultiNodeOptimizer.join(): call setup(model) first")
                while self._step(joined=True):
                    pass
        finally:
            self.__dict__["_joining"] = False

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
