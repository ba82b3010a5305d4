"""Arithmetic: the functions behind ``+ - * / ** neg`` (broadcasting-aware gradients)."""

from __future__ import annotations

import math
from typing import Any

from agrad.core import Function, Variable, _is_number, _scalar


def _unbroadcast(d: Any, g: Any, shape: tuple[int, ...]) -> Any:
    return g if g.shape == shape else d.sum_to(g, shape)


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
    """x0 + x1."""

    retain_inputs = retain_outputs = ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 + x1

    def vjp(self, d, xs, ys, gys):
        (gy,) = gys
        gx0 = _unbroadcast(d, gy, xs[0].shape) if self.needs_input_grad(0) else None
        gx1 = _unbroadcast(d, gy, xs[1].shape) if self.needs_input_grad(1) else None
        return gx0, gx1


class Sub(Function):
    """x0 - x1."""

    retain_inputs = retain_outputs = ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 - x1

    def vjp(self, d, xs, ys, gys):
        (gy,) = gys
        gx0 = _unbroadcast(d, gy, xs[0].shape) if self.needs_input_grad(0) else None
        gx1 = _unbroadcast(d, -gy, xs[1].shape) if self.needs_input_grad(1) else None
        return gx0, gx1


class Mul(Function):
    """x0 * x1."""

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 * x1

    def vjp(self, d, xs, ys, gys):
        (gy,), (x0, x1) = gys, xs
        gx0 = _unbroadcast(d, gy * x1, x0.shape) if self.needs_input_grad(0) else None
        gx1 = _unbroadcast(d, gy * x0, x1.shape) if self.needs_input_grad(1) else None
        return gx0, gx1


class Div(Function):
    """x0 / x1."""

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return x0 / x1

    def vjp(self, d, xs, ys, gys):
        (gy,), (x0, x1) = gys, xs
        gx0 = gy / x1
        gx1 = _unbroadcast(d, -gx0 * x0 / x1, x1.shape) if self.needs_input_grad(1) else None
        return _unbroadcast(d, gx0, x0.shape) if self.needs_input_grad(0) else None, gx1


class Neg(Function):
    """-x."""

    retain_inputs = retain_outputs = ()

    def forward(self, x: Any) -> Any:
        return -x

    def vjp(self, d, xs, ys, gys):
        return -gys[0]


class Pow(Function):
    """x ** c for a constant exponent ``c``."""

    retain_inputs, retain_outputs = (0,), ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x**self.c

    def vjp(self, d, xs, ys, gys):
        (x,), c = xs, self.c
        return gys[0] * (c * x ** (c - 1))


# A Python number as the other operand: one input, so no gradient is computed for the constant.
class AddConstant(Function):
    """x + c."""

    retain_inputs = retain_outputs = ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x + self.c

    def vjp(self, d, xs, ys, gys):
        return gys[0]


class MulConstant(Function):
    """x * c."""

    retain_inputs = retain_outputs = ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x * self.c

    def vjp(self, d, xs, ys, gys):
        return gys[0] * self.c


class DivConstant(Function):
    """x / c."""

    retain_inputs = retain_outputs = ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return x / self.c

    def vjp(self, d, xs, ys, gys):
        return gys[0] / self.c


class RSubConstant(Function):
    """c - x."""

    retain_inputs = retain_outputs = ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return self.c - x

    def vjp(self, d, xs, ys, gys):
        return -gys[0]


class RDivConstant(Function):
    """c / x."""

    retain_inputs, retain_outputs = (0,), ()

    def __init__(self, c: Any) -> None:
        self.c = c

    def forward(self, x: Any) -> Any:
        return self.c / x

    def vjp(self, d, xs, ys, gys):
        (x,) = xs
        return gys[0] * (-self.c / (x * x))


class RPowConstant(Function):
    """c ** x for a constant base ``c``; the gradient uses the output."""

    retain_inputs, retain_outputs = (), (0,)

    def __init__(self, c: Any) -> None:
        if c <= 0:
            raise ValueError(
                f"c ** x: the base must be a positive number to differentiate, not {c}"
            )
        self.c = c

    def forward(self, x: Any) -> Any:
        return self.xp.exp(x * math.log(self.c))

    def vjp(self, d, xs, ys, gys):
        return gys[0] * ys[0] * math.log(self.c)


def add(x0: Any, x1: Any) -> Variable:
    """x0 + x1 with broadcasting."""
    if not isinstance(x1, Variable) and _is_number(x1):
        return AddConstant(_scalar(x1))(x0)
    if not isinstance(x0, Variable) and _is_number(x0):
        return AddConstant(_scalar(x0))(x1)
    return Add()(x0, x1)


def sub(x0: Any, x1: Any) -> Variable:
    """x0 - x1 with broadcasting."""
    if not isinstance(x1, Variable) and _is_number(x1):
        return AddConstant(-_scalar(x1))(x0)
    if not isinstance(x0, Variable) and _is_number(x0):
        return RSubConstant(_scalar(x0))(x1)
    return Sub()(x0, x1)


def rsub(x0: Any, x1: Any) -> Variable:
    """x1 - x0 (DeZero's reflected subtraction)."""
    return sub(x1, x0)


def mul(x0: Any, x1: Any) -> Variable:
    """x0 * x1 with broadcasting."""
    if not isinstance(x1, Variable) and _is_number(x1):
        return MulConstant(_scalar(x1))(x0)
    if not isinstance(x0, Variable) and _is_number(x0):
        return MulConstant(_scalar(x0))(x1)
    return Mul()(x0, x1)


def div(x0: Any, x1: Any) -> Variable:
    """x0 / x1 with broadcasting."""
    if not isinstance(x1, Variable) and _is_number(x1):
        return DivConstant(_scalar(x1))(x0)
    if not isinstance(x0, Variable) and _is_number(x0):
        return RDivConstant(_scalar(x0))(x1)
    return Div()(x0, x1)


def rdiv(x0: Any, x1: Any) -> Variable:
    """x1 / x0 (DeZero's reflected division)."""
    return div(x1, x0)


def neg(x: Any) -> Variable:
    """-x."""
    return Neg()(x)


def pow(x: Any, c: Any) -> Variable:  # noqa: A001 - DeZero's name
    """x ** c; the exponent must be a constant number."""
    if isinstance(c, Variable) or not _is_number(c):
        raise TypeError(
            f"pow: the exponent must be a Python number, not {type(c).__name__} "
            "(a Variable exponent is not differentiable here)"
        )
    return Pow(_scalar(c))(x)


def rpow(x: Any, c: Any) -> Variable:
    """c ** x for a positive constant number ``c`` (``2 ** x``)."""
    if isinstance(c, Variable) or not _is_number(c):
        raise TypeError(f"rpow: the base must be a Python number, not {type(c).__name__}")
    return RPowConstant(_scalar(c))(x)


def square(x: Any) -> Variable:
    """x ** 2."""
    return Pow(2)(x)
