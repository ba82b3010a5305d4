"""Losses (mean squared error, cross entropies) and ``accuracy``, DeZero's definitions.

Class labels are integer arrays on the inputs' backend. The labelled entries are picked with
``take_along_axis`` and one-hot matrices are built from comparisons, so nothing here needs the
integer-array indexing the Array API standard does not guarantee.
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any

from agrad.backends import backend_of
from agrad.core import Function, Variable, array_of, as_variable
from agrad.functions import elementwise as _elementwise
from agrad.functions._axes import size_of
from agrad.functions.activation import _logsumexp_array, softmax
from agrad.functions.arithmetic import _unbroadcast
from agrad.functions.elementwise import log
from agrad.functions.reduction import sum as _sum

__all__ = [
    "MeanSquaredError",
    "SoftmaxCrossEntropy",
    "SigmoidCrossEntropy",
    "mean_squared_error",
    "mean_squared_error_simple",
    "softmax_cross_entropy",
    "softmax_cross_entropy_simple",
    "sigmoid_cross_entropy",
    "binary_cross_entropy",
    "accuracy",
]

# DeZero clips probabilities to at least this before taking their log
_P_FLOOR = 1e-15
_LOG_P_FLOOR = math.log(_P_FLOOR)


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Variable) else x


def _batch_size(x: Any) -> int:
    """DeZero's ``len(x)``: the first dimension (1 for a 0-d array)."""
    return x.shape[0] if x.ndim else 1


def _label_column(xp: Any, t: Any, n: int) -> Any:
    """Labels as an ``(n, 1)`` integer array, ready for ``take_along_axis`` along axis 1."""
    if not _is_integral(xp, t.dtype):
        raise TypeError(f"class labels must be an integer array, not {t.dtype}")
    return xp.reshape(_as_int64(xp, t), (n, 1))  # PyTorch's take_along_dim takes int64 only


def _as_int64(xp: Any, t: Any) -> Any:
    # (not xp.astype alone: it copies labels that are int64 already)
    return t if t.dtype == xp.int64 else xp.astype(t, xp.int64)


# dtype -> whether it is an integer dtype
_INTEGRAL: dict[tuple[type, Any], bool] = {}


def _is_integral(xp: Any, dtype: Any) -> bool:
    key = (type(dtype), dtype)  # the type first: backends' dtypes may hash alike
    integral = _INTEGRAL.get(key)
    if integral is None:  # isdtype costs microseconds, and the loss runs every step
        integral = _INTEGRAL[key] = xp.isdtype(dtype, "integral")
    return integral


def _check_labels(xp: Any, x: Any, t: Any) -> tuple[Any, Any]:
    """``(t, any_bad)``: logits ``x`` must be (N, C) and ``t`` hold N integer labels, 0 <= t < C.

    A label out of range would otherwise be wrapped by ``take_along_axis`` (-1 picks the last
    class) while the one-hot of the gradient has no entry for it: a loss and gradient that
    disagree. On the CPU the check reads one flag on the host and raises, naming the label
    (``any_bad`` is None). On a GPU that read would make every step wait for the device (on
    Dask, compute the graph so far), so instead ``any_bad`` is a 0-d array, True when some
    label is out of range, with which the caller turns the loss and its gradient into NaN
    (PyTorch's CUDA kernels abort on a device-side assert instead); the labels returned are
    then moved into range, so that picking them cannot fail.
    """
    backend = backend_of(x)
    if backend_of(t, None) is not backend:
        raise TypeError(
            f"logits x and labels t live on different backends ({backend.name!r} and "
            f"{type(t).__module__}.{type(t).__qualname__}); move them with Variable.to(...) first"
        )
    if x.ndim != 2:
        raise ValueError(f"logits x must have shape (N, C), got shape {tuple(x.shape)}")
    if not _is_integral(xp, t.dtype):
        raise TypeError(f"class labels t must be an integer array, not {t.dtype}")
    n, classes = x.shape
    if tuple(t.shape) not in ((n,), (n, 1)):
        raise ValueError(
            f"class labels t must hold one label per row of x: x has {n} rows (shape "
            f"{tuple(x.shape)}), so t must have shape ({n},) or ({n}, 1), not {tuple(t.shape)}"
        )
    wide = _as_int64(xp, t)  # `t >= classes` in int8 overflows for 300 classes
    # the floored remainder is the label itself exactly when 0 <= label < classes (two
    # operations where comparing with both ends takes three, and it is the in-range label)
    in_range = wide % max(classes, 1)
    bad = in_range != wide if classes else wide == wide
    if backend.checks_stay_on_device:
        return in_range, xp.any(bad)
    if n and bool(xp.any(bad)):
        flat = xp.reshape(wide, (n,))
        index = int(xp.argmax(xp.astype(xp.reshape(bad, (n,)), xp.int8)))
        raise ValueError(
            f"class label t[{index}] = {int(flat[index])} is out of range: labels must satisfy "
            f"0 <= t < {classes} (the number of columns of x)"
        )
    return wide, None  # (int64 already: the pick does not convert the labels again)


