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
    """Sum over ``axis`` (all axes when None)."""

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
    """Sum of elements over ``axis`` (int, tuple or None)."""
    return Sum(axis, keepdims)(x)


def average(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    """Mean over ``axis``: ``sum`` scaled by the output/input size ratio (DeZero).

    The mean over no elements is NaN, with NumPy's ``RuntimeWarning``.
    """
    y = sum(x, axis, keepdims)
    if size_of(x):
        return y * (size_of(y) / size_of(x))
    if size_of(y):
        warnings.warn("mean of an empty array is NaN", RuntimeWarning, stacklevel=2)
    return y * math.nan


mean = average


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
    """Maximum over ``axis`` (all axes when None)."""

    def forward(self, x: Any) -> Any:
        if self.axis is not None:
            self.axis = check_axes("max", self.axis, x.ndim)
        return self.xp.max(x, axis=self.axis, keepdims=self.keepdims)


class Min(_Extreme):
    """Minimum over ``axis`` (all axes when None)."""

    def forward(self, x: Any) -> Any:
        if self.axis is not None:
            self.axis = check_axes("min", self.axis, x.ndim)
        return self.xp.min(x, axis=self.axis, keepdims=self.keepdims)


def max(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Maximum over ``axis``; every tied position gets the full gradient (DeZero)."""
    return Max(axis, keepdims)(x)


def min(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:  # noqa: A001
    """Minimum over ``axis``; every tied position gets the full gradient (DeZero)."""
    return Min(axis, keepdims)(x)
