"""Arithmetic: the functions behind ``+ - * / ** neg`` (broadcasting-aware gradients)."""

from __future__ import annotations

import math
from typing import Any

from agrad.core import _PLAIN_NUMBERS, Function, Variable, _is_number, _scalar, array_of


def _unbroadcast(d: Any, g: Any, shape: tuple[int, ...]) -> Any:
    return g if g.shape == shape else d.sum_to(g, shape)


def _refuse_none(op: str, x0: Any, x1: Any) -> None:
    # called only when an operand is None: the check itself stays inline in each operator
    # Function inputs may be None (an optional bias), so the operators name the slip themselves
    for name, x in (("x0", x0), ("x1", x1)):
        if x is None:
            raise TypeError(
                f"{op}: operand {name} is None; expected a Variable, an array or a Python number"
            )


__all__ = [
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Neg",
    "Pow",
    "AddConstant",
    "MulConstant",
    "DivConstant",
    "RSubConstant",
    "RDivConstant",
    "RPowConstant",
    "add",
    "sub",
    "rsub",
    "mul",
    "div",
    "rdiv",
    "neg",
    "pow",
    "rpow",
    "square",
]


class Add(Function):
    """Addition node, x0 + x1 with broadcasting.

    Called as ``Add()(x0, x1)``; the function behind :func:`add` and ``+`` between two arrays or
    Variables.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([1.0, 2.0]))
    >>> F.Add()(x, backend.asarray([[10.0], [20.0]]))  # (2,) + (2, 1) -> (2, 2)
    variable([[11. 12.]
              [21. 22.]])
    """

    retain_inputs = retain_outputs = ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 + x1

    def vjp(self, d, xs, ys, gys):
        # neither input is retained, so xs are their nodes, which say whether they want a
        # gradient (`needs_input_grad` without its call: this is the commonest vjp)
        (gy,), (x0, x1) = gys, xs
        gx0 = _unbroadcast(d, gy, x0.shape) if x0.requires_grad else None
        gx1 = _unbroadcast(d, gy, x1.shape) if x1.requires_grad else None
        return gx0, gx1


class Sub(Function):
    """Subtraction node, x0 - x1 with broadcasting.

    Called as ``Sub()(x0, x1)``; the function behind :func:`sub` and ``-`` between two arrays or
    Variables.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Sub()(backend.asarray([5.0, 7.0]), backend.asarray([1.0, 2.0]))
    variable([4. 5.])
    """

    retain_inputs = retain_outputs = ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 - x1

    def vjp(self, d, xs, ys, gys):
        (gy,), (x0, x1) = gys, xs  # nodes, as in Add.vjp
        gx0 = _unbroadcast(d, gy, x0.shape) if x0.requires_grad else None
        gx1 = _unbroadcast(d, -gy, x1.shape) if x1.requires_grad else None
        return gx0, gx1


class Mul(Function):
    """Multiplication node, x0 * x1 with broadcasting.

    Called as ``Mul()(x0, x1)``; the function behind :func:`mul` and ``*`` between two arrays or
    Variables.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([2.0, 3.0]))
    >>> y = F.Mul()(x, backend.asarray([4.0, 5.0]))
    >>> y.backward()
    >>> y, x.grad
    (variable([ 8. 15.]), variable([4. 5.]))
    """

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 * x1

    def vjp(self, d, xs, ys, gys):
        (gy,), (x0, x1) = gys, xs
        gx0 = _unbroadcast(d, gy * x1, x0.shape) if self.needs_input_grad(0) else None
        gx1 = _unbroadcast(d, gy * x0, x1.shape) if self.needs_input_grad(1) else None
        return gx0, gx1