def _poison(xp: Any, value: Any, any_bad: Any) -> Any:
    """``value``, or NaN when ``_check_labels`` found a label out of range on a device."""
    if any_bad is None:
        return value
    return value * _nan_where(xp, any_bad, value.dtype)


def _nan_where(xp: Any, any_bad: Any, dtype: Any) -> Any:
    """A 0-d factor of ``dtype``: NaN where ``any_bad`` holds, else 1."""
    return xp.where(any_bad, xp.asarray(math.nan, dtype=dtype), xp.asarray(1.0, dtype=dtype))


def _one_hot(xp: Any, t: Any, n: int, classes: int, dtype: Any) -> Any:
    """``(n, classes)`` one-hot rows of the labels ``t``, built by comparison with ``arange``.

    Compared in int64: ``arange`` in a narrow label dtype (uint8 with 300 classes) would wrap
    and mark a second class.
    """
    return xp.astype(_label_column(xp, t, n) == xp.arange(classes, dtype=xp.int64), dtype)


def _warn_if_broadcast_grows(x0: Any, x1: Any) -> None:
    """PyTorch's warning for ``mse_loss`` with input and target of different sizes, given when
    broadcasting makes the difference bigger than both, as (3, 1) with (3,) gives (3, 3)."""
    s0, s1 = tuple(getattr(x0, "shape", ())), tuple(getattr(x1, "shape", ()))
    if s0 == s1:
        return
    try:
        shape = _broadcast_shape(s0, s1)
    except ValueError:
        return  # the subtraction raises its own error
    if shape != s0 and shape != s1:
        warnings.warn(
            f"mean_squared_error: inputs of shapes {s0} and {s1} broadcast to {shape}; this "
            "is likely a mistake (reshape one of them so that the shapes match)",
            UserWarning,
            stacklevel=3,
        )


def _broadcast_shape(s0: tuple[int, ...], s1: tuple[int, ...]) -> tuple[int, ...]:
    shape = []
    for a, b in itertools.zip_longest(reversed(s0), reversed(s1), fillvalue=1):
        if a != b and 1 not in (a, b):
            raise ValueError(f"shapes {s0} and {s1} do not broadcast")
        shape.append(a if b == 1 else b)
    return tuple(reversed(shape))


class MeanSquaredError(Function):
    """Mean squared error node, sum((x0 - x1)**2) / len(x0 - x1) (DeZero's definition).

    Called as ``MeanSquaredError()(x0, x1)``; the function behind :func:`mean_squared_error`. Unlike
    the function, it does not warn about broadcasting.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x0 = backend.asarray([[1.0, 2.0], [3.0, 4.0]])
    >>> F.MeanSquaredError()(x0, backend.asarray([[0.0, 0.0], [0.0, 0.0]]))  # divided by N = 2
    variable(15.0)
    """

    retain_inputs = (0, 1)
    retain_outputs = ()

    def forward(self, x0: Any, x1: Any) -> Any:
        diff = x0 - x1
        return self.xp.sum(diff**2) / _batch_size(diff)

    def vjp(self, d, xs, ys, gys):
        x0, x1 = xs
        diff = x0 - x1
        gx0 = gys[0] * diff * (2.0 / _batch_size(diff))
        return _unbroadcast(d, gx0, x0.shape), _unbroadcast(d, -gx0, x1.shape)


