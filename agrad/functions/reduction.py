"""Reductions."""

from __future__ import annotations

from typing import Any

from agrad.core import Function, Variable
from agrad.ops import _normalize_axis


def _keepdims_shape(shape: tuple[int, ...], axis: Any) -> tuple[int, ...]:
    axes = _normalize_axis(axis, len(shape))
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


__all__ = [
    "Sum",
    "sum",
]


class Sum(Function):
    """Sum over ``axis`` (all axes when None)."""

    def __init__(self, axis: Any = None, keepdims: bool = False) -> None:
        self.axis = tuple(axis) if isinstance(axis, list) else axis
        self.keepdims = keepdims

    def forward(self, x: Any) -> Any:
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
