"""Mini-batch iterators (DeZero's ``dataloaders``): ``DataLoader`` and ``SeqDataLoader``.

Batches are built on the host and delivered as arrays of the *current* backend
(``agrad.use(...)``), or of the one chosen with ``gpu=True`` / ``to_gpu()`` / ``to(name)``.
Shuffling draws from NumPy's global RNG, as DeZero does, so ``agrad.seed(n)`` repeats it.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from agrad.backends import Backend, backend_of, current_backend, get_backend
from agrad.backends.numpy import host
from agrad.config import _active_trace
from agrad.datasets import Dataset, _identity

__all__ = ["DataLoader", "SeqDataLoader"]


def _stack(items: list[Any], backend: Backend) -> Any:
    """One array of ``backend`` from a list of per-item arrays or numbers."""
    if all(item is None for item in items):
        return None
    first = backend_of(items[0], None)
    if first is None or first.name == "numpy":
        # host data: stack once on the host, then one transfer
        stacked = host.stack([host.asarray(item) for item in items])
    else:
        stacked = first.xp.stack(items)
    return backend.asarray(stacked)


def _check_batch_size(owner: str, batch_size: Any) -> int:
    """``batch_size`` as a positive int, else an error naming it."""
    if isinstance(batch_size, bool):
        raise TypeError(f"{owner}: batch_size must be a positive int, not {batch_size!r}")
    try:
        size = operator.index(batch_size)
    except TypeError:
        raise TypeError(f"{owner}: batch_size must be a positive int, not {batch_size!r}") from None
    if size < 1:
        raise ValueError(f"{owner}: batch_size must be a positive int (>= 1), got {size}")
    return size


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` (the last one may be shorter).

    Like DeZero's, the loader is its own iterator: when a pass ends it reshuffles (if
    ``shuffle``) and raises ``StopIteration``, so ``for x, t in loader`` works once per epoch.
    ``gpu=True`` (or ``backend='cupy'``) delivers CuPy arrays; by default batches are made on
    the current backend at the time they are drawn.

    Parameters
    ----------
    dataset : Dataset or sequence of (data, label)
        Anything with ``len`` and integer indexing that gives ``(data, label)`` pairs.
    batch_size : int
        Items per batch.
    shuffle : bool, default True
        Visit the items in a new random order at each pass.
    gpu : bool, default False
        Deliver CuPy arrays (the same as ``to_gpu()``).
    backend : str, Backend or None, default None
        Deliver on this backend; None follows the current backend.

    Raises
    ------
    TypeError, ValueError
        If ``batch_size`` is not an int >= 1.
    agrad.BackendUnavailableError
        If ``gpu`` or ``backend`` asks for a backend that cannot run here.

    Examples
    --------
    >>> import agrad
    >>> from agrad.dataloaders import DataLoader
    >>> loader = DataLoader(agrad.datasets.Spiral(), batch_size=32)
    >>> len(loader)  # batches per pass: 300 items, the last batch has 12
    10
    >>> x, t = next(loader)
    >>> x.shape, t.shape
    ((32, 2), (32,))
    >>> for x, t in loader:  # the rest of the pass; then the loader starts a new one
    ...     pass
    >>> x.shape, loader.iteration
    ((12, 2), 0)
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        shuffle: bool = True,
        gpu: bool = False,
        backend: str | Backend | None = None,
    ) -> None:
        self.dataset = dataset
        self.batch_size = _check_batch_size(type(self).__name__, batch_size)
        self.shuffle = shuffle
        self.data_size = len(dataset)
        self.max_iter = math.ceil(self.data_size / batch_size)
        self._backend: Backend | None = None
        if gpu:
            self.to_gpu()
        elif backend is not None:
            self.to(backend)
        self.reset()

    # -- where batches go ---------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The backend batches are delivered on.

        Returns
        -------
        Backend
            The one chosen with ``to``, else the current backend at the time of reading.

        Examples
        --------
        >>> import agrad
        >>> loader = agrad.DataLoader(agrad.datasets.Spiral(), batch_size=10)
        >>> loader.backend is agrad.current_backend()
        True
        """
        return self._backend if self._backend is not None else current_backend()

    @property
    def gpu(self) -> bool:
        """Whether batches go to the GPU (DeZero's flag).

        Returns
        -------
        bool
            True when :attr:`backend` is a GPU backend (CuPy).

        Examples
        --------
        >>> import agrad
        >>> agrad.DataLoader(agrad.datasets.Spiral(), batch_size=10).to_cpu().gpu
        False
        """
        return self.backend.gpu

    def to(self, backend: str | Backend) -> DataLoader:
        """Deliver batches on ``backend`` from now on.

        Parameters
        ----------
        backend : str or Backend
            A backend's name (``"numpy"``, ``"cupy"``, ``"torch"``, ...) or a backend object.

        Returns
        -------
        DataLoader
            ``self``.

        Raises
        ------
        ValueError
            If ``backend`` names no backend.
        agrad.BackendUnavailableError
            If the backend cannot run here.

        Examples
        --------
        >>> import agrad
        >>> loader = agrad.DataLoader(agrad.datasets.Spiral(), batch_size=10)
        >>> loader.to("array_api_strict").backend.name
        'array_api_strict'
        """
        target = get_backend(backend)
        target.require()
        self._backend = target
        return self

    def to_cpu(self) -> DataLoader:
        """Deliver NumPy batches.

        Returns
        -------
        DataLoader
            ``self``.

        Examples
        --------
        >>> import agrad
        >>> agrad.DataLoader(agrad.datasets.Spiral(), batch_size=10).to_cpu().backend.name
        'numpy'
        """
        return self.to("numpy")

    def to_gpu(self) -> DataLoader:
        """Deliver CuPy batches (``BackendUnavailableError`` without a CUDA device).

        Returns
        -------
        DataLoader
            ``self``.

        Raises
        ------
        agrad.BackendUnavailableError
            If CuPy or a CUDA device is not available.

        Examples
        --------
        >>> import agrad
        >>> loader = agrad.DataLoader(agrad.datasets.Spiral(), batch_size=10)
        >>> if agrad.cuda.gpu_enable:
        ...     loader = loader.to_gpu()
        """
        return self.to("cupy")

    # -- iteration ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new pass (reshuffled if ``shuffle``).

        Examples
        --------
        >>> import agrad
        >>> loader = agrad.DataLoader(agrad.datasets.Spiral(), batch_size=10)
        >>> _ = next(loader)
        >>> loader.reset()
        >>> loader.iteration
        0
        """
        self.iteration = 0
        if self.shuffle:
            self.index = host.random.permutation(self.data_size)
        else:
            self.index = host.arange(self.data_size)

    def __iter__(self) -> DataLoader:
        return self

    def __len__(self) -> int:
        return self.max_iter

    def _batch_index(self) -> Any:
        i, size = self.iteration, self.batch_size
        return self.index[i * size : (i + 1) * size]

    def __next__(self) -> tuple[Any, Any]:
        if _active_trace.get() is not None:
            _refuse_in_trace()
        if self.iteration >= self.max_iter:
            self.reset()
            raise StopIteration
        batch_index = self._batch_index()
        x, t = self._gather(batch_index)
        self.iteration += 1
        return x, t

    def _gather(self, batch_index: Any) -> tuple[Any, Any]:
        backend = self.backend
        dataset = self.dataset
        if _plain_host_dataset(dataset):
            # nothing to apply per item: slice the whole batch at once
            index = host.asarray(batch_index)
            x = backend.asarray(dataset.data[index])
            t = None if dataset.label is None else backend.asarray(dataset.label[index])
            return x, t
        batch = [dataset[int(i)] for i in batch_index]
        return _stack([b[0] for b in batch], backend), _stack([b[1] for b in batch], backend)

    def next(self) -> tuple[Any, Any]:
        """``next(loader)``, DeZero's spelling.

        Returns
        -------
        (array, array or None)
            The batch's data and labels (None for a data set without labels).

        Raises
        ------
        StopIteration
            At the end of a pass (the loader is reset first).

        Examples
        --------
        >>> import agrad
        >>> x, t = agrad.DataLoader(agrad.datasets.Spiral(), batch_size=10).next()
        >>> x.shape
        (10, 2)
        """
        return self.__next__()


def _refuse_in_trace() -> None:
    from agrad.tracing.tracer import refusal

    # the batches would be constants of the program: every replay would train on the
    # trace's batches, in the trace's shuffled order
    raise refusal(
        "a DataLoader was iterated",
        "a replay would reuse the batches the trace read. Iterate the loader outside and pass "
        "each batch to the jitted step as arguments: `for x, t in loader: step(x, t)`",
    )


def _plain_host_dataset(dataset: Any) -> bool:
    return (
        isinstance(dataset, Dataset)
        and type(dataset).__getitem__ is Dataset.__getitem__
        and dataset.transform is _identity
        and dataset.target_transform is _identity
        and isinstance(dataset.data, host.ndarray)
        and (dataset.label is None or isinstance(dataset.label, host.ndarray))
    )


class SeqDataLoader(DataLoader):
    """Batches for truncated backprop through time: ``batch_size`` parallel streams through the
    data in order; item ``k`` of batch ``i`` is ``(k * jump + i) % len`` with
    ``jump = len // batch_size``.

    Parameters
    ----------
    dataset : Dataset or sequence of (data, label)
        Read in order, never shuffled.
    batch_size : int
        Parallel streams (items per batch); at most ``len(dataset)``.
    gpu : bool, default False
        Deliver CuPy arrays.
    backend : str, Backend or None, default None
        Deliver on this backend; None follows the current backend.

    Raises
    ------
    TypeError, ValueError
        If ``batch_size`` is not an int >= 1; ``ValueError`` if it exceeds ``len(dataset)``.
    agrad.BackendUnavailableError
        If ``gpu`` or ``backend`` asks for a backend that cannot run here.

    Examples
    --------
    >>> import agrad
    >>> loader = agrad.dataloaders.SeqDataLoader(agrad.datasets.SinCurve(), batch_size=3)
    >>> x, t = next(loader)  # items 0, 333 and 666
    >>> x.shape, t.shape
    ((3, 1), (3, 1))
    >>> x2, _ = next(loader)  # items 1, 334 and 667: each stream moved on by one
    >>> bool(x2[0, 0] == t[0, 0])
    True
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        gpu: bool = False,
        backend: str | Backend | None = None,
    ) -> None:
        super().__init__(dataset, batch_size, shuffle=False, gpu=gpu, backend=backend)
        if self.batch_size > self.data_size:
            # jump would be 0: every stream would read the same item
            raise ValueError(
                f"SeqDataLoader: batch_size={self.batch_size} is larger than the dataset "
                f"({self.data_size} items); each of the batch_size streams needs its own items"
            )

    def _batch_index(self) -> Any:
        jump = self.data_size // self.batch_size
        return [(k * jump + self.iteration) % self.data_size for k in range(self.batch_size)]
