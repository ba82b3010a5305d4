"""Activation functions: sigmoid, ReLU, leaky ReLU, softmax and log-softmax (DeZero's set)."""

from __future__ import annotations

import numbers
from typing import Any

from agrad import ops
from agrad.core import Function, Variable, array_of, as_variable
from agrad.functions._axes import AxisError, check_axes
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


def _softmax_array(xp: Any, x: Any, axis: Any = 1) -> Any:
    # shifting by the max keeps exp() from overflowing; the result is unchanged
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _logsumexp_array(xp: Any, x: Any, axis: Any) -> Any:
    m = xp.max(x, axis=axis, keepdims=True)
    return m + xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))


@ops.array_twin("softmax")
def _softmax_twin(xp: Any, x: Any, axis: Any = 1) -> Any:
    return _softmax_array(xp, x, axis)


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def _check_softmax_axis(func: str, axis: Any, ndim: int) -> Any:
    try:
        axes = check_axes(func, axis, ndim)
    except AxisError as error:
        if ndim == 1 and axis == 1:  # DeZero's default meets a single sample
            raise AxisError(
                f"{error}; the default axis=1 is for a batch of rows: pass axis=0 (or -1) for a "
                "1-D input"
            ) from None
        raise
    return axes


class Sigmoid(Function):
    """Logistic sigmoid node, 1 / (1 + exp(-x)), computed so that it never overflows.

    The function behind :func:`sigmoid`, called as ``Sigmoid()(x)``. Its backward reads only the
    output: the gradient is ``gy * y * (1 - y)``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([0.0]))
    >>> y = F.Sigmoid()(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([0.5]), variable([0.25]))
    """

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        return self.backend.sigmoid(x)  # each library's fastest form that cannot overflow

    def vjp(self, d, xs, ys, gys):
        y = ys[0]
        return gys[0] * y * (1.0 - y)  # 1.0, not 1: NumPy 2 is ~0.5 µs slower on an int


class ReLU(Function):
    """Rectified linear unit node, max(x, 0) (NaN stays NaN).

    The function behind :func:`relu`, called as ``ReLU()(x)``. Its backward reads only the
    output: the gradient passes where the output is > 0 and is 0 elsewhere (at 0 and NaN too).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([-1.0, 2.0]))
    >>> y = F.ReLU()(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([0. 2.]), variable([0. 1.]))
    """

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        # maximum (not where) so that NaN propagates, as in DeZero
        return self.xp.maximum(x, self.xp.zeros_like(x))

    def vjp(self, d, xs, ys, gys):
        y = array_of(ys[0])
        return gys[0] * self.xp.astype(y > 0, y.dtype)


class LeakyReLU(Function):
    """Leaky ReLU node: x where x > 0, else ``slope * x``.

    The function behind :func:`leaky_relu`, called as ``LeakyReLU(slope)(x)``.

    Parameters
    ----------
    slope : float, default 0.2
        The factor for inputs <= 0; it is also their gradient (at 0 included).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([-1.0, 2.0]))
    >>> y = F.LeakyReLU(0.5)(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([-0.5  2. ]), variable([0.5 1. ]))
    """

    retain_inputs, retain_outputs = (0,), ()

    def __init__(self, slope: float = 0.2) -> None:
        if isinstance(slope, bool) or not isinstance(slope, numbers.Real):
            raise TypeError(f"leaky_relu: slope must be a real number, not {slope!r}")
        self.slope = float(slope)

    def forward(self, x: Any) -> Any:
        return self.xp.where(x > 0, x, x * self.slope)

    def vjp(self, d, xs, ys, gys):
        x = array_of(xs[0])
        xp = self.xp
        factor = xp.where(x > 0, xp.ones_like(x), xp.full_like(x, self.slope))
        return gys[0] * factor


class Softmax(Function):
    """Softmax node, exp(x) / sum(exp(x), axis), shifted by the max so that it never overflows.

    The function behind :func:`softmax`, called as ``Softmax(axis)(x)``; its backward reads only
    the output.

    Parameters
    ----------
    axis : int or tuple of int, default 1
        The axes normalised over (a list is taken as a tuple).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([[1000.0, 1000.0]]))
    >>> F.Softmax(axis=1)(x)
    variable([[0.5 0.5]])
    """

    retain_inputs, retain_outputs = (), (0,)

    def __init__(self, axis: Any = 1) -> None:
        self.axis = _axis(axis)

    def forward(self, x: Any) -> Any:
        self.axis = _check_softmax_axis("softmax", self.axis, x.ndim)
        return _softmax_array(self.xp, x, self.axis)

    def vjp(self, d, xs, ys, gys):
        y = ys[0]
        y_gy = y * gys[0]
        return y_gy - y * d.sum(y_gy, axis=self.axis, keepdims=True)


class LogSoftmax(Function):
    """Log-softmax node, x - logsumexp(x, axis), stable for large logits.

    The function behind :func:`log_softmax`, called as ``LogSoftmax(axis)(x)``; its backward
    reads only the output.

    Parameters
    ----------
    axis : int or tuple of int, default 1
        The axes normalised over (a list is taken as a tuple).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([[1000.0, 1000.0]]))
    >>> agrad.cuda.as_numpy(F.LogSoftmax(axis=1)(x)).round(4)
    array([[-0.6931, -0.6931]])
    """

    retain_inputs, retain_outputs = (), (0,)

    def __init__(self, axis: Any = 1) -> None:
        self.axis = _axis(axis)

    def forward(self, x: Any) -> Any:
        self.axis = _check_softmax_axis("log_softmax", self.axis, x.ndim)
        return x - _logsumexp_array(self.xp, x, self.axis)

    def vjp(self, d, xs, ys, gys):
        gy = gys[0]
        # softmax(x) is exp of the output, so the graph path differentiates through it again
        return gy - d.exp(ys[0]) * d.sum(gy, axis=self.axis, keepdims=True)


