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
        # a bool is an int to Python, but axis=True meaning axis 1 is a slip, not a choice
        index = operator.index(axis) if not isinstance(axis, bool) else None
    except TypeError:
        index = None
    if index is None:
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


def check_shape(func: str, shape: Any, name: str = "shape") -> tuple[int, ...]:
    """``shape`` (an int or a sequence of ints, as NumPy takes) as a tuple of Python ints.

    Floats and bools are refused by name: ``reshape(x, (2.0, 3))`` is a slip that some
    libraries accept and others do not. Dask's unknown sizes (NaN) pass through.
    """
    entries = (shape,) if not isinstance(shape, (tuple, list)) else shape
    out = []
    for n in entries:
        try:
            size = operator.index(n) if not isinstance(n, bool) else None
        except TypeError:
            if isinstance(n, float) and n != n:  # NaN: a size Dask does not know yet
                out.append(n)
                continue
            size = None
        if size is None:
            raise TypeError(f"{func}: {name} must be an int or a tuple of ints, not {shape!r}")
        if size < -1:
            raise ValueError(
                f"{func}: {name}={shape!r} has a negative size (allowed: sizes >= 0, and -1 "
                "for one size inferred by reshape)"
            )
        out.append(size)
    return tuple(out)
