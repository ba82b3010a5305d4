"""Dtype conversion: ``astype``, whose gradient converts back to the input's dtype."""

from __future__ import annotations

from typing import Any

from agrad.core import Function, Variable, as_variable

__all__ = ["AsType", "astype"]


class AsType(Function):
    """``x`` converted to ``dtype``; the gradient is converted back to ``x``'s dtype."""

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def forward(self, x: Any) -> Any:
        return self.xp.astype(x, self.dtype)

    def vjp(self, d, xs, ys, gys):
        return d.astype(gys[0], xs[0].dtype)


def astype(x: Any, dtype: Any) -> Variable:
    """``x`` in ``dtype`` (a dtype of ``x``'s backend); ``x`` itself when it already has it."""
    if x.dtype == dtype:
        return as_variable(x)
    return AsType(dtype)(x)
