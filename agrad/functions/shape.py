"""Functions that change shape without changing values."""

from __future__ import annotations

import itertools
import math
from typing import Any

from agrad.core import Function, Variable, as_variable
from agrad.functions._axes import AxisError, check_axes, check_axis, check_shape

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
    """Reshape node; the gradient is reshaped back to the input's shape.

    Called as ``Reshape(shape)(x)``; the function behind :func:`reshape`.

    Parameters
    ----------
    shape : tuple of int
        The new shape, with as many elements as the input.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Reshape((2, 1))(backend.asarray([1.0, 2.0]))
    variable([[1.]
              [2.]])
    """

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(shape)

    def forward(self, x: Any) -> Any:
        return self.xp.reshape(x, self.shape)

    def vjp(self, d, xs, ys, gys):
        return d.reshape(gys[0], xs[0].shape)


class Transpose(Function):
    """Axis permutation node (reverses the axes when ``axes`` is None).

    Called as ``Transpose(axes)(x)``; the function behind :func:`transpose`.

    Parameters
    ----------
    axes : sequence of int or None, default None
        A permutation of the input's axes; None reverses them.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Transpose()(backend.asarray([[1.0, 2.0]])).shape
    (2, 1)
    """

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
    """Broadcast node; the gradient is summed back to the input's shape.

    Called as ``BroadcastTo(shape)(x)``; the function behind :func:`broadcast_to`.

    Parameters
    ----------
    shape : tuple of int
        The target shape, which the input's shape must broadcast to.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.BroadcastTo((2, 2))(backend.asarray([1.0, 2.0]))
    variable([[1. 2.]
              [1. 2.]])
    """

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
    """Sum-to-shape node (the reverse of broadcasting); the gradient broadcasts back.

    Called as ``SumTo(shape)(x)``; the function behind :func:`sum_to`.

    Parameters
    ----------
    shape : tuple of int
        The target shape, which must broadcast to the input's shape.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.SumTo((1, 2))(backend.asarray([[1.0, 2.0], [3.0, 4.0]]))
    variable([[4. 6.]])
    """

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


def reshape(x: Any, shape: int | tuple[int, ...]) -> Variable:
    """Reshape ``x``; returns ``x`` itself (no graph node) when the shape already matches.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    shape : int or tuple of int
        The new shape, with as many elements as ``x`` (one entry may be -1, as in the backend's
        ``reshape``); an int ``n`` means ``(n,)``, as in NumPy.

    Returns
    -------
    Variable
        ``x``'s elements in ``shape``; the gradient is reshaped back. ``x`` itself (wrapped in a
        Variable if it is an array) when it already has ``shape``.

    Raises
    ------
    TypeError
        If an entry of ``shape`` is not an int (a float or a bool, say).
    ValueError
        If an entry is below -1.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([1.0, 2.0, 3.0, 4.0]))
    >>> y = F.reshape(x, (2, 2))
    >>> y
    variable([[1. 2.]
              [3. 4.]])
    >>> y.backward()
    >>> x.grad
    variable([1. 1. 1. 1.])
    >>> F.reshape(x, (4,)) is x
    True
    """
    shape = check_shape("reshape", shape)
    if tuple(x.shape) == shape:
        return as_variable(x)
    return Reshape(shape)(x)


def transpose(x: Any, axes: Any = None) -> Variable:
    """Permute the axes of ``x``; ``None`` reverses them.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    axes : sequence of int or None, default None
        A permutation of ``x``'s axes (negative ones count from the end).

    Returns
    -------
    Variable
        A Variable whose axis ``i`` is ``x``'s axis ``axes[i]``; the gradient is permuted back.

    Raises
    ------
    AxisError
        If an axis is out of range.
    ValueError
        If ``axes`` is not a permutation of ``x``'s axes (too few, or one named twice).
    TypeError
        If an axis is not an int.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[1.0, 2.0, 3.0]]))
    >>> y = F.transpose(x)
    >>> y
    variable([[1.]
              [2.]
              [3.]])
    >>> F.transpose(backend.xp.ones((2, 3, 4)), (2, 0, 1)).shape
    (4, 2, 3)
    >>> F.transpose(x, (0,))
    Traceback (most recent call last):
      ...
    ValueError: transpose: axes=(0,) must be a permutation of the 2 axes of an array of shape (1, 3)
    """
    return Transpose(axes)(x)


def broadcast_to(x: Any, shape: tuple[int, ...]) -> Variable:
    """Broadcast ``x`` to ``shape``; ``x`` itself when it already has it.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    shape : tuple of int
        The target shape: counting from the last axis, each of ``x``'s sizes must equal the
        target's or be 1.

    Returns
    -------
    Variable
        Of ``shape``; the gradient is summed back to ``x``'s shape.

    Raises
    ------
    ValueError
        If ``x``'s shape does not broadcast to ``shape``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([1.0, 2.0]))
    >>> y = F.broadcast_to(x, (3, 2))
    >>> y.backward()
    >>> y.shape, x.grad
    ((3, 2), variable([3. 3.]))
    >>> F.broadcast_to(x, (3,))
    Traceback (most recent call last):
      ...
    ValueError: broadcast_to: cannot broadcast an array of shape (2,) to shape (3,) ...
    """
    shape = check_shape("broadcast_to", shape)
    if tuple(x.shape) == shape:
        return as_variable(x)
    return BroadcastTo(shape)(x)


