"""Variable's operators and DeZero's array methods, bound to ``agrad.functions`` in one call.

``agrad/__init__.py`` calls :func:`install_variable_operators` once, after the function library
is imported (Chainer's ``install_variable_arithmetics``): ``core`` defines the graph and knows no
function, and nothing depends on the order in which modules happen to be imported.
"""

from __future__ import annotations

from typing import Any

from agrad import functions as F
from agrad.core import Variable


def _reshape(self: Variable, *shape: Any) -> Variable:
    """``F.reshape``; takes varargs or one tuple/list."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return F.reshape(self, tuple(shape))


def _transpose(self: Variable, *axes: Any) -> Variable:
    """``F.transpose``; no axes reverses them; takes varargs, one tuple/list, or None."""
    if len(axes) == 0:
        axes = None
    elif len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
        axes = axes[0]
    return F.transpose(self, axes)


def _sum(self: Variable, axis: Any = None, keepdims: bool = False) -> Variable:
    """``F.sum``."""
    return F.sum(self, axis, keepdims)


def _max(self: Variable, axis: Any = None, keepdims: bool = False) -> Variable:
    """``F.max``."""
    return F.max(self, axis, keepdims)


def _min(self: Variable, axis: Any = None, keepdims: bool = False) -> Variable:
    """``F.min``."""
    return F.min(self, axis, keepdims)


def _matmul(self: Variable, other: Any) -> Variable:
    """``F.matmul``."""
    return F.matmul(self, other)


def _rmatmul(self: Variable, other: Any) -> Variable:
    return F.matmul(other, self)


def _rpow(self: Variable, other: Any) -> Variable:
    return F.rpow(self, other)


def _transposed(self: Variable) -> Variable:
    """Transpose with the axes reversed."""
    return F.transpose(self)


def install_variable_operators() -> None:
    """Give ``Variable`` its operators (``+ - * / ** @``, ``x[i]``) and array methods."""
    # the functions themselves where the operand order allows: one Python call less per op
    Variable.__add__ = Variable.__radd__ = F.add
    Variable.__mul__ = Variable.__rmul__ = F.mul
    Variable.__sub__ = F.sub
    Variable.__rsub__ = F.rsub
    Variable.__truediv__ = F.div
    Variable.__rtruediv__ = F.rdiv
    Variable.__neg__ = F.neg
    Variable.__pow__ = F.pow
    Variable.__rpow__ = _rpow
    Variable.__matmul__ = _matmul
    Variable.__rmatmul__ = _rmatmul
    Variable.__getitem__ = F.get_item
    Variable.reshape = _reshape
    Variable.transpose = _transpose
    Variable.T = property(_transposed)
    Variable.sum = _sum
    Variable.max = _max
    Variable.min = _min
    Variable.matmul = Variable.dot = _matmul