class Div(Function):
    """Division node, x0 / x1 with broadcasting.

    Called as ``Div()(x0, x1)``; the function behind :func:`div` and ``/`` between two arrays or
    Variables.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([2.0, 4.0]))
    >>> y = F.Div()(backend.asarray([1.0, 1.0]), x)
    >>> y.backward()  # d(1/x)/dx = -1/x**2
    >>> y, x.grad
    (variable([0.5  0.25]), variable([-0.25   -0.0625]))
    """

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 / x1

    def vjp(self, d, xs, ys, gys):
        (gy,), (x0, x1) = gys, xs
        gx0 = gy / x1
        gx1 = _unbroadcast(d, -gx0 * x0 / x1, x1.shape) if self.needs_input_grad(1) else None
        return _unbroadcast(d, gx0, x0.shape) if self.needs_input_grad(0) else None, gx1


class Neg(Function):
    """Negation node, -x.

    Called as ``Neg()(x)``; the function behind :func:`neg` and unary ``-``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Neg()(backend.asarray([1.0, -2.0]))
    variable([-1.  2.])
    """

    retain_inputs = retain_outputs = ()

    def forward(self, x: Any) -> Any:
        return -x

    def vjp(self, d, xs, ys, gys):
        return -gys[0]


class Pow(Function):
    """Power node, x ** c for a constant exponent ``c``.

    Called as ``Pow(c)(x)``; the function behind :func:`pow`, :func:`square` and ``x ** c``.

    Parameters
    ----------
    c : int or float
        The exponent, a Python number; it gets no gradient.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([2.0]))
    >>> y = F.Pow(3)(x)
    >>> y.backward()  # 3 x**2
    >>> y, x.grad
    (variable([8.]), variable([12.]))
    """

    retain_inputs, retain_outputs = (0,), ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x**self.c

    def vjp(self, d, xs, ys, gys):
        (x,), c = xs, self.c
        # c * x ** (c - 1) is 0 * inf = NaN at x = 0 for c = 0; x ** 0 is constant (PyTorch: 0)
        if c == 0:
            return gys[0] * 0
        if c == 1:  # no x ** 0 node: its own gradient would be 0 * x ** -1 at 0
            return gys[0]
        if c == 2:  # the commonest power: the same value with one array operation fewer
            return gys[0] * (x + x)  # exactly 2 * x, without NumPy 2's ~1 µs on an int
        return gys[0] * (c * x ** (c - 1))


# A Python number as the other operand: one input, so no gradient is computed for the constant.
class AddConstant(Function):
    """x + c for a constant number ``c``; the constant gets no gradient.

    Called as ``AddConstant(c)(x)``; the function behind ``x + 2.0`` and :func:`add` / :func:`sub`
    with a number.

    Parameters
    ----------
    c : int or float
        The constant, a Python number (kept weak: a float32 ``x`` gives float32).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.AddConstant(2.0)(backend.asarray([1.0, 2.0]))
    variable([3. 4.])
    """

    retain_inputs = retain_outputs = ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x + self.c

    def vjp(self, d, xs, ys, gys):
        return gys[0]


class MulConstant(Function):
    """x * c for a constant number ``c``; the constant gets no gradient.

    Called as ``MulConstant(c)(x)``; the function behind ``x * 2.0`` and :func:`mul` with a number.

    Parameters
    ----------
    c : int or float
        The constant, a Python number (kept weak: a float32 ``x`` gives float32).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.MulConstant(2.0)(backend.asarray([1.0, 2.0]))
    variable([2. 4.])
    """

    retain_inputs = retain_outputs = ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x * self.c

    def vjp(self, d, xs, ys, gys):
        return gys[0] * self.c


class DivConstant(Function):
    """x / c for a constant number ``c``; the constant gets no gradient.

    Called as ``DivConstant(c)(x)``; the function behind ``x / 2.0`` and :func:`div` with a number
    divisor.

    Parameters
    ----------
    c : int or float
        The constant, a Python number (kept weak: a float32 ``x`` gives float32).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.DivConstant(2.0)(backend.asarray([1.0, 2.0]))
    variable([0.5 1. ])
    """

    retain_inputs = retain_outputs = ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x / self.c

    def vjp(self, d, xs, ys, gys):
        return gys[0] / self.c


