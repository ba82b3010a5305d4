"""Elementwise mathematical functions."""

from __future__ import annotations

from typing import Any

from agrad.core import Function, Variable

__all__ = [
    "Sin",
    "Cos",
    "Tanh",
    "Exp",
    "Log",
    "Sqrt",
    "sin",
    "cos",
    "tanh",
    "exp",
    "log",
    "sqrt",
]


class Sin(Function):
    """sin(x)."""

    def forward(self, x: Any) -> Any:
        return self.xp.sin(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * d.cos(xs[0])


class Cos(Function):
    """cos(x)."""

    def forward(self, x: Any) -> Any:
        return self.xp.cos(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * -d.sin(xs[0])


class Tanh(Function):
    """tanh(x); the gradient uses the output."""

    def forward(self, x: Any) -> Any:
        return self.xp.tanh(x)

    def vjp(self, d, xs, ys, gys):
        y = ys[0]
        return gys[0] * (1 - y * y)


class Exp(Function):
    """exp(x); the gradient uses the output."""

    def forward(self, x: Any) -> Any:
        return self.xp.exp(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * ys[0]


class Log(Function):
    """Natural logarithm."""

    def forward(self, x: Any) -> Any:
        return self.xp.log(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] / xs[0]


class Sqrt(Function):
    """Square root; the gradient uses the output."""

    def forward(self, x: Any) -> Any:
        return self.xp.sqrt(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] / (2 * ys[0])


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
