"""Elementwise mathematical functions."""

from __future__ import annotations

from numbers import Real
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
    """Sine node; its backward reads the input (``cos(x)``).

    Called as ``Sin()(x)``; the function behind :func:`sin`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Sin()(backend.asarray([0.0]))
    variable([0.])
    """

    retain_inputs, retain_outputs = (0,), ()

    def forward(self, x: Any) -> Any:
        return self.xp.sin(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * d.cos(xs[0])


class Cos(Function):
    """Cosine node; its backward reads the input (``-sin(x)``).

    Called as ``Cos()(x)``; the function behind :func:`cos`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Cos()(backend.asarray([0.0]))
    variable([1.])
    """

    retain_inputs, retain_outputs = (0,), ()

    def forward(self, x: Any) -> Any:
        return self.xp.cos(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * -d.sin(xs[0])


class Tanh(Function):
    """Hyperbolic tangent node; its backward reads the output (``1 - y**2``).

    Called as ``Tanh()(x)``; the function behind :func:`tanh`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Tanh()(backend.asarray([0.0]))
    variable([0.])
    """

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        return self.xp.tanh(x)

    def vjp(self, d, xs, ys, gys):
        y = ys[0]
        return gys[0] * (1.0 - y * y)  # 1.0, not 1: NumPy 2 is ~0.5 µs slower on an int


class Exp(Function):
    """Exponential node; its backward reads the output (the gradient is ``gy * y``).

    Called as ``Exp()(x)``; the function behind :func:`exp`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Exp()(backend.asarray([0.0]))
    variable([1.])
    """

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        return self.xp.exp(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * ys[0]


class Log(Function):
    """Natural logarithm node; its backward reads the input (``gy / x``).

    Called as ``Log()(x)``; the function behind :func:`log`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Log()(backend.asarray([1.0]))
    variable([0.])
    """

    retain_inputs, retain_outputs = (0,), ()

    def forward(self, x: Any) -> Any:
        return self.xp.log(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] / xs[0]


class Sqrt(Function):
    """Square root node; its backward reads the output (``gy / (2 y)``).

    Called as ``Sqrt()(x)``; the function behind :func:`sqrt`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Sqrt()(backend.asarray([4.0]))
    variable([2.])
    """

    retain_inputs, retain_outputs = (), (0,)

    def forward(self, x: Any) -> Any:
        return self.xp.sqrt(x)

    def vjp(self, d, xs, ys, gys):
        y = ys[0]
        return gys[0] / (y + y)  # exactly 2 * y, without NumPy 2's ~1 µs on an int scalar


class Abs(Function):
    """Absolute value node; the gradient is ``gy * sign(x)``, so 0 at x = 0.

    Called as ``Abs()(x)``; the function behind :func:`abs`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Abs()(backend.asarray([-3.0]))
    variable([3.])
    """

    retain_inputs, retain_outputs = (0,), ()

    def forward(self, x: Any) -> Any:
        return self.xp.abs(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * self.xp.sign(array_of(xs[0]))


class Sign(Function):
    """Sign node (-1, 0 or 1); piecewise constant, so its gradient is zero.

    Called as ``Sign()(x)``; the function behind :func:`sign`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Sign()(backend.asarray([-3.0, 0.0, 2.0]))
    variable([-1.  0.  1.])
    """

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
    """Elementwise max(x0, x1) node with broadcasting; at ties each input gets half the gradient.

    Called as ``Maximum()(x0, x1)``; the function behind :func:`maximum`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Maximum()(backend.asarray([1.0, 5.0]), backend.asarray([3.0, 3.0]))
    variable([3. 5.])
    """

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return self.xp.maximum(x0, x1)

    def vjp(self, d, xs, ys, gys):
        a, b = array_of(xs[0]), array_of(xs[1])
        m0, m1 = _select_masks(self.xp, a > b, a == b, gys[0].dtype)
        gy = gys[0]
        return _unbroadcast(d, gy * m0, xs[0].shape), _unbroadcast(d, gy * m1, xs[1].shape)


class Minimum(Function):
    """Elementwise min(x0, x1) node with broadcasting; at ties each input gets half the gradient.

    Called as ``Minimum()(x0, x1)``; the function behind :func:`minimum`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Minimum()(backend.asarray([1.0, 5.0]), backend.asarray([3.0, 3.0]))
    variable([1. 3.])
    """

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        return self.xp.minimum(x0, x1)

    def vjp(self, d, xs, ys, gys):
        a, b = array_of(xs[0]), array_of(xs[1])
        m0, m1 = _select_masks(self.xp, a < b, a == b, gys[0].dtype)
        gy = gys[0]
        return _unbroadcast(d, gy * m0, xs[0].shape), _unbroadcast(d, gy * m1, xs[1].shape)


class Where(Function):
    """Selection node: ``x0`` where ``condition`` holds, else ``x1`` (broadcasting).

    Called as ``Where(condition)(x0, x1)``; the function behind :func:`where`.

    Parameters
    ----------
    condition : Variable, array, bool or sequence of bool
        A constant (never differentiated) that broadcasts with ``x0`` and ``x1``; a Variable gives
        its data, and a Python value or an array of another backend is converted to the inputs'
        backend when the function is called.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> condition = backend.asarray([True, False])
    >>> F.Where(condition)(backend.asarray([1.0, 2.0]), backend.asarray([10.0, 20.0]))
    variable([ 1. 20.])
    """

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
            d, gy * (1.0 - chosen), xs[1].shape
        )


class Clip(Function):
    """Clipping node: ``x`` limited to [x_min, x_max]; the gradient flows where x_min <= x <= x_max.

    Called as ``Clip(x_min, x_max)(x)``; the function behind :func:`clip`.

    Parameters
    ----------
    x_min, x_max : float or None
        The bounds (inclusive, also for the gradient); None leaves that side open.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Clip(0.0, 1.0)(backend.asarray([-1.0, 0.5, 2.0]))
    variable([0.  0.5 1. ])
    """

    retain_inputs, retain_outputs = (0,), ()

    def __init__(self, x_min: Any, x_max: Any) -> None:
        for name, bound in (("x_min", x_min), ("x_max", x_max)):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, Real)):
                raise TypeError(f"clip: {name} must be a real number or None, not {bound!r}")
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
    """Elementwise sine.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``sin(x)``, of ``x``'s shape and dtype; its gradient is ``cos(x)``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([0.0]))
    >>> y = F.sin(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([0.]), variable([1.]))
    """
    return Sin()(x)


def cos(x: Any) -> Variable:
    """Elementwise cosine.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``cos(x)``, of ``x``'s shape and dtype; its gradient is ``-sin(x)``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([0.0]))
    >>> y = F.cos(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([1.]), variable([-0.]))
    """
    return Cos()(x)


def tanh(x: Any) -> Variable:
    """Elementwise hyperbolic tangent.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``tanh(x)``, of ``x``'s shape and dtype; its gradient is ``1 - tanh(x)**2``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([0.0]))
    >>> y = F.tanh(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([0.]), variable([1.]))
    """
    return Tanh()(x)


def exp(x: Any) -> Variable:
    """Elementwise exponential.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``exp(x)``, of ``x``'s shape and dtype; it is its own gradient.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([0.0, 1.0]))
    >>> y = F.exp(x)
    >>> y.backward()
    >>> agrad.cuda.as_numpy(y).round(4), agrad.cuda.as_numpy(x.grad).round(4)
    (array([1.    , 2.7183]), array([1.    , 2.7183]))
    """
    return Exp()(x)


def log(x: Any) -> Variable:
    """Elementwise natural logarithm.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``log(x)``, of ``x``'s shape and dtype (NaN for x < 0, -inf at 0, as the backend gives);
        its gradient is ``1 / x``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([1.0, 4.0]))
    >>> y = F.log(x)
    >>> y.backward()
    >>> x.grad
    variable([1.   0.25])
    """
    return Log()(x)


def sqrt(x: Any) -> Variable:
    """Elementwise square root.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``sqrt(x)``, of ``x``'s shape and dtype; its gradient ``1 / (2 sqrt(x))`` is inf at 0.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([1.0, 4.0]))
    >>> y = F.sqrt(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([1. 2.]), variable([0.5  0.25]))
    """
    return Sqrt()(x)


def abs(x: Any) -> Variable:  # noqa: A001 - the Array API's name
    """Elementwise absolute value.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``|x|``, of ``x``'s shape and dtype; its gradient is ``sign(x)`` (0 at x = 0).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([-2.0, 0.0, 3.0]))
    >>> y = F.abs(x)
    >>> F.sum(y).backward()
    >>> y, x.grad
    (variable([2. 0. 3.]), variable([-1.  0.  1.]))
    """
    return Abs()(x)


def sign(x: Any) -> Variable:
    """Elementwise sign (-1, 0 or 1); its gradient is zero.

    Parameters
    ----------
    x : Variable or array
        Floating-point input of any shape.

    Returns
    -------
    Variable
        ``sign(x)``, of ``x``'s shape and dtype.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([-2.0, 0.0, 3.0]))
    >>> y = F.sign(x)
    >>> F.sum(y).backward()
    >>> y, x.grad
    (variable([-1.  0.  1.]), variable([0. 0. 0.]))
    """
    return Sign()(x)


def maximum(x0: Any, x1: Any) -> Variable:
    """Elementwise maximum with broadcasting; either side may be a Python number.

    At ties each input gets half the gradient, as central differences do at the kink.

    Parameters
    ----------
    x0, x1 : Variable, array or Python number
        Operands whose shapes broadcast together; either may be a Python number.

    Returns
    -------
    Variable
        Of the broadcast shape; each gradient is summed back to its input's shape.

    Raises
    ------
    TypeError
        If ``x0`` and ``x1`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([-1.0, 0.0, 2.0]))
    >>> y = F.maximum(x, 0.0)
    >>> F.sum(y).backward()  # at the tie x = 0, x gets half the gradient
    >>> y, x.grad
    (variable([0. 0. 2.]), variable([0.  0.5 1. ]))
    """
    return Maximum()(x0, x1)


def minimum(x0: Any, x1: Any) -> Variable:
    """Elementwise minimum with broadcasting; either side may be a Python number.

    At ties each input gets half the gradient, as central differences do at the kink.

    Parameters
    ----------
    x0, x1 : Variable, array or Python number
        Operands whose shapes broadcast together; either may be a Python number.

    Returns
    -------
    Variable
        Of the broadcast shape; each gradient is summed back to its input's shape.

    Raises
    ------
    TypeError
        If ``x0`` and ``x1`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([-1.0, 0.0, 2.0]))
    >>> y = F.minimum(x, 0.0)
    >>> F.sum(y).backward()  # at the tie x = 0, x gets half the gradient
    >>> y, x.grad
    (variable([-1.  0.  0.]), variable([1.  0.5 0. ]))
    """
    return Minimum()(x0, x1)


def where(condition: Any, x0: Any, x1: Any) -> Variable:
    """``x0`` where the boolean ``condition`` holds, else ``x1``; differentiable in x0 and x1.

    Parameters
    ----------
    condition : Variable, array, bool or sequence of bool
        A constant that broadcasts with ``x0`` and ``x1``; it gets no gradient.
    x0, x1 : Variable, array or Python number
        Operands whose shapes broadcast together; either may be a Python number.

    Returns
    -------
    Variable
        Of the broadcast shape. ``x0`` gets the gradient where ``condition`` holds, ``x1``
        elsewhere.

    Raises
    ------
    TypeError
        If ``x0`` and ``x1`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([-1.0, 2.0]))
    >>> y = F.where(x.data > 0, x, 0.0)
    >>> F.sum(y).backward()
    >>> y, x.grad
    (variable([0. 2.]), variable([0. 1.]))
    """
    return Where(condition)(x0, x1)


def clip(x: Any, x_min: Any, x_max: Any) -> Variable:
    """Clip values to [x_min, x_max] (DeZero); either bound may be None.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    x_min, x_max : float or None
        The inclusive bounds; None leaves that side open.

    Returns
    -------
    Variable
        Of ``x``'s shape and dtype. The gradient passes where ``x_min <= x <= x_max`` (at the
        bounds included) and is 0 outside.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([-1.0, 0.0, 0.5, 2.0]))
    >>> y = F.clip(x, 0.0, 1.0)
    >>> F.sum(y).backward()
    >>> y, x.grad
    (variable([0.  0.  0.5 1. ]), variable([0. 1. 1. 0.]))
    >>> F.clip(x, None, 1.0)
    variable([-1.   0.   0.5  1. ])
    """
    return Clip(x_min, x_max)(x)
