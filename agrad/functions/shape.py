"""Functions that change shape without changing values."""

from __future__ import annotations

from typing import Any

from agrad.core import Function, Variable, as_variable

__all__ = [
    "Reshape",
    "Transpose",
    "BroadcastTo",
    "SumTo",
    "reshape",
    "transpose",
    "broadcast_to",
    "sum_to",
]


class Reshape(Function):
    """Reshape to ``shape``."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        return self.xp.reshape(x, self.shape)

    def vjp(self, d, xs, ys, gys):
        return d.reshape(gys[0], xs[0].shape)


class Transpose(Function):
    """Permute axes (reverse them when ``axes`` is None)."""

    def __init__(self, axes: Any = None) -> None:
        self.axes = None if axes is None else tuple(axes)

    def forward(self, x: Any) -> Any:
        axes = self.axes if self.axes is not None else tuple(range(x.ndim - 1, -1, -1))
        self.axes = tuple(a % x.ndim for a in axes)
        return self.xp.permute_dims(x, self.axes)

    def vjp(self, d, xs, ys, gys):
        inverse = sorted(range(len(self.axes)), key=self.axes.__getitem__)
        return d.transpose(gys[0], tuple(inverse))


class BroadcastTo(Function):
    """Broadcast to ``shape``; the gradient sums back."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        return self.xp.broadcast_to(x, self.shape)

    def vjp(self, d, xs, ys, gys):
        return d.sum_to(gys[0], xs[0].shape)


class SumTo(Function):
    """Sum over broadcast axes down to ``shape``; the gradient broadcasts back."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        from agrad.ops import array_ops

        return array_ops(self.xp).sum_to(x, self.shape)

    def vjp(self, d, xs, ys, gys):
        return d.broadcast_to(gys[0], xs[0].shape)


def reshape(x: Any, shape: tuple[int, ...]) -> Variable:
    """Reshape; returns ``x`` itself (no graph node) when the shape already matches."""
    if tuple(x.shape) == tuple(shape):
        return as_variable(x)
    return Reshape(shape)(x)


def transpose(x: Any, axes: Any = None) -> Variable:
    """Permute axes; ``None`` reverses them."""
    return Transpose(axes)(x)


def broadcast_to(x: Any, shape: tuple[int, ...]) -> Variable:
    """Broadcast ``x`` to ``shape``; identity when it already has it."""
    if tuple(x.shape) == tuple(shape):
        return as_variable(x)
    return BroadcastTo(shape)(x)


def sum_to(x: Any, shape: tuple[int, ...]) -> Variable:
    """Sum leading and size-1 axes so that the result has ``shape``; identity if it already has."""
    if tuple(x.shape) == tuple(shape):
        return as_variable(x)
    return SumTo(shape)(x)
