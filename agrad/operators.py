"""Variable's operators and DeZero's array methods, bound to ``agrad.functions`` in one call.

``agrad/__init__.py`` calls :func:`install_variable_operators` once, after the function library
is imported (Chainer's ``install_variable_arithmetics``): ``core`` defines the graph and knows no
function, and nothing depends on the order in which modules happen to be imported.

The operators PyTorch has and ``agrad.functions`` lacks live here as nodes of their own:
``%`` (:class:`Remainder`), ``//`` (:class:`FloorDivide`), ``round`` (:class:`Round`), and the
comparisons, which build no graph at all (their boolean results are never differentiated).
"""

from __future__ import annotations

import operator
from typing import Any

from agrad import functions as F
from agrad.backends import backend_for_type, backend_of
from agrad.core import Function, Variable, _backend_of_array, _is_number, _scalar, array_of


def _unbroadcast(d: Any, g: Any, shape: tuple[int, ...]) -> Any:
    return g if g.shape == shape else d.sum_to(g, shape)


class Remainder(Function):
    """``x0 % x1`` with Python's sign convention (the divisor's), broadcasting.

    The gradient is 1 for ``x0`` and ``-floor(x0 / x1)`` for ``x1`` (PyTorch's ``remainder``),
    exact wherever the result is continuous.

    Examples
    --------
    >>> import agrad
    >>> x = agrad.Variable(agrad.current_backend().asarray([5.5, -1.0]))
    >>> y = x % 2
    >>> y.backward()
    >>> y, x.grad
    (variable([1.5 1. ]), variable([1. 1.]))
    """

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return self.xp.remainder(x0, x1)

    def vjp(self, d, xs, ys, gys):
        (gy,) = gys
        gx0 = _unbroadcast(d, gy, xs[0].shape) if self.needs_input_grad(0) else None
        gx1 = None
        if self.needs_input_grad(1):
            quotient = self.xp.floor_divide(array_of(xs[0]), array_of(xs[1]))
            gx1 = _unbroadcast(d, -gy * quotient, xs[1].shape)
        return gx0, gx1


class FloorDivide(Function):
    """``x0 // x1``, broadcasting; piecewise constant, so its gradient is zero.

    PyTorch raises when a ``//`` of a tensor that requires grad is differentiated; in agrad
    every floating leaf takes part in differentiation, so that would forbid ``x // n`` in any
    graph. The gradient is the derivative where it exists (zero), as for ``round``.

    Examples
    --------
    >>> import agrad
    >>> x = agrad.Variable(agrad.current_backend().asarray([5.5, -1.0]))
    >>> y = x // 2
    >>> y.sum().backward()
    >>> y, x.grad
    (variable([ 2. -1.]), variable([0. 0.]))
    """

    retain_inputs = retain_outputs = ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return self.xp.floor_divide(x0, x1)

    def vjp(self, d, xs, ys, gys):
        (gy,) = gys
        zero = gy * 0
        gx0 = _unbroadcast(d, zero, xs[0].shape) if self.needs_input_grad(0) else None
        gx1 = _unbroadcast(d, zero, xs[1].shape) if self.needs_input_grad(1) else None
        return gx0, gx1


class Round(Function):
    """Round to ``decimals`` digits, halves to even (NumPy's and PyTorch's rule).

    Piecewise constant, so its gradient is zero, as PyTorch's ``round``.

    Examples
    --------
    >>> import agrad
    >>> x = agrad.Variable(agrad.current_backend().asarray([2.5, 0.126]))
    >>> y = round(x, 2)
    >>> y.sum().backward()
    >>> y, x.grad
    (variable([2.5  0.13]), variable([0. 0.]))
    """

    retain_inputs = retain_outputs = ()

    def __init__(self, decimals: int = 0) -> None:
        self.decimals = decimals

    def forward(self, x: Any) -> Any:
        xp, n = self.xp, self.decimals
        if xp.isdtype(x.dtype, "integral"):
            if n >= 0:
                return x
            scale = 10 ** (-n)  # an integer rounded to tens, hundreds... as NumPy does
            return xp.astype(xp.round(xp.astype(x, xp.float64) / scale) * scale, x.dtype)
        if n == 0:
            return xp.round(x)
        scale = 10.0**n
        return xp.round(x * scale) / scale

    def vjp(self, d, xs, ys, gys):
        return gys[0] * 0


