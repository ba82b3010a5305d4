"""Reductions."""

from __future__ import annotations

import math
import warnings
from typing import Any

from agrad.core import Function, Variable, array_of
from agrad.functions._axes import check_axes, size_of
from agrad.ops import _normalize_axis


def _keepdims_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    axes = _normalize_axis(axis, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


__all__ = [
    "Sum",
    "Max",
    "Min",
    "sum",
    "average",
    "mean",
    "max",
    "min",
]


class Sum(Function):
    """Sum node over ``axis`` (all axes when None); the gradient broadcasts back.

    Called as ``Sum(axis, keepdims)(x)``; the function behind :func:`sum` and ``Variable.sum``. Its
    backward reads only the input's shape.

    Parameters
    ----------
    axis : int, tuple of int or None, default None
        The axes reduced (negative ones count from the end; a list is taken as a tuple); None
        reduces all of them.
    keepdims : bool, default False
        Keep the reduced axes with size 1, so that the result broadcasts against ``x``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Sum(axis=0)(backend.asarray([[1.0, 2.0], [3.0, 4.0]]))
    variable([4. 6.])
    """

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, axis: Any = None, keepdims: bool = False) -> None:
        self.axis = tuple(axis) if isinstance(axis, list) else axis
        self.keepdims = keepdims

    def forward(self, x: Any) -> Any:
        if self.axis is not None:
            self.axis = check_axes("sum", self.axis, x.ndim)
        return self.xp.sum(x, axis=self.axis, keepdims=self.keepdims)

    def vjp(self, d, xs, ys, gys):
        shape = xs[0].shape
        gy = gys[0]
        if not self.keepdims:
            gy = d.reshape(gy, _keepdims_shape(shape, self.axis))
        return d.broadcast_to(gy, shape)