class SoftmaxCrossEntropy(Function):
    """Softmax cross entropy node: the batch mean of -log softmax(x)[i, t[i]] for logits (N, C).

    Called as ``SoftmaxCrossEntropy()(x, t)``; the function behind :func:`softmax_cross_entropy`. It
    checks the labels as that function does.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> loss = F.SoftmaxCrossEntropy()(backend.asarray([[0.0, 0.0]]), backend.asarray([1]))
    >>> round(float(loss), 4)  # log 2
    0.6931
    """

    retain_inputs = (0, 1)
    retain_outputs = ()
    retain_attributes = ("poison", "log_z")

    def forward(self, x: Any, t: Any) -> Any:
        xp = self.xp
        t, any_bad = _check_labels(xp, x, t)
        n = x.shape[0]
        # on a device, the factor (NaN or 1) for the loss and its gradient
        self.poison = None if any_bad is None else _nan_where(xp, any_bad, x.dtype)
        self.log_z = _logsumexp_array(xp, x, 1)  # (N, 1): the backward's softmax in two steps
        # -log softmax(x)[i, t[i]] = log_z[i] - x[i, t[i]]: picked first, no (N, C) log_p (and
        # bit for bit -sum(log_p picked) / N, as a rounded difference changes sign exactly)
        picked = xp.take_along_axis(x, _label_column(xp, t, n), axis=1)
        loss = xp.sum(self.log_z - picked) / n
        return loss if self.poison is None else loss * self.poison

    def vjp(self, d, xs, ys, gys):
        x = xs[0]
        n, classes = x.shape
        one_hot = _one_hot(self.xp, array_of(xs[1]), n, classes, x.dtype)
        # exp(x - log_z) is the softmax (as PyTorch's backward computes it); create_graph
        # recomputes it from the Variable x, so that it is differentiated too
        p = d.softmax(x, axis=1) if isinstance(x, Variable) else self.xp.exp(x - self.log_z)
        gx = (p - one_hot) * (gys[0] / n)
        return (gx if self.poison is None else gx * self.poison), None


class _PickLabels(Function):
    """Row i of ``x`` (N, C) at column ``t[i]``; the gradient goes back to those entries only."""

    retain_inputs = (1,)
    retain_outputs = ()

    def forward(self, x: Any, t: Any) -> Any:
        n = x.shape[0]  # labels checked by softmax_cross_entropy_simple
        picked = self.xp.take_along_axis(x, _label_column(self.xp, t, n), axis=1)
        return self.xp.reshape(picked, (n,))

    def vjp(self, d, xs, ys, gys):
        n, classes = xs[0].shape
        one_hot = _one_hot(self.xp, array_of(xs[1]), n, classes, xs[0].dtype)
        return d.reshape(gys[0], (n, 1)) * one_hot, None