def sum_to(x: Any, shape: tuple[int, ...]) -> Variable:
    """Sum leading and size-1 axes so that the result has ``shape`` (``x`` itself if it has).

    The reverse of :func:`broadcast_to` (DeZero's ``sum_to``): it sums a broadcast gradient back to
    the shape of the operand that was broadcast.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    shape : tuple of int
        The target shape, which must broadcast to ``x``'s shape.

    Returns
    -------
    Variable
        Of ``shape``; the gradient is broadcast back to ``x``'s shape.

    Raises
    ------
    ValueError
        If ``shape`` does not broadcast to ``x``'s shape.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[1.0, 2.0], [3.0, 4.0]]))
    >>> F.sum_to(x, (2,))
    variable([4. 6.])
    >>> F.sum_to(x, (2, 1))
    variable([[3.]
              [7.]])
    >>> F.sum_to(x, (3,))
    Traceback (most recent call last):
      ...
    ValueError: sum_to: cannot sum an array of shape (2, 2) to shape (3,)...
    """
    shape = check_shape("sum_to", shape)
    if tuple(x.shape) == shape:
        return as_variable(x)
    return SumTo(shape)(x)


def expand_dims(x: Any, axis: int = 0) -> Variable:
    """Insert a size-1 axis at ``axis`` (the Array API's meaning of negative axes).

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    axis : int, default 0
        The position of the new axis in the result: ``-x.ndim - 1 <= axis <= x.ndim``.

    Returns
    -------
    Variable
        ``x`` reshaped, with one more axis.

    Raises
    ------
    AxisError
        If ``axis`` is out of that range.
    TypeError
        If ``axis`` is not an int.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = backend.asarray([1.0, 2.0])
    >>> F.expand_dims(x, 0).shape, F.expand_dims(x, -1).shape
    ((1, 2), (2, 1))
    """
    shape = tuple(x.shape)
    position = check_axis("expand_dims", axis, len(shape) + 1)
    return reshape(x, (*shape[:position], 1, *shape[position:]))


def flatten(x: Any) -> Variable:
    """Reshape to ``(N, -1)``, keeping the batch axis (DeZero).

    Parameters
    ----------
    x : Variable or array
        Input with a batch axis first, of shape (N, ...).

    Returns
    -------
    Variable
        Of shape ``(N, product of the other sizes)``.

    Raises
    ------
    ValueError
        If ``x`` is 0-d.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.xp.ones((2, 3, 4)))
    >>> y = F.flatten(x)
    >>> y.backward()
    >>> y.shape, x.grad.shape
    ((2, 12), (2, 3, 4))
    """
    shape = tuple(x.shape)
    if not shape:
        raise ValueError("flatten: the input must have a batch axis, got a 0-d input")
    return reshape(x, (shape[0], math.prod(shape[1:])))


def squeeze(x: Any, axis: Any = None) -> Variable:
    """Drop size-1 axes: those in ``axis`` (int or tuple), or every one when None.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    axis : int, tuple of int or None, default None
        The axes to drop, each of size 1; None drops every size-1 axis.

    Returns
    -------
    Variable
        ``x`` reshaped without those axes; ``x`` itself when there is none to drop.

    Raises
    ------
    ValueError
        If an axis in ``axis`` does not have size 1.
    AxisError
        If an axis is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = backend.xp.ones((1, 3, 1))
    >>> F.squeeze(x).shape, F.squeeze(x, axis=0).shape
    ((3,), (3, 1))
    >>> F.squeeze(x, axis=1)
    Traceback (most recent call last):
      ...
    ValueError: squeeze: axis 1 of shape (1, 3, 1) does not have size 1
    """
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
    """Concatenation node along an existing axis; each input's gradient is its slab of the output's.

    Called as ``Concat(axis)(*xs)``; the function behind :func:`concat`.

    Parameters
    ----------
    axis : int, default 0
        The axis joined along (negative counts from the end).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Concat(axis=0)(backend.asarray([1.0]), backend.asarray([2.0, 3.0]))
    variable([1. 2. 3.])
    """

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, axis: int = 0) -> None:
        self.axis = axis

    def forward(self, *xs: Any) -> Any:
        if not xs:
            raise ValueError("concat: xs is empty; expected at least one Variable or array")
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
    """Stacking node along a new axis; each input's gradient is its slice of the output's.

    Called as ``Stack(axis)(*xs)``; the function behind :func:`stack`.

    Parameters
    ----------
    axis : int, default 0
        The position of the new axis in the output (negative counts from the end).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Stack(axis=1)(backend.asarray([1.0, 2.0]), backend.asarray([3.0, 4.0]))
    variable([[1. 3.]
              [2. 4.]])
    """

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, axis: int = 0) -> None:
        self.axis = axis

    def forward(self, *xs: Any) -> Any:
        if not xs:
            raise ValueError("stack: xs is empty; expected at least one Variable or array")
        self.axis = check_axis("stack", self.axis, xs[0].ndim + 1)
        return self.xp.stack(xs, axis=self.axis)

    def vjp(self, d, xs, ys, gys):
        lead = (slice(None),) * self.axis
        return tuple(d.get_item(gys[0], (*lead, i, Ellipsis)) for i in range(len(xs)))