class RSubConstant(Function):
    """c - x for a constant number ``c``; the constant gets no gradient.

    Called as ``RSubConstant(c)(x)``; the function behind ``2.0 - x`` and :func:`sub` with a number
    first.

    Parameters
    ----------
    c : int or float
        The constant, a Python number (kept weak: a float32 ``x`` gives float32).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.RSubConstant(2.0)(backend.asarray([1.0, 2.0]))
    variable([1. 0.])
    """

    retain_inputs = retain_outputs = ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return self.c - x

    def vjp(self, d, xs, ys, gys):
        return -gys[0]


class RDivConstant(Function):
    """c / x for a constant number ``c``; the constant gets no gradient.

    Called as ``RDivConstant(c)(x)``; the function behind ``2.0 / x`` and :func:`div` with a number
    dividend.

    Parameters
    ----------
    c : int or float
        The constant, a Python number (kept weak: a float32 ``x`` gives float32).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.RDivConstant(2.0)(backend.asarray([1.0, 2.0]))
    variable([2. 1.])
    """

    retain_inputs, retain_outputs = (0,), ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return self.c / x

    def vjp(self, d, xs, ys, gys):
        (x,) = xs
        return gys[0] * (-self.c / (x * x))


class RPowConstant(Function):
    """c ** x for a constant base ``c >= 0``; the gradient ``log(c) * c ** x`` uses the output.

    The function behind :func:`rpow` and ``2.0 ** x``, called as ``RPowConstant(c)(x)``. For
    ``c = 0`` the gradient is 0 where ``x >= 0`` and ``-inf`` where ``x < 0``, as in PyTorch.

    Parameters
    ----------
    c : int or float
        The base, a Python number ``>= 0``.

    Raises
    ------
    ValueError
        If ``c < 0`` (``log(c)`` is not real) or ``c`` is NaN.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.RPowConstant(2)(backend.asarray([3.0]))
    variable([8.])
    >>> F.RPowConstant(-2)
    Traceback (most recent call last):
      ...
    ValueError: c ** x: the base must be positive or zero to differentiate, not -2
    """

    retain_inputs, retain_outputs = (), (0,)

    def __init__(self, c: Any) -> None:
        if not c >= 0:
            raise ValueError(f"c ** x: the base must be positive or zero to differentiate, not {c}")
        self.c = c

    def forward(self, x: Any) -> Any:
        if self.c == 0:  # exp(x * log(0)) is exp(-inf * 0) = NaN at x = 0, where 0 ** 0 = 1
            return self.xp.pow(self.xp.zeros_like(x), x)
        return self.xp.exp(x * math.log(self.c))

    def vjp(self, d, xs, ys, gys):
        if self.c == 0:
            # log(0) * 0 ** x: -inf where 0 ** x is inf (x < 0), else 0 (PyTorch's choice);
            # a constant of x, so its own gradient is 0
            xp, y = self.xp, array_of(ys[0])
            return gys[0] * xp.where(y > 1, xp.full_like(y, -math.inf), xp.zeros_like(y))
        return gys[0] * ys[0] * math.log(self.c)


def add(x0: Any, x1: Any) -> Variable:
    """x0 + x1 with broadcasting (``+`` on Variables).

    Parameters
    ----------
    x0, x1 : Variable, array or Python number
        Operands whose shapes broadcast together; a Python number is a constant (weak: a float32
        operand stays float32).

    Returns
    -------
    Variable
        The sum, of the broadcast shape. Each gradient is summed back to its input's shape.

    Raises
    ------
    TypeError
        If ``x0`` and ``x1`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([1.0, 2.0]))
    >>> y = F.add(x, backend.asarray([[10.0], [20.0]]))
    >>> y
    variable([[11. 12.]
              [21. 22.]])
    >>> y.backward()  # x was broadcast over two rows
    >>> x.grad
    variable([2. 2.])
    """
    if type(x1) in _PLAIN_NUMBERS:
        return AddConstant(x1)(x0)
    if not isinstance(x1, Variable) and _is_number(x1):
        return AddConstant(_scalar(x1))(x0)
    if not isinstance(x0, Variable) and _is_number(x0):
        return AddConstant(_scalar(x0))(x1)
    if x0 is None or x1 is None:
        _refuse_none("add (+)", x0, x1)
    return Add()(x0, x1)