class SigmoidCrossEntropy(Function):
    """Sigmoid cross entropy node: binary cross entropy of sigmoid(x) against targets ``t``, over N.

    Called as ``SigmoidCrossEntropy()(x, t)``; the function behind :func:`sigmoid_cross_entropy`.

    Computed from log-sigmoids, so large logits never take the log of 0 (DeZero's composite
    gives inf there); log p is clipped at log(1e-15) as DeZero clips p. Targets get no gradient.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> loss = F.SigmoidCrossEntropy()(backend.asarray([0.0, 0.0]), backend.asarray([0, 1]))
    >>> round(float(loss), 4)  # log 2
    0.6931
    """

    retain_inputs = (0,)
    retain_outputs = ()
    retain_attributes = ("_unclipped", "_targets")

    def forward(self, x: Any, t: Any) -> Any:
        xp = self.xp
        if math.prod(t.shape) != math.prod(x.shape):
            raise ValueError(
                f"targets t must have one entry per logit: x has shape {tuple(x.shape)}, "
                f"t has shape {tuple(t.shape)}"
            )
        t = xp.astype(xp.reshape(t, x.shape), x.dtype)
        tail = xp.log1p(xp.exp(-xp.abs(x)))
        zeros = xp.zeros_like(x)
        log_p = xp.minimum(x, zeros) - tail  # log sigmoid(x)
        log_q = -xp.maximum(x, zeros) - tail  # log (1 - sigmoid(x))
        self._unclipped = xp.astype(log_p > _LOG_P_FLOOR, x.dtype)
        self._targets = t
        log_p = xp.maximum(log_p, xp.full_like(log_p, _LOG_P_FLOOR))
        return -xp.sum(t * log_p + (1 - t) * log_q) / _batch_size(x)

    def vjp(self, d, xs, ys, gys):
        x, t = xs[0], self._targets
        p = d.sigmoid(x)
        gx = p * (1 - t) - (1 - p) * (t * self._unclipped)
        return gx * (gys[0] / _batch_size(x)), None


def mean_squared_error(x0: Any, x1: Any) -> Variable:
    """Mean squared error, sum((x0 - x1)**2) / len(x0) (DeZero: divided by the batch size).

    Parameters
    ----------
    x0, x1 : Variable or array
        Prediction and target, of the same (or a broadcastable) shape; both get gradients.

    Returns
    -------
    Variable
        0-d: ``sum((x0 - x1)**2)`` divided by the first dimension of ``x0 - x1`` (1 when it is
        0-d), not by the number of elements.

    Warns
    -----
    UserWarning
        When broadcasting ``x0`` against ``x1`` makes a shape bigger than both, as (3, 1) and (3,)
        give (3, 3) (as PyTorch's ``mse_loss`` warns); a target that broadcasts to the input's
        shape, such as (1, 3) against (4, 3), is taken as meant.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[1.0, 2.0], [3.0, 4.0]]))
    >>> target = backend.asarray([[0.0, 0.0], [0.0, 0.0]])
    >>> loss = F.mean_squared_error(x, target)  # (1 + 4 + 9 + 16) / 2
    >>> loss.backward()  # 2 (x - target) / 2
    >>> loss, x.grad
    (variable(15.0), variable([[1. 2.]
              [3. 4.]]))
    """
    _warn_if_broadcast_grows(x0, x1)
    return MeanSquaredError()(x0, x1)


def mean_squared_error_simple(x0: Any, x1: Any) -> Variable:
    """``mean_squared_error`` composed from arithmetic and ``sum`` (DeZero's version).

    The same value and gradient in four graph nodes instead of one.

    Parameters
    ----------
    x0, x1 : Variable or array
        Prediction and target, of the same (or a broadcastable) shape; both get gradients.

    Returns
    -------
    Variable
        0-d: ``sum((x0 - x1)**2)`` divided by the first dimension of ``x0 - x1`` (1 when it is
        0-d), not by the number of elements.

    Warns
    -----
    UserWarning
        When broadcasting ``x0`` against ``x1`` makes a shape bigger than both, as (3, 1) and (3,)
        give (3, 3) (as PyTorch's ``mse_loss`` warns); a target that broadcasts to the input's
        shape, such as (1, 3) against (4, 3), is taken as meant.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[1.0, 2.0], [3.0, 4.0]]))
    >>> loss = F.mean_squared_error_simple(x, backend.asarray([[0.0, 0.0], [0.0, 0.0]]))
    >>> loss.backward()
    >>> loss, x.grad
    (variable(15.0), variable([[1. 2.]
              [3. 4.]]))
    """
    _warn_if_broadcast_grows(x0, x1)
    x0, x1 = as_variable(x0), as_variable(x1)
    diff = x0 - x1
    return _sum(diff**2) / _batch_size(diff)