class Split(Function):
    """Split node: equal sections (an int) or pieces between indices, along ``axis`` (NumPy's rule).

    Called as ``Split(indices_or_sections, axis)(x)``; the function behind :func:`split`.

    Parameters
    ----------
    indices_or_sections : int or sequence of int
        A number of equal sections, or the (non-decreasing) indices to split at.
    axis : int, default 0
        The axis split along.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Split([1], axis=0)(backend.asarray([1.0, 2.0, 3.0]))
    [variable([1.]), variable([2. 3.])]
    """

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
    """Join a sequence of Variables/arrays along an existing ``axis``; also ``concatenate``.

    Parameters
    ----------
    xs : sequence of Variable or array
        Arrays of the same number of dimensions, whose shapes agree except along ``axis``.
    axis : int, default 0
        The axis joined along (negative counts from the end).

    Returns
    -------
    Variable
        The joined array; each input's gradient is its slab of the output's gradient.

    Raises
    ------
    AxisError
        If ``axis`` is out of range for the first input.
    TypeError
        If the inputs live on different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> a = agrad.Variable(backend.asarray([[1.0, 2.0]]))
    >>> b = agrad.Variable(backend.asarray([[3.0, 4.0], [5.0, 6.0]]))
    >>> y = F.concat([a, b], axis=0)
    >>> y
    variable([[1. 2.]
              [3. 4.]
              [5. 6.]])
    >>> (y * y).sum().backward()
    >>> a.grad
    variable([[2. 4.]])
    """
    return Concat(axis)(*xs)


concatenate = concat


def stack(xs: Any, axis: int = 0) -> Variable:
    """Stack a sequence of same-shaped Variables/arrays along a new ``axis``.

    Parameters
    ----------
    xs : sequence of Variable or array
        Arrays of one shape.
    axis : int, default 0
        The position of the new axis in the result (``-ndim - 1 <= axis <= ndim`` for inputs of
        ``ndim`` dimensions).

    Returns
    -------
    Variable
        With one more axis than the inputs; each input's gradient is its slice of the output's.

    Raises
    ------
    AxisError
        If ``axis`` is out of that range.
    TypeError
        If the inputs live on different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> a = agrad.Variable(backend.asarray([1.0, 2.0]))
    >>> b = agrad.Variable(backend.asarray([3.0, 4.0]))
    >>> y = F.stack([a, b], axis=1)
    >>> y
    variable([[1. 3.]
              [2. 4.]])
    >>> y[:, 0].sum().backward()  # the first column holds a
    >>> a.grad, b.grad
    (variable([1. 1.]), variable([0. 0.]))
    """
    return Stack(axis)(*xs)


def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Variable]:
    """Split ``x`` along ``axis`` (NumPy's ``split``); always returns a list.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    indices_or_sections : int or sequence of int
        An int: that many equal sections (it must divide the length of ``axis``). A sequence: the
        non-decreasing indices to split at (each clipped to ``0 .. length``; unlike NumPy, a
        negative index is not counted from the end).
    axis : int, default 0
        The axis split along.

    Returns
    -------
    list of Variable
        The pieces, in order. A piece that does not reach the loss contributes zeros to ``x``'s
        gradient.

    Raises
    ------
    ValueError
        If the sections do not divide the axis equally (or are not positive), or the indices
        decrease.
    AxisError
        If ``axis`` is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([0.0, 1.0, 2.0, 3.0, 4.0, 5.0]))
    >>> first, middle, last = F.split(x, 3)
    >>> middle
    variable([2. 3.])
    >>> middle.backward()
    >>> x.grad
    variable([0. 0. 1. 1. 0. 0.])
    >>> F.split(x, [1, 4])
    [variable([0.]), variable([1. 2. 3.]), variable([4. 5.])]
    >>> F.split(x, 4)
    Traceback (most recent call last):
      ...
    ValueError: split: axis 0 of length 6 does not divide into 4 equal sections
    """
    outputs = Split(indices_or_sections, axis)(x)
    return outputs if isinstance(outputs, list) else [outputs]
