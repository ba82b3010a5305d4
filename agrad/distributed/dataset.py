"""Splitting a data set into one disjoint, equal-sized shard per process."""

from __future__ import annotations

from typing import Any

from agrad.backends.numpy import host
from agrad.datasets import Dataset, _identity


class SubDataset(Dataset):
    """The items ``order[start:stop]`` of ``dataset``, indexable like it.

    When ``dataset`` keeps its items in host arrays (``data``/``label``, as the built-in data sets
    do), the shard keeps sliced copies with the same transforms, so a ``DataLoader`` can still
    gather a whole batch at once. Made by :func:`scatter_dataset`.

    Parameters
    ----------
    dataset : Dataset or sequence
        Anything with ``len`` and integer indexing.
    order : sequence of int
        Indices into ``dataset``.
    start, stop : int
        The slice of ``order`` this shard holds.

    Examples
    --------
    >>> import agrad
    >>> from agrad.distributed import SubDataset
    >>> shard = SubDataset(agrad.datasets.Spiral(), order=range(300), start=100, stop=150)
    >>> len(shard), shard.data.shape
    (50, (50, 2))
    >>> x, t = shard[0]
    """

    def __init__(self, dataset: Any, order: Any, start: int, stop: int) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in order[start:stop]]
        self.train = getattr(dataset, "train", True)
        self.transform = getattr(dataset, "transform", _identity)
        self.target_transform = getattr(dataset, "target_transform", _identity)
        data, label = getattr(dataset, "data", None), getattr(dataset, "label", None)
        if isinstance(data, host.ndarray) and (label is None or isinstance(label, host.ndarray)):
            picked = host.asarray(self.indices, dtype=host.intp)
            self.data = data[picked]
            self.label = None if label is None else label[picked]
        else:
            self.data = self.label = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        if self.data is not None:
            return super().__getitem__(index)
        return self.dataset[self.indices[index]]


def scatter_dataset(
    dataset: Any,
    comm: Any,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> SubDataset:
    """This process's shard of ``dataset``; the shards are equal in length and together hold
    every item.

    When ``len(dataset)`` is not a multiple of ``comm.size`` the last shards are padded with the
    first items of the order (ChainerMN's way: a few items count twice per epoch); with
    ``drop_remainder=True`` the remainder is left out instead (``len // size`` items each, all
    distinct). With ``shuffle`` the items are permuted first, the same way on every process
    (rank 0 draws the order from ``seed`` and broadcasts it).

    Parameters
    ----------
    dataset : Dataset or sequence
        Anything with ``len`` and integer indexing.
    comm : Communicator
        Gives ``rank`` and ``size`` (and ``bcast_obj`` with ``shuffle``).
    shuffle : bool, default False
        Permute the items before cutting them into shards.
    seed : int, optional
        The permutation's seed (rank 0's counts); None draws a fresh one.
    drop_remainder : bool, default False
        Leave the last ``len % size`` items out instead of padding.

    Returns
    -------
    SubDataset
        This process's items.

    Raises
    ------
    ValueError
        If ``dataset`` is empty, or ``drop_remainder`` leaves no item for a process.

    Examples
    --------
    Ten items over four processes; each stand-in ``comm`` plays one of them:

    >>> from types import SimpleNamespace
    >>> from agrad.distributed import scatter_dataset
    >>> items = list(range(10))
    >>> [list(scatter_dataset(items, SimpleNamespace(rank=r, size=4))) for r in range(4)]
    [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 1]]
    >>> comms = [SimpleNamespace(rank=r, size=4) for r in range(4)]
    >>> [list(scatter_dataset(items, c, drop_remainder=True)) for c in comms]
    [[0, 1], [2, 3], [4, 5], [6, 7]]
    """
    n = len(dataset)
    if n == 0:
        raise ValueError("scatter_dataset: the dataset is empty")
    if shuffle:
        order = host.random.RandomState(seed).permutation(n) if comm.rank == 0 else None
        order = comm.bcast_obj(order, root=0)
    else:
        order = host.arange(n)
    if drop_remainder:
        per_process = n // comm.size
        if per_process == 0:
            raise ValueError(
                f"scatter_dataset: {n} items cannot be shared by {comm.size} processes with "
                "drop_remainder=True (each would get none); pass drop_remainder=False to pad"
            )
    else:
        per_process = -(-n // comm.size)
        missing = per_process * comm.size - n
        if missing:
            order = host.resize(order, per_process * comm.size)  # repeats from the start
    start = comm.rank * per_process
    return SubDataset(dataset, order, start, start + per_process)
