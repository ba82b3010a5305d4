"""Functions that change shape without changing values."""

from __future__ import annotations

import itertools
import math
from typing import Any

from agrad.core import Function, Variable, as_variable
from agrad.functions._axes import AxisError, check_axes, check_axis

__all__ = [
    "AxisError",
    "Reshape",
    "Transpose",
    "BroadcastTo",
    "SumTo",
    "reshape",
    "transpose",
    "broadcast_to",
    "sum_to",
    "Concat",
    "Stack",
    "Split",
    "expand_dims",
    "flatten",
    "squeeze",
    "concat",
    "concatenate",
    "stack",
    "split",
]


class Reshape(Function):
    """Reshape to ``shape``."""

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        return self.xp.reshape(x, self.shape)

    def vjp(self, d, xs, ys, gys):
        return d.reshape(gys[0], xs[0].shape)


class Transpose(Function):
    """Permute axes (reverse them when ``axes`` is None)."""

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, axes: Any = None) -> None:
        self.axes = None if axes is None else tuple(axes)

    def forward(self, x: Any) -> Any:
        if self.axes is None:
            self.axes = tuple(range(x.ndim - 1, -1, -1))
        else:
            axes = check_axes("transpose", self.axes, x.ndim, "axes")
            if len(axes) != x.ndim:
                raise ValueError(
                    f"transpose: axes={self.axes} must be a permutation of the {x.ndim} axes "
                    f"of an array of shape {tuple(x.shape)}"
                )
            self.axes = axes
        return self.xp.permute_dims(x, self.axes)

    def vjp(self, d, xs, ys, gys):
        inverse = sorted(range(len(self.axes)), key=self.axes.__getitem__)
        return d.transpose(gys[0], tuple(inverse))


class BroadcastTo(Function):
    """Broadcast to ``shape``; the gradient sums back."""

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        _check_sum_to(self.shape, tuple(x.shape), "broadcast_to")
        return self.xp.broadcast_to(x, self.shape)

    def vjp(self, d, xs, ys, gys):
        return d.sum_to(gys[0], xs[0].shape)


class SumTo(Function):
    """Sum over broadcast axes down to ``shape``; the gradient broadcasts back."""

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        from agrad.ops import array_ops

        _check_sum_to(tuple(x.shape), self.shape)
        return array_ops(self.backend).sum_to(x, self.shape)

    def vjp(self, d, xs, ys, gys):
        return d.broadcast_to(gys[0], xs[0].shape)


def _check_sum_to(source: tuple[int, ...], shape: tuple[int, ...], func: str = "sum_to") -> None:
    """``shape`` must broadcast to ``source`` (else summing to it is a silent reshape)."""
    lead = len(source) - len(shape)
    if lead < 0 or any(n != 1 and n != source[lead + i] for i, n in enumerate(shape)):
        if func == "sum_to":
            raise ValueError(
                f"sum_to: cannot sum an array of shape {source} to shape {shape}; the target "
                "must broadcast to the source (the same trailing sizes, or 1 where summed)"
            )
        raise ValueError(
            f"broadcast_to: cannot broadcast an array of shape {shape} to shape {source} (each "
            "axis must match or be 1, counting from the last)"
        )


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


def expand_dims(x: Any, axis: int = 0) -> Variable:
    """Insert a size-1 axis at ``axis`` (the Array API's meaning of negative axes)."""
    shape = tuple(x.shape)
    position = check_axis("expand_dims", axis, len(shape) + 1)
    return reshape(x, (*shape[:position], 1, *shape[position:]))


def flatten(x: Any) -> Variable:
    """Reshape to ``(N, -1)``, keeping the batch axis (DeZero)."""
    shape = tuple(x.shape)
    if not shape:
        raise ValueError("flatten: the input must have a batch axis, got a 0-d input")
    return reshape(x, (shape[0], math.prod(shape[1:])))