def softmax_cross_entropy(x: Any, t: Any) -> Variable:
    """Cross entropy of softmax(x) (N, C) against integer labels ``t`` (N,), averaged over N.

    Computed in one node from a log-sum-exp, so large logits do not overflow; the gradient is
    ``(softmax(x) - one_hot(t)) / N``.

    Parameters
    ----------
    x : Variable or array
        Logits of shape (N, C), floating point.
    t : array or Variable
        Integer class labels of shape (N,) or (N, 1), on ``x``'s backend; they get no gradient.

    Returns
    -------
    Variable
        0-d, in ``x``'s dtype.

    Raises
    ------
    TypeError
        If ``t`` is not an integer array, or ``x`` and ``t`` live on different backends.
    ValueError
        If ``x`` is not 2-D, ``t`` does not hold one label per row, or (on a CPU backend) a label
        is outside ``0 <= t < C``. On a GPU that check would wait for the device, so there an
        out-of-range label makes the loss and its gradient NaN instead.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[0.0, 0.0], [0.0, 0.0]]))
    >>> t = backend.asarray([0, 1])
    >>> loss = F.softmax_cross_entropy(x, t)
    >>> round(float(loss), 4)  # -log(1/2)
    0.6931
    >>> loss.backward()
    >>> x.grad
    variable([[-0.25  0.25]
              [ 0.25 -0.25]])
    >>> F.softmax_cross_entropy(x, backend.asarray([0, 2]))
    Traceback (most recent call last):
      ...
    ValueError: class label t[1] = 2 is out of range: labels must satisfy 0 <= t < 2 ...
    """
    return SoftmaxCrossEntropy()(x, t)


def softmax_cross_entropy_simple(x: Any, t: Any) -> Variable:
    """``softmax_cross_entropy`` composed from softmax, clip (p >= 1e-15) and log (DeZero's).

    Several graph nodes instead of one; the clip bounds the loss of a label whose probability
    underflows (about 34.5, ``-log(1e-15)``), and its gradient is zero there.

    Parameters
    ----------
    x : Variable or array
        Logits of shape (N, C), floating point.
    t : array or Variable
        Integer class labels of shape (N,) or (N, 1), on ``x``'s backend; they get no gradient.

    Returns
    -------
    Variable
        0-d, in ``x``'s dtype.

    Raises
    ------
    TypeError
        If ``t`` is not an integer array, or ``x`` and ``t`` live on different backends.
    ValueError
        If ``x`` is not 2-D, ``t`` does not hold one label per row, or (on a CPU backend) a label
        is outside ``0 <= t < C``. On a GPU that check would wait for the device, so there an
        out-of-range label makes the loss and its gradient NaN instead.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[0.0, 0.0], [0.0, 0.0]]))
    >>> loss = F.softmax_cross_entropy_simple(x, backend.asarray([0, 1]))
    >>> loss.backward()
    >>> round(float(loss), 4), x.grad
    (0.6931, variable([[-0.25  0.25]
              [ 0.25 -0.25]]))
    """
    x = as_variable(x)
    xp, t = x.xp, _data(t)
    t, any_bad = _check_labels(xp, x.data, t)  # on a device: loss and gradient NaN if bad
    n = x.shape[0]
    p = _elementwise.clip(softmax(x), _P_FLOOR, 1.0)
    picked = _PickLabels()(log(p), t)
    return _poison(xp, -1 * _sum(picked) / n, any_bad)


def sigmoid_cross_entropy(x: Any, t: Any) -> Variable:
    """Binary cross entropy of sigmoid(x) against 0/1 targets ``t``, summed and divided by N.

    Computed from log-sigmoids, so it stays finite for large logits; the gradient is
    ``(sigmoid(x) - t) / N`` (zero where log p is clipped at log(1e-15) and ``t`` is 1, as DeZero
    clips p).

    Parameters
    ----------
    x : Variable or array
        Logits of any shape; N is its first dimension (1 when 0-d).
    t : array or Variable
        Targets in [0, 1] (integer or floating), with one entry per logit (reshaped to ``x``'s
        shape); they get no gradient.

    Returns
    -------
    Variable
        0-d, in ``x``'s dtype.

    Raises
    ------
    ValueError
        If ``t`` does not have as many elements as ``x``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([0.0, 0.0]))
    >>> loss = F.sigmoid_cross_entropy(x, backend.asarray([0, 1]))
    >>> loss.backward()
    >>> round(float(loss), 4), x.grad
    (0.6931, variable([ 0.25 -0.25]))
    """
    return SigmoidCrossEntropy()(x, _data(t))


