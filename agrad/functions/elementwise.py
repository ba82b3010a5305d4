"""Elementwise mathematical functions."""

from __future__ import annotations

from typing import Any

from agrad.core import Function, Variable, _is_number, array_of
from agrad.functions.arithmetic import _unbroadcast

__all__ = [
    "Sin",
    "Cos",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "Abs",
    "Sign",
    "Maximum",
    "Minimum",
    "Where",
    "Clip",
    "sin",
    "cos",
    "tanh",
    "exp",
    "log",
    "sqrt",
    "abs",
    "sign",
    "maximum",
    "minimum",
    "where",
    "clip",
]


class Sin(Function):
    """sin(x)."""

    retain_inputs, retain_outputs = (0,), ()

    def forward(self, x: Any) -> Any:
        return self.xp.sin(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * d.cos(xs[0])


class Cos(Function):
    """cos(x)."""

    retain_inputs, retain_outputs = (0,), ()

    def forward(self, x: Any) -> Any:
        return self.xp.cos(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * -d.sin(xs[0])


class Tanh(Function):
    """tanh(x); the gradient uses the output."""

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        return self.xp.tanh(x)

    def vjp(self, d, xs, ys, gys):
        y = ys[0]
        return gys[0] * (1 - y * y)


class Exp(Function):
    """exp(x); the gradient uses the output."""

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        return self.xp.exp(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * ys[0]


class Log(Function):
    """Natural logarithm."""

    retain_inputs, retain_outputs = (0,), ()

    def forward(self, x: Any) -> Any:
        return self.xp.log(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] / xs[0]


class Sqrt(Function):
    """Square root; the gradient uses the output."""

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        return self.xp.sqrt(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] / (2 * ys[0])


class Abs(Function):
    """|x|; the gradient at 0 is 0 (the sign of x)."""

    retain_inputs, retain_outputs = (0,), ()

    def forward(self, x: Any) -> Any:
        return self.xp.abs(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * self.xp.sign(array_of(xs[0]))


class Sign(Function):
    """sign(x): -1, 0 or 1; piecewise constant, so its gradient is zero."""

    retain_inputs = retain_outputs = ()

    def forward(self, x: Any) -> Any:
        return self.xp.sign(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * 0


def _select_masks(xp: Any, first_wins: Any, tie: Any, dtype: Any) -> tuple[Any, Any]:
    """Float masks sharing a gradient between two inputs; ties split it evenly (as finite
    differences do at a kink)."""
    half = xp.astype(tie, dtype) * 0.5
    first = xp.astype(first_wins, dtype) + half
    return first, 1 - first


class Maximum(Function):
    """Elementwise max(x0, x1) with broadcasting; at ties each input gets half the gradient."""

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return self.xp.maximum(x0, x1)

    def vjp(self, d, xs, ys, gys):
        a, b = array_of(xs[0]), array_of(xs[1])
        m0, m1 = _select_masks(self.xp, a > b, a == b, gys[0].dtype)
        gy = gys[0]
        return _unbroadcast(d, gy * m0, xs[0].shape), _unbroadcast(d, gy * m1, xs[1].shape)


class Minimum(Function):
    """Elementwise min(x0, x1) with broadcasting; at ties each input gets half the gradient."""

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return self.xp.minimum(x0, x1)

    def vjp(self, d, xs, ys, gys):
        a, b = array_of(xs[0]), array_of(xs[1])
        m0, m1 = _select_masks(self.xp, a < b, a == b, gys[0].dtype)
        gy = gys[0]
        return _unbroadcast(d, gy * m0, xs[0].shape), _unbroadcast(d, gy * m1, xs[1].shape)


class Where(Function):
    """``x0`` where ``condition`` holds, else ``x1`` (broadcasting); the condition is a constant."""

    retain_inputs, retain_outputs, retain_attributes = (), (), ("condition",)

    def __init__(self, condition: Any) -> None:
        self.condition = condition.data if isinstance(condition, Variable) else condition

    def forward(self, x0: Any, x1: Any) -> Any:
        from agrad.backends import backend_of

        xp = self.xp
        condition = self.condition
        if _is_number(condition) or backend_of(condition, None) is None:
            condition = xp.asarray(condition, dtype=xp.bool)
        elif backend_of(condition).xp is not xp:
            condition = backend_of(x0).asarray(condition)
        self.condition = condition
        return xp.where(condition, x0, x1)

    def vjp(self, d, xs, ys, gys):
        gy = gys[0]
        chosen = self.xp.astype(self.condition, gy.dtype)
        return _unbroadcast(d, gy * chosen, xs[0].shape), _unbroadcast(
            d, gy * (1 - chosen), xs[1].shape
        )


class Clip(Function):
    """Clip ``x`` to [x_min, x_max]; the gradient flows where x_min <= x <= x_max (DeZero)."""

    retain_inputs, retain_outputs = (0,), ()

    def __init__(self, x_min: Any, x_max: Any) -> None:
        self.x_min = x_min
        self.x_max = x_max

    def forward(self, x: Any) -> Any:
        return self.xp.clip(x, self.x_min, self.x_max)

    def vjp(self, d, xs, ys, gys):
        x = array_of(xs[0])
        inside = self.xp.ones_like(x, dtype=self.xp.bool)
        if self.x_min is not None:
            inside = inside & (x >= self.x_min)
        if self.x_max is not None:
            inside = inside & (x <= self.x_max)
        return gys[0] * self.xp.astype(inside, gys[0].dtype)


def sin(x: Any) -> Variable:
    """Elementwise sine."""
    return Sin()(x)


def cos(x: Any) -> Variable:
    """Elementwise cosine."""
    return Cos()(x)


def tanh(x: Any) -> Variable:
    """Elementwise hyperbolic tangent."""
    return Tanh()(x)


def exp(x: Any) -> Variable:
    """Elementwise exponential."""
    return Exp()(x)


def log(x: Any) -> Variable:
    """Elementwise natural logarithm."""
    return Log()(x)


def sqrt(x: Any) -> Variable:
    """Elementwise square root."""
    return Sqrt()(x)


def abs(x: Any) -> Variable:  # noqa: A001 - the Array API's name
    """Elementwise absolute value."""
    return Abs()(x)


def sign(x: Any) -> Variable:
    """Elementwise sign (-1, 0, 1); its gradient is zero."""
    return Sign()(x)


def maximum(x0: Any, x1: Any) -> Variable:
    """Elementwise maximum with broadcasting; either side may be a Python number."""
    return Maximum()(x0, x1)


def minimum(x0: Any, x1: Any) -> Variable:
    """Elementwise minimum with broadcasting; either side may be a Python number."""
    return Minimum()(x0, x1)


def where(condition: Any, x0: Any, x1: Any) -> Variable:
    """``x0`` where the boolean ``condition`` holds, else ``x1``; differentiable in x0 and x1."""
    return Where(condition)(x0, x1)


def clip(x: Any, x_min: Any, x_max: Any) -> Variable:
    """Clip values to [x_min, x_max] (DeZero); either bound may be None."""
    return Clip(x_min, x_max)(x)