def squeeze(x: Any, axis: Any = None) -> Variable:
    """Drop size-1 axes: those in ``axis`` (int or tuple), or every one when None."""
    shape = tuple(x.shape)
    if axis is None:
        drop = {i for i, n in enumerate(shape) if n == 1}
    else:
        drop = set(check_axes("squeeze", axis, len(shape)))
        if any(shape[i] != 1 for i in drop):
            raise ValueError(f"squeeze: axis {axis} of shape {shape} does not have size 1")
    return reshape(x, tuple(n for i, n in enumerate(shape) if i not in drop))


def _slab(axis: int, start: int, stop: int) -> tuple:
    """The index selecting ``start:stop`` along ``axis`` and everything elsewhere."""
    return (*(slice(None),) * axis, slice(start, stop), Ellipsis)


class Concat(Function):
    """Join arrays along an existing axis; each input's gradient is its slab of the output's."""

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, axis: int = 0) -> None:
        self.axis = axis

    def forward(self, *xs: Any) -> Any:
        self.axis = check_axis("concat", self.axis, xs[0].ndim)
        return self.xp.concat(xs, axis=self.axis)

    def vjp(self, d, xs, ys, gys):
        gy, axis = gys[0], self.axis
        gxs, start = [], 0
        for x in xs:
            stop = start + x.shape[axis]
            gxs.append(d.get_item(gy, _slab(axis, start, stop)))
            start = stop
        return tuple(gxs)


class Stack(Function):
    """Join arrays along a new axis; each input's gradient is its slice of the output's."""

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, axis: int = 0) -> None:
        self.axis = axis

    def forward(self, *xs: Any) -> Any:
        self.axis = check_axis("stack", self.axis, xs[0].ndim + 1)
        return self.xp.stack(xs, axis=self.axis)

    def vjp(self, d, xs, ys, gys):
        lead = (slice(None),) * self.axis
        return tuple(d.get_item(gys[0], (*lead, i, Ellipsis)) for i in range(len(xs)))


class Split(Function):
    """Split along ``axis`` into equal sections (an int) or at the given indices (NumPy's rule)."""

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, indices_or_sections: Any, axis: int = 0) -> None:
        self.indices_or_sections = indices_or_sections
        self.axis = axis

    def forward(self, x: Any) -> Any:
        axis = self.axis = check_axis("split", self.axis, x.ndim)
        length = x.shape[axis]
        if isinstance(self.indices_or_sections, int):
            sections = self.indices_or_sections
            if sections <= 0 or length % sections:
                raise ValueError(
                    f"split: axis {axis} of length {length} does not divide into "
                    f"{sections} equal sections"
                )
            step = length // sections
            bounds = [i * step for i in range(sections + 1)]
        else:
            bounds = [0, *(min(max(int(i), 0), length) for i in self.indices_or_sections)]
            bounds.append(length)
        self.bounds = list(itertools.pairwise(bounds))
        if any(stop < start for start, stop in self.bounds):
            # NumPy would hand out overlapping pieces, whose gradients no longer tile x
            raise ValueError(f"split: indices must be non-decreasing, got {bounds[1:-1]}")
        return tuple(x[_slab(axis, start, stop)] for start, stop in self.bounds)

    def vjp(self, d, xs, ys, gys):
        x, axis = xs[0], self.axis
        shape = list(x.shape)
        parts = []
        for gy, (start, stop) in zip(gys, self.bounds):
            if gy is None:  # an output that did not reach the loss contributes zeros
                shape[axis] = stop - start
                gy = self.xp.zeros(tuple(shape), dtype=x.dtype)
            parts.append(gy)
        return d.concat(parts, axis=axis)


def concat(xs: Any, axis: int = 0) -> Variable:
    """Join a sequence of Variables/arrays along ``axis``."""
    return Concat(axis)(*xs)


concatenate = concat


def stack(xs: Any, axis: int = 0) -> Variable:
    """Stack a sequence of same-shaped Variables/arrays along a new ``axis``."""
    return Stack(axis)(*xs)


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Variable]:
    """Split ``x`` along ``axis`` (NumPy's ``split``); always returns a list."""
    outputs = Split(indices_or_sections, axis)(x)
    return outputs if isinstance(outputs, list) else [outputs]