def sub(x0: Any, x1: Any) -> Variable:
    """x0 - x1 with broadcasting (``-`` on Variables).

    Parameters
    ----------
    x0, x1 : Variable, array or Python number
        Operands whose shapes broadcast together; a Python number is a constant (weak: a float32
        operand stays float32).

    Returns
    -------
    Variable
        The difference, of the broadcast shape.

    Raises
    ------
    TypeError
        If ``x0`` and ``x1`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([5.0, 7.0]))
    >>> y = F.sub(10, x)
    >>> y.backward()
    >>> y, x.grad
    (variable([5. 3.]), variable([-1. -1.]))
    """
    if type(x1) in _PLAIN_NUMBERS:
        return AddConstant(-x1)(x0)
    if type(x0) in _PLAIN_NUMBERS:
        return RSubConstant(x0)(x1)
    if not isinstance(x1, Variable) and _is_number(x1):
        return AddConstant(-_scalar(x1))(x0)
    if not isinstance(x0, Variable) and _is_number(x0):
        return RSubConstant(_scalar(x0))(x1)
    if x0 is None or x1 is None:
        _refuse_none("sub (-)", x0, x1)
    return Sub()(x0, x1)


def rsub(x0: Any, x1: Any) -> Variable:
    """x1 - x0, DeZero's reflected subtraction (``x1 - x0`` when x1 is a number).

    Parameters
    ----------
    x0, x1 : Variable, array or Python number
        Operands whose shapes broadcast together; a Python number is a constant (weak: a float32
        operand stays float32).

    Returns
    -------
    Variable
        The difference ``x1 - x0``, of the broadcast shape.

    Raises
    ------
    TypeError
        If ``x0`` and ``x1`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.rsub(backend.asarray([1.0, 2.0]), 10.0)
    variable([9. 8.])
    """
    return sub(x1, x0)


def mul(x0: Any, x1: Any) -> Variable:
    """x0 * x1 with broadcasting (``*`` on Variables).

    Parameters
    ----------
    x0, x1 : Variable, array or Python number
        Operands whose shapes broadcast together; a Python number is a constant (weak: a float32
        operand stays float32).

    Returns
    -------
    Variable
        The product, of the broadcast shape.

    Raises
    ------
    TypeError
        If ``x0`` and ``x1`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([2.0, 3.0]))
    >>> y = F.mul(x, x)
    >>> y.backward()  # both operands are x: 2 x
    >>> y, x.grad
    (variable([4. 9.]), variable([4. 6.]))
    """
    if type(x1) in _PLAIN_NUMBERS:
        return MulConstant(x1)(x0)
    if not isinstance(x1, Variable) and _is_number(x1):
        return MulConstant(_scalar(x1))(x0)
    if not isinstance(x0, Variable) and _is_number(x0):
        return MulConstant(_scalar(x0))(x1)
    if x0 is None or x1 is None:
        _refuse_none("mul (*)", x0, x1)
    return Mul()(x0, x1)


def div(x0: Any, x1: Any) -> Variable:
    """x0 / x1 with broadcasting (``/`` on Variables).

    Parameters
    ----------
    x0, x1 : Variable, array or Python number
        Operands whose shapes broadcast together; a Python number is a constant (weak: a float32
        operand stays float32).

    Returns
    -------
    Variable
        The quotient, of the broadcast shape.

    Raises
    ------
    TypeError
        If ``x0`` and ``x1`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([2.0, 4.0]))
    >>> y = F.div(x, 2)
    >>> y.backward()
    >>> y, x.grad
    (variable([1. 2.]), variable([0.5 0.5]))
    """
    if type(x1) in _PLAIN_NUMBERS:
        return DivConstant(x1)(x0)
    if not isinstance(x1, Variable) and _is_number(x1):
        return DivConstant(_scalar(x1))(x0)
    if not isinstance(x0, Variable) and _is_number(x0):
        return RDivConstant(_scalar(x0))(x1)
    if x0 is None or x1 is None:
        _refuse_none("div (/)", x0, x1)
    return Div()(x0, x1)