def binary_cross_entropy(p: Any, t: Any) -> Variable:
    """Binary cross entropy of probabilities ``p`` (clipped to [1e-15, 0.999] as DeZero).

    Parameters
    ----------
    p : Variable or array
        Probabilities, such as the output of :func:`sigmoid`; N is the first dimension of ``t``.
    t : Variable or array
        Targets in [0, 1] with one entry per probability (reshaped to ``p``'s shape when the
        dimensions differ); integer targets are converted to ``p``'s dtype.

    Returns
    -------
    Variable
        0-d: ``-sum(t log p + (1 - t) log(1 - p)) / N``.

    Raises
    ------
    ValueError
        If ``t`` does not have as many elements as ``p``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> p = agrad.Variable(backend.asarray([0.5, 0.5]))
    >>> loss = F.binary_cross_entropy(p, backend.asarray([0, 1]))
    >>> loss.backward()
    >>> round(float(loss), 4), p.grad
    (0.6931, variable([ 1. -1.]))
    """
    p = as_variable(p)
    t = as_variable(t)
    if size_of(t) != size_of(p):
        raise ValueError(
            f"binary_cross_entropy: targets t must have one entry per probability: p has shape "
            f"{tuple(p.shape)}, t has shape {tuple(t.shape)}"
        )
    if t.ndim != p.ndim:
        t = t.reshape(p.shape)
    if t.dtype != p.dtype:  # integer 0/1 labels: compute in p's floating dtype
        xp = p.xp
        t = Variable(xp.astype(t.data, p.dtype))
    n = _batch_size(t)
    p = _elementwise.clip(p, _P_FLOOR, 0.999)
    tlog_p = t * log(p) + (1 - t) * log(1 - p)
    return -1 * _sum(tlog_p) / n


def accuracy(y: Any, t: Any) -> Variable:
    """Fraction of rows of ``y`` whose argmax equals the label in ``t`` (not differentiable).

    Parameters
    ----------
    y : Variable or array
        Scores of shape (N, C), such as logits or probabilities.
    t : Variable or array
        N integer labels (any shape with N elements, not 0-d), on ``y``'s backend.

    Returns
    -------
    Variable
        0-d float64, without a graph (as DeZero's, which is NumPy's mean of a bool array).

    Raises
    ------
    TypeError
        If ``y`` and ``t`` live on different backends.
    ValueError
        If ``y`` is not 2-D or ``t`` does not hold one label per row.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> y = backend.asarray([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    >>> F.accuracy(y, backend.asarray([1, 0, 0, 0]))
    variable(0.75)
    """
    y, t = _data(y), _data(t)
    backend = backend_of(y)
    labels_backend = backend_of(t, None)
    if labels_backend is not backend:
        where = labels_backend.name if labels_backend is not None else type(t).__name__
        raise TypeError(
            f"accuracy: y and t live on different backends ({backend.name!r} and {where!r}); "
            "move them with Variable.to(...) first"
        )
    xp = backend.xp
    if y.ndim != 2:
        raise ValueError(f"accuracy: y must have shape (N, C), got shape {tuple(y.shape)}")
    if t.ndim == 0 or math.prod(t.shape) != y.shape[0]:
        raise ValueError(
            f"accuracy: t must hold one label per row of y: y has {y.shape[0]} rows, "
            f"t has shape {tuple(t.shape)}"
        )
    predicted = xp.reshape(xp.argmax(y, axis=1), t.shape)
    # float64 like DeZero (NumPy's mean of a bool array), so printed accuracies match
    hits = xp.astype(predicted == t, xp.float64)
    return Variable(xp.asarray(xp.mean(hits)))
