"""Checks of ``axis`` arguments shared by the shape functions and the reductions.

Python's ``%`` would wrap an axis that is out of range (``expand_dims(x, 5)`` on a 2-D array
would land on axis 2), so every axis is checked against the array's dimensions first and a bad
one gets an error naming the function, the argument, its value and the allowed range.
"""

from __future__ import annotations

import operator
from typing import Any


def size_of(x: Any) -> int:
    """The number of elements of an array or Variable (``x.size`` is a method on torch tensors)."""
    size = 1
    for n in x.shape:
        size *= n
    return size


class AxisError(ValueError, IndexError):
    """An axis outside the array's dimensions (a ValueError and an IndexError, as NumPy's).

    Raised by the functions that take an ``axis`` (``sum``, ``transpose``, ``expand_dims``,
    ``concat``, ...); the message names the function, the argument, its value and the allowed
    range. ``except ValueError`` and ``except IndexError`` both catch it.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.current_backend().xp.ones((2, 3))
    >>> try:
    ...     F.expand_dims(x, 5)
    ... except F.AxisError as error:
    ...     print(error)
    expand_dims: axis=5 is out of range for an array of 3 dimensions (allowed: -3 <= axis < 3)
    >>> issubclass(F.AxisError, ValueError) and issubclass(F.AxisError, IndexError)
    True
    """


def check_axis(func: str, axis: Any, ndim: int, name: str = "axis") -> int:
    """``axis`` as a non-negative int for an array of ``ndim`` dimensions (-ndim <= axis < ndim)."""
    try:
        index = operator.index(axis)
    except TypeError:
        raise TypeError(f"{func}: {name} must be an int, not {axis!r}") from None
    if not -ndim <= index < ndim:
        allowed = f"{-ndim} <= {name} < {ndim}" if ndim else "none: the array is 0-d"
        raise AxisError(
            f"{func}: {name}={index} is out of range for an array of {ndim} dimension"
            f"{'' if ndim == 1 else 's'} (allowed: {allowed})"
        )
    return index % ndim


def check_axes(func: str, axis: Any, ndim: int, name: str = "axis") -> tuple[int, ...] | None:
    """``axis`` (None, an int or a sequence of ints) as a tuple of distinct non-negative axes."""
    if axis is None:
        return None
    if isinstance(axis, (tuple, list)):
        axes = tuple(check_axis(func, a, ndim, name) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"{func}: {name}={tuple(axis)} names the same axis twice")
        return axes
    return (check_axis(func, axis, ndim, name),)