def rdiv(x0: Any, x1: Any) -> Variable:
    """x1 / x0, DeZero's reflected division (``x1 / x0`` when x1 is a number).

    Parameters
    ----------
    x0, x1 : Variable, array or Python number
        Operands whose shapes broadcast together; a Python number is a constant (weak: a float32
        operand stays float32).

    Returns
    -------
    Variable
        The quotient ``x1 / x0``, of the broadcast shape.

    Raises
    ------
    TypeError
        If ``x0`` and ``x1`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([2.0, 4.0]))
    >>> y = F.rdiv(x, 1.0)
    >>> y.backward()
    >>> y, x.grad
    (variable([0.5  0.25]), variable([-0.25   -0.0625]))
    """
    return div(x1, x0)


def neg(x: Any) -> Variable:
    """-x (unary ``-`` on Variables).

    Parameters
    ----------
    x : Variable or array
        Input of any shape.

    Returns
    -------
    Variable
        ``-x``, of ``x``'s shape and dtype.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([1.0, -2.0]))
    >>> y = F.neg(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([-1.  2.]), variable([-1. -1.]))
    """
    return Neg()(x)


def pow(x: Any, c: Any) -> Variable:  # noqa: A001 - DeZero's name
    """x ** c for a constant number exponent ``c`` (``**`` on Variables).

    Parameters
    ----------
    x : Variable or array
        The base, of any shape.
    c : int or float
        The exponent, a Python number (or a NumPy-style scalar); it gets no gradient.

    Returns
    -------
    Variable
        ``x ** c``, of ``x``'s shape; its gradient is ``c * x ** (c - 1)`` (0 for ``c = 0``, also
        at ``x = 0``).

    Raises
    ------
    TypeError
        If ``c`` is a Variable or an array: a variable exponent is not differentiable here.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([2.0, 3.0]))
    >>> y = F.pow(x, 3)
    >>> y.backward()
    >>> y, x.grad
    (variable([ 8. 27.]), variable([12. 27.]))
    >>> F.pow(x, x)
    Traceback (most recent call last):
      ...
    TypeError: pow: the exponent must be a Python number, not Variable ...
    """
    if type(c) in _PLAIN_NUMBERS:
        return Pow(c)(x)
    if isinstance(c, Variable) or not _is_number(c):
        raise TypeError(
            f"pow: the exponent must be a Python number, not {type(c).__name__} "
            "(a Variable exponent is not differentiable here)"
        )
    return Pow(_scalar(c))(x)


def rpow(x: Any, c: Any) -> Variable:
    """c ** x for a constant number base ``c >= 0`` (``2 ** x`` on Variables).

    Parameters
    ----------
    x : Variable or array
        The exponent, of any shape.
    c : int or float
        The base, a Python number ``>= 0``.

    Returns
    -------
    Variable
        ``c ** x``, of ``x``'s shape; its gradient is ``log(c) * c ** x`` (for ``c = 0``: 0 where
        ``x >= 0``, ``-inf`` where ``x < 0``, as PyTorch).

    Raises
    ------
    TypeError
        If ``c`` is not a number (a Variable or an array).
    ValueError
        If ``c < 0``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([0.0, 3.0]))
    >>> y = F.rpow(x, 2)
    >>> y
    variable([1. 8.])
    >>> y.backward()
    >>> agrad.cuda.as_numpy(x.grad).round(4)  # log(2) * 2 ** x
    array([0.6931, 5.5452])
    """
    if isinstance(c, Variable) or not _is_number(c):
        raise TypeError(f"rpow: the base must be a Python number, not {type(c).__name__}")
    return RPowConstant(_scalar(c))(x)


def square(x: Any) -> Variable:
    """x ** 2.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.

    Returns
    -------
    Variable
        ``x ** 2``, of ``x``'s shape and dtype; its gradient is ``2 x``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([-1.0, 3.0]))
    >>> y = F.square(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([1. 9.]), variable([-2.  6.]))
    """
    return Pow(2)(x)