def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Sum of elements over ``axis`` (int, tuple or None).

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    axis : int, tuple of int or None, default None
        The axes reduced (negative ones count from the end; a list is taken as a tuple); None
        reduces all of them.
    keepdims : bool, default False
        Keep the reduced axes with size 1, so that the result broadcasts against ``x``.

    Returns
    -------
    Variable
        The sums, in ``x``'s dtype; 0-d when every axis is reduced. The gradient is the output's
        gradient broadcast back to ``x``'s shape.

    Raises
    ------
    AxisError
        If an axis is out of range for ``x`` (a ``ValueError`` and an ``IndexError``).
    TypeError
        If an axis is not an int.
    ValueError
        If ``axis`` names the same axis twice.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    >>> y = F.sum(x, axis=1)
    >>> y
    variable([ 6. 15.])
    >>> y.backward()
    >>> x.grad
    variable([[1. 1. 1.]
              [1. 1. 1.]])
    >>> F.sum(x, axis=(0, 1), keepdims=True)
    variable([[21.]])
    >>> try:
    ...     F.sum(x, axis=2)
    ... except F.AxisError as error:
    ...     print(error)
    sum: axis=2 is out of range for an array of 2 dimensions (allowed: -2 <= axis < 2)
    """
    return Sum(axis, keepdims)(x)


def average(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    """Mean over ``axis``: ``sum`` scaled by the output/input size ratio (DeZero); also ``mean``.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    axis : int, tuple of int or None, default None
        The axes reduced (negative ones count from the end; a list is taken as a tuple); None
        reduces all of them.
    keepdims : bool, default False
        Keep the reduced axes with size 1, so that the result broadcasts against ``x``.

    Returns
    -------
    Variable
        The means, in ``x``'s dtype. The mean over no elements is NaN, with a ``RuntimeWarning``
        as in NumPy.

    Raises
    ------
    AxisError
        If an axis is out of range for ``x`` (a ``ValueError`` and an ``IndexError``).
    TypeError
        If an axis is not an int.
    ValueError
        If ``axis`` names the same axis twice.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[1.0, 2.0], [3.0, 4.0]]))
    >>> y = F.average(x)
    >>> y.backward()
    >>> y, x.grad
    (variable(2.5), variable([[0.25 0.25]
              [0.25 0.25]]))
    >>> F.mean(x, axis=0)
    variable([2. 3.])
    """
    y = sum(x, axis, keepdims)
    if size_of(x):
        return y * (size_of(y) / size_of(x))
    if size_of(y):
        warnings.warn("mean of an empty array is NaN", RuntimeWarning, stacklevel=2)
    return y * math.nan


mean = average


def _refuse_empty(func: str, what: str, x: Any, axis: tuple[int, ...] | None) -> None:
    axes = range(x.ndim) if axis is None else axis
    if any(x.shape[a] == 0 for a in axes):
        raise ValueError(
            f"{func}: the {what} of no elements is undefined: x has shape {tuple(x.shape)} and "
            f"axis={axis} reduces an axis of size 0 (allowed: reduced axes of size >= 1)"
        )


class _Extreme(Function):
    """Max or min over ``axis``; the gradient goes to every position equal to the extreme."""

    retain_inputs = (0,)
    retain_outputs = (0,)

    def __init__(self, axis: Any = None, keepdims: bool = False) -> None:
        self.axis = tuple(axis) if isinstance(axis, list) else axis
        self.keepdims = keepdims

    def vjp(self, d, xs, ys, gys):
        x, y = array_of(xs[0]), array_of(ys[0])
        keep_shape = _keepdims_shape(tuple(x.shape), self.axis)
        hit = x == self.xp.reshape(y, keep_shape)  # ties all get the gradient, as in DeZero
        return d.reshape(gys[0], keep_shape) * self.xp.astype(hit, gys[0].dtype)


class Max(_Extreme):
    """Maximum node over ``axis`` (all axes when None).

    Called as ``Max(axis, keepdims)(x)``; the function behind :func:`max` and ``Variable.max``.
    Every position equal to the maximum gets the full gradient (DeZero's rule).

    Parameters
    ----------
    axis : int, tuple of int or None, default None
        The axes reduced (negative ones count from the end; a list is taken as a tuple); None
        reduces all of them.
    keepdims : bool, default False
        Keep the reduced axes with size 1, so that the result broadcasts against ``x``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Max(axis=1)(backend.asarray([[1.0, 2.0], [3.0, 4.0]]))
    variable([2. 4.])
    """

    def forward(self, x: Any) -> Any:
        if self.axis is not None:
            self.axis = check_axes("max", self.axis, x.ndim)
        _refuse_empty("max", "maximum", x, self.axis)
        return self.xp.max(x, axis=self.axis, keepdims=self.keepdims)


class Min(_Extreme):
    """Minimum node over ``axis`` (all axes when None).

    Called as ``Min(axis, keepdims)(x)``; the function behind :func:`min` and ``Variable.min``.
    Every position equal to the minimum gets the full gradient (DeZero's rule).

    Parameters
    ----------
    axis : int, tuple of int or None, default None
        The axes reduced (negative ones count from the end; a list is taken as a tuple); None
        reduces all of them.
    keepdims : bool, default False
        Keep the reduced axes with size 1, so that the result broadcasts against ``x``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Min(axis=1)(backend.asarray([[1.0, 2.0], [3.0, 4.0]]))
    variable([1. 3.])
    """

    def forward(self, x: Any) -> Any:
        if self.axis is not None:
            self.axis = check_axes("min", self.axis, x.ndim)
        _refuse_empty("min", "minimum", x, self.axis)
        return self.xp.min(x, axis=self.axis, keepdims=self.keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Maximum over ``axis``; every tied position gets the full gradient (DeZero).

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    axis : int, tuple of int or None, default None
        The axes reduced (negative ones count from the end; a list is taken as a tuple); None
        reduces all of them.
    keepdims : bool, default False
        Keep the reduced axes with size 1, so that the result broadcasts against ``x``.

    Returns
    -------
    Variable
        The maxima, in ``x``'s dtype.

    Raises
    ------
    AxisError
        If an axis is out of range for ``x`` (a ``ValueError`` and an ``IndexError``).
    TypeError
        If an axis is not an int.
    ValueError
        If ``axis`` names the same axis twice.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[1.0, 3.0, 3.0], [4.0, 0.0, 2.0]]))
    >>> y = F.max(x, axis=1)
    >>> y
    variable([3. 4.])
    >>> y.backward()  # both 3s of the first row get the gradient
    >>> x.grad
    variable([[0. 1. 1.]
              [1. 0. 0.]])
    """
    return Max(axis, keepdims)(x)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Minimum over ``axis``; every tied position gets the full gradient (DeZero).

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    axis : int, tuple of int or None, default None
        The axes reduced (negative ones count from the end; a list is taken as a tuple); None
        reduces all of them.
    keepdims : bool, default False
        Keep the reduced axes with size 1, so that the result broadcasts against ``x``.

    Returns
    -------
    Variable
        The minima, in ``x``'s dtype.

    Raises
    ------
    AxisError
        If an axis is out of range for ``x`` (a ``ValueError`` and an ``IndexError``).
    TypeError
        If an axis is not an int.
    ValueError
        If ``axis`` names the same axis twice.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[1.0, 3.0, 1.0], [4.0, 0.0, 2.0]]))
    >>> y = F.min(x, axis=1)
    >>> y
    variable([1. 0.])
    >>> y.backward()  # both 1s of the first row get the gradient
    >>> x.grad
    variable([[1. 0. 1.]
              [0. 1. 0.]])
    """
    return Min(axis, keepdims)(x)