def _mod(self: Variable, other: Any) -> Variable:
    return Remainder()(self, other)


def _rmod(self: Variable, other: Any) -> Variable:
    return Remainder()(other, self)


def _floordiv(self: Variable, other: Any) -> Variable:
    return FloorDivide()(self, other)


def _rfloordiv(self: Variable, other: Any) -> Variable:
    return FloorDivide()(other, self)


def _round(self: Variable, ndigits: Any = None) -> Variable:
    """``round(v)`` and ``round(v, n)``: elementwise, a Variable of ``v``'s dtype."""
    if ndigits is None:
        ndigits = 0
    if isinstance(ndigits, bool) or not isinstance(ndigits, int):
        ndigits = operator.index(ndigits)
    return Round(ndigits)(self)


def _compare(name: str, op: Any) -> Any:
    def compare(self: Variable, other: Any) -> Any:
        data = self.data
        if data is None:
            raise ValueError(f"{name}: the Variable has no data")
        backend = _backend_of_array(data)
        if isinstance(other, Variable):
            other = other.data
            if other is None:
                raise ValueError(f"{name}: the other Variable has no data")
        elif _is_number(other):
            other = _scalar(other)  # a Python number stays weak: float32 < 0.1 compares in float32
        if not _is_number(other):
            other_backend = backend_for_type(type(other)) or backend_of(other, None)
            if other_backend is None:
                return NotImplemented  # `v == None` or `v == "a"`: Python falls back to identity
            if other_backend is not backend:
                raise TypeError(
                    f"{name}: the operands live on different backends ({backend.name!r} and "
                    f"{other_backend.name!r}); move them with Variable.to(...) first"
                )
        result = op(data, other)
        if type(result) is not backend.array_type:
            result = backend.from_result(result)
        return Variable(result)  # no creator: a boolean result is never differentiated

    compare.__name__ = compare.__qualname__ = f"_{op.__name__}"
    return compare


def _bool(self: Variable) -> bool:
    """Truth value of a one-element Variable; NumPy's "ambiguous" error for any other size."""
    if self.data is None:
        raise ValueError("the truth value of a Variable with no data is undefined")
    size = self.size
    if size != 1:
        raise ValueError(
            f"The truth value of a Variable with {size} elements is ambiguous "
            "(as for an array with more than one element); reduce it first, e.g. with "
            "bool((v > 0).data.all()) or v.item()"
        )
    if self.backend.traced:
        return bool(self.data)  # agrad.jit refuses it, naming the `if`
    return bool(self.item())


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
    # PyTorch's operators, elementwise as NumPy's; hashing stays by identity, as PyTorch's
    Variable.__abs__ = F.abs
    Variable.__mod__ = _mod
    Variable.__rmod__ = _rmod
    Variable.__floordiv__ = _floordiv
    Variable.__rfloordiv__ = _rfloordiv
    Variable.__round__ = _round
    Variable.__eq__ = _compare("==", operator.eq)
    Variable.__ne__ = _compare("!=", operator.ne)
    Variable.__lt__ = _compare("<", operator.lt)
    Variable.__le__ = _compare("<=", operator.le)
    Variable.__gt__ = _compare(">", operator.gt)
    Variable.__ge__ = _compare(">=", operator.ge)
    Variable.__hash__ = object.__hash__
    Variable.__bool__ = _bool
    # method forms of common functions, as PyTorch and NumPy have them
    Variable.mean = F.mean
    Variable.exp = F.exp
    Variable.log = F.log
    Variable.sin = F.sin
    Variable.cos = F.cos
    Variable.tanh = F.tanh
    Variable.sqrt = F.sqrt
    Variable.square = F.square
    Variable.abs = F.abs
    Variable.sign = F.sign
    Variable.relu = F.relu
    Variable.sigmoid = F.sigmoid
    Variable.clip = F.clip