def sigmoid(x: Any) -> Variable:
    """Logistic sigmoid, 1 / (1 + exp(-x)), finite for any finite input.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``sigmoid(x)``, of ``x``'s shape and dtype; exactly 0 and 1 where it saturates.

    See Also
    --------
    sigmoid_simple : DeZero's composite version, which overflows for x far below 0.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([-1000.0, 0.0, 1000.0]))
    >>> y = F.sigmoid(x)
    >>> y
    variable([0.  0.5 1. ])
    >>> F.sum(y).backward()
    >>> x.grad
    variable([0.   0.25 0.  ])
    """
    return Sigmoid()(x)


def sigmoid_simple(x: Any) -> Variable:
    """Sigmoid composed from ``exp`` and arithmetic, ``1 / (1 + exp(-x))`` (DeZero's version).

    It builds four graph nodes instead of one, and ``exp(-x)`` overflows for x far below 0, where
    the gradient becomes NaN; prefer :func:`sigmoid`.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``sigmoid(x)``, of ``x``'s shape and dtype.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([0.0]))
    >>> y = F.sigmoid_simple(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([0.5]), variable([0.25]))
    """
    x = as_variable(x)
    return 1 / (1 + exp(-x))


def relu(x: Any) -> Variable:
    """Rectified linear unit, max(x, 0).

    Parameters
    ----------
    x : Variable or array
        Input of any shape; NaN stays NaN.

    Returns
    -------
    Variable
        ``max(x, 0)``, of ``x``'s shape and dtype. Its gradient is 1 where the output is > 0 and
        0 elsewhere (0 at x = 0).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([-1.0, 0.0, 2.0]))
    >>> y = F.relu(x)
    >>> y
    variable([0. 0. 2.])
    >>> F.sum(y).backward()
    >>> x.grad
    variable([0. 0. 1.])
    """
    return ReLU()(x)


def leaky_relu(x: Any, slope: float = 0.2) -> Variable:
    """Leaky ReLU: x for x > 0, ``slope * x`` otherwise.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    slope : float, default 0.2
        The factor for inputs <= 0, and their gradient.

    Returns
    -------
    Variable
        Of ``x``'s shape and dtype.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([-1.0, 2.0]))
    >>> y = F.leaky_relu(x)
    >>> y
    variable([-0.2  2. ])
    >>> F.sum(y).backward()
    >>> x.grad
    variable([0.2 1. ])
    """
    return LeakyReLU(slope)(x)


def softmax(x: Any, axis: Any = 1) -> Variable:
    """Softmax over ``axis``, shifted by the max so that large logits do not overflow.

    Parameters
    ----------
    x : Variable or array
        Floating-point logits, such as a batch of shape (N, C).
    axis : int or tuple of int, default 1
        The axes normalised over (DeZero's default: each row of a batch).

    Returns
    -------
    Variable
        Of ``x``'s shape and dtype; its entries sum to 1 along ``axis``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([[0.0, 0.0], [1000.0, 1000.0]]))
    >>> y = F.softmax(x)
    >>> y
    variable([[0.5 0.5]
              [0.5 0.5]])
    >>> y[0, 0].backward()  # d y[0, 0] / d x[0] = (y0 (1 - y0), -y0 y1)
    >>> x.grad
    variable([[ 0.25 -0.25]
              [ 0.    0.  ]])
    """
    return Softmax(axis)(x)


def softmax_simple(x: Any, axis: Any = 1) -> Variable:
    """Softmax composed from ``exp``, ``sum`` and division (DeZero's version; not shifted).

    ``exp(x)`` overflows for large logits (about 710 in float64, 89 in float32), giving NaN;
    prefer :func:`softmax`.

    Parameters
    ----------
    x : Variable or array
        Floating-point logits, such as a batch of shape (N, C).
    axis : int or tuple of int, default 1
        The axes normalised over.

    Returns
    -------
    Variable
        Of ``x``'s shape and dtype; its entries sum to 1 along ``axis``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([[0.0, 0.0]]))
    >>> y = F.softmax_simple(x)
    >>> y[0, 0].backward()
    >>> y, x.grad
    (variable([[0.5 0.5]]), variable([[ 0.25 -0.25]]))
    """
    x = as_variable(x)
    y = exp(x)
    return div(y, _sum(y, axis=_axis(axis), keepdims=True))


def log_softmax(x: Any, axis: Any = 1) -> Variable:
    """log(softmax(x)) over ``axis``, computed as x - logsumexp(x), stable for large logits.

    Parameters
    ----------
    x : Variable or array
        Floating-point logits, such as a batch of shape (N, C).
    axis : int or tuple of int, default 1
        The axes normalised over.

    Returns
    -------
    Variable
        Of ``x``'s shape and dtype. The gradient is ``gy - softmax(x) * sum(gy, axis)``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([[0.0, 0.0], [1000.0, 1000.0]]))
    >>> y = F.log_softmax(x)
    >>> agrad.cuda.as_numpy(y).round(4)
    array([[-0.6931, -0.6931],
           [-0.6931, -0.6931]])
    >>> y[0, 0].backward()
    >>> x.grad
    variable([[ 0.5 -0.5]
              [ 0.   0. ]])
    """
    return LogSoftmax(axis)(x)
