"""Activation functions: sigmoid, ReLU, leaky ReLU, softmax and log-softmax (DeZero's set)."""

from __future__ import annotations

from typing import Any

from agrad import ops
from agrad.core import Function, Variable, array_of, as_variable
from agrad.functions.arithmetic import div
from agrad.functions.elementwise import exp
from agrad.functions.reduction import sum as _sum

__all__ = [
    "Sigmoid",
    "ReLU",
    "LeakyReLU",
    "Softmax",
    "LogSoftmax",
    "sigmoid",
    "sigmoid_simple",
    "relu",
    "leaky_relu",
    "softmax",
    "softmax_simple",
    "log_softmax",
]


def _sigmoid_array(xp: Any, x: Any) -> Any:
    # tanh saturates instead of overflowing, so ±1000 gives exactly 0 and 1
    return xp.tanh(x * 0.5) * 0.5 + 0.5


def _softmax_array(xp: Any, x: Any, axis: Any = 1) -> Any:
    # shifting by the max keeps exp() from overflowing; the result is unchanged
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _logsumexp_array(xp: Any, x: Any, axis: Any) -> Any:
    m = xp.max(x, axis=axis, keepdims=True)
    return m + xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))


@ops.array_twin("sigmoid")
def _sigmoid_twin(xp: Any, x: Any) -> Any:
    return _sigmoid_array(xp, x)


@ops.array_twin("softmax")
def _softmax_twin(xp: Any, x: Any, axis: Any = 1) -> Any:
    return _softmax_array(xp, x, axis)


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


class Sigmoid(Function):
    """1 / (1 + exp(-x)), computed as tanh(x/2)/2 + 1/2; the gradient uses the output."""

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        return _sigmoid_array(self.xp, x)

    def vjp(self, d, xs, ys, gys):
        y = ys[0]
        return gys[0] * y * (1 - y)


class ReLU(Function):
    """max(x, 0); the gradient passes where x > 0 (where the output is, NaN included)."""

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        # maximum (not where) so that NaN propagates, as in DeZero
        return self.xp.maximum(x, self.xp.zeros_like(x))

    def vjp(self, d, xs, ys, gys):
        y = array_of(ys[0])
        return gys[0] * self.xp.astype(y > 0, y.dtype)


class LeakyReLU(Function):
    """x where x > 0, else ``slope * x``."""

    retain_inputs, retain_outputs = (0,), ()

    def __init__(self, slope: float = 0.2) -> None:
        self.slope = slope

    def forward(self, x: Any) -> Any:
        return self.xp.where(x > 0, x, x * self.slope)

    def vjp(self, d, xs, ys, gys):
        x = array_of(xs[0])
        xp = self.xp
        factor = xp.where(x > 0, xp.ones_like(x), xp.full_like(x, self.slope))
        return gys[0] * factor


class Softmax(Function):
    """exp(x) / sum(exp(x), axis), shifted by the max so that it never overflows."""

    retain_inputs, retain_outputs = (), (0,)

    def __init__(self, axis: Any = 1) -> None:
        self.axis = _axis(axis)

    def forward(self, x: Any) -> Any:
        return _softmax_array(self.xp, x, self.axis)

    def vjp(self, d, xs, ys, gys):
        y = ys[0]
        y_gy = y * gys[0]
        return y_gy - y * d.sum(y_gy, axis=self.axis, keepdims=True)


class LogSoftmax(Function):
    """x - logsumexp(x, axis), stable for large logits."""

    retain_inputs, retain_outputs = (), (0,)

    def __init__(self, axis: Any = 1) -> None:
        self.axis = _axis(axis)

    def forward(self, x: Any) -> Any:
        return x - _logsumexp_array(self.xp, x, self.axis)

    def vjp(self, d, xs, ys, gys):
        gy = gys[0]
        # softmax(x) is exp of the output, so the graph path differentiates through it again
        return gy - d.exp(ys[0]) * d.sum(gy, axis=self.axis, keepdims=True)


def sigmoid(x: Any) -> Variable:
    """Logistic sigmoid, finite for any finite input."""
    return Sigmoid()(x)


def sigmoid_simple(x: Any) -> Variable:
    """Sigmoid composed from ``exp`` and arithmetic (DeZero's version; overflows for x << 0)."""
    x = as_variable(x)
    return 1 / (1 + exp(-x))


def relu(x: Any) -> Variable:
    """Rectified linear unit, max(x, 0)."""
    return ReLU()(x)


def leaky_relu(x: Any, slope: float = 0.2) -> Variable:
    """Leaky ReLU: x for x > 0, ``slope * x`` otherwise."""
    return LeakyReLU(slope)(x)


def softmax(x: Any, axis: Any = 1) -> Variable:
    """Softmax over ``axis`` (max-shifted, stable)."""
    return Softmax(axis)(x)


def softmax_simple(x: Any, axis: Any = 1) -> Variable:
    """Softmax composed from ``exp``, ``sum`` and division (DeZero's version; not shifted)."""
    x = as_variable(x)
    y = exp(x)
    return div(y, _sum(y, axis=_axis(axis), keepdims=True))


def log_softmax(x: Any, axis: Any = 1) -> Variable:
    """log(softmax(x)) over ``axis``, computed as x - logsumexp(x)."""
    return LogSoftmax(axis)(x)
