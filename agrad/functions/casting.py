"""Dtype conversion: ``astype``, whose gradient converts back to the input's dtype."""

from __future__ import annotations

from typing import Any

from agrad.core import Function, Variable, as_variable, is_differentiable_dtype

__all__ = ["AsType", "astype"]


class AsType(Function):
    """Dtype conversion node: ``x`` converted to ``dtype``; the gradient is converted back.

    Called as ``AsType(dtype)(x)``; the function behind :func:`astype`.

    Parameters
    ----------
    dtype : dtype
        The target, a dtype of the input's backend (``backend.xp.float32``).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> y = F.AsType(xp.float32)(xp.asarray([1.5, 2.0], dtype=xp.float64))
    >>> y, y.dtype == xp.float32
    (variable([1.5 2. ]), True)
    """

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x: Any) -> Any:
        return self.xp.astype(x, self.dtype)

    def vjp(self, d, xs, ys, gys):
        if not is_differentiable_dtype(xs[0].dtype):  # an integer input: floats, not truncated
            return gys[0]
        return d.astype(gys[0], xs[0].dtype)


def astype(x: Any, dtype: Any) -> Variable:
    """``x`` in ``dtype`` (a dtype of ``x``'s backend); ``x`` itself when it already has it.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    dtype : dtype
        The target dtype, of ``x``'s backend (``x.xp.float32``, not a string: array-api-strict
        accepts only its own dtype objects).

    Returns
    -------
    Variable
        ``x``'s values in ``dtype`` (``x`` itself, as a Variable, when its dtype is ``dtype``).
        The gradient is converted back to ``x``'s dtype, so a float64 leaf gets a float64
        gradient through a float32 computation.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.asarray([1.5, 2.0], dtype=xp.float64))
    >>> y = F.astype(x, xp.float32)
    >>> y.dtype == xp.float32
    True
    >>> F.sum(y * 2.0).backward()
    >>> x.grad, x.grad.dtype == xp.float64
    (variable([2. 2.]), True)
    >>> F.astype(x, xp.float64) is x
    True
    """
    if x.dtype == dtype:
        return as_variable(x)
    return AsType(dtype)(x)
