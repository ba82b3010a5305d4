"""Losses (mean squared error, cross entropies) and ``accuracy``, DeZero's definitions.

Class labels are integer arrays on the inputs' backend. The labelled entries are picked with
``take_along_axis`` and one-hot matrices are built from comparisons, so nothing here needs the
integer-array indexing the Array API standard does not guarantee.
"""

from __future__ import annotations

import math
from typing import Any

from agrad.backends import backend_of
from agrad.core import Function, Variable, array_of, as_variable
from agrad.functions import elementwise as _elementwise
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
    if not xp.isdtype(t.dtype, "integral"):
        raise TypeError(f"class labels must be an integer array, not {t.dtype}")
    return xp.reshape(t, (n, 1))


def _one_hot(xp: Any, t: Any, n: int, classes: int, dtype: Any) -> Any:
    """``(n, classes)`` one-hot rows of the labels ``t``, built by comparison with ``arange``."""
    column = _label_column(xp, t, n)
    return xp.astype(column == xp.arange(classes, dtype=t.dtype), dtype)


class MeanSquaredError(Function):
    """sum((x0 - x1)**2) / len(x0): DeZero divides by the first dimension, not the size."""

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x0: Any, x1: Any) -> Any:
        diff = x0 - x1
        return self.xp.sum(diff**2) / _batch_size(diff)

    def vjp(self, d, xs, ys, gys):
        x0, x1 = xs
        diff = x0 - x1
        gx0 = gys[0] * diff * (2.0 / _batch_size(diff))
        return _unbroadcast(d, gx0, x0.shape), _unbroadcast(d, -gx0, x1.shape)


class SoftmaxCrossEntropy(Function):
    """Mean over the batch of -log softmax(x)[i, t[i]], for logits ``x`` of shape (N, C)."""

    retain_inputs, retain_outputs = (0, 1), ()

    def forward(self, x: Any, t: Any) -> Any:
        xp = self.xp
        n = x.shape[0]
        log_p = x - _logsumexp_array(xp, x, 1)
        picked = xp.take_along_axis(log_p, _label_column(xp, t, n), axis=1)
        return -xp.sum(picked) / n

    def vjp(self, d, xs, ys, gys):
        x, t = xs[0], array_of(xs[1])
        n, classes = x.shape
        one_hot = _one_hot(self.xp, t, n, classes, x.dtype)
        return (d.softmax(xs[0], axis=1) - one_hot) * (gys[0] / n), None


class _PickLabels(Function):
    """Row i of ``x`` (N, C) at column ``t[i]``; the gradient goes back to those entries only."""

    retain_inputs, retain_outputs = (1,), ()

    def forward(self, x: Any, t: Any) -> Any:
        n = x.shape[0]
        picked = self.xp.take_along_axis(x, _label_column(self.xp, t, n), axis=1)
        return self.xp.reshape(picked, (n,))

    def vjp(self, d, xs, ys, gys):
        x, t = xs[0], array_of(xs[1])
        n, classes = x.shape
        one_hot = _one_hot(self.xp, t, n, classes, x.dtype)
        return d.reshape(gys[0], (n, 1)) * one_hot, None


class SigmoidCrossEntropy(Function):
    """Mean over the batch of the binary cross entropy of sigmoid(x) against targets ``t``.

    Computed from log-sigmoids, so large logits never take the log of 0 (DeZero's composite
    gives inf there); log p is clipped at log(1e-15) as DeZero clips p. Targets get no gradient.
    """

    retain_inputs, retain_outputs = (0,), ()
    retain_attributes = ("_unclipped", "_targets")

    def forward(self, x: Any, t: Any) -> Any:
        xp = self.xp
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
    """sum((x0 - x1)**2) / len(x0) (DeZero: divided by the batch size, not the element count)."""
    return MeanSquaredError()(x0, x1)


def mean_squared_error_simple(x0: Any, x1: Any) -> Variable:
    """``mean_squared_error`` composed from arithmetic and ``sum`` (DeZero's version)."""
    x0, x1 = as_variable(x0), as_variable(x1)
    diff = x0 - x1
    return _sum(diff**2) / _batch_size(diff)


def softmax_cross_entropy(x: Any, t: Any) -> Variable:
    """Cross entropy of softmax(x) (N, C) against integer labels ``t`` (N,), averaged over N."""
    return SoftmaxCrossEntropy()(x, t)


def softmax_cross_entropy_simple(x: Any, t: Any) -> Variable:
    """``softmax_cross_entropy`` composed from softmax, clip (p >= 1e-15) and log (DeZero's)."""
    x = as_variable(x)
    n = x.shape[0]
    p = _elementwise.clip(softmax(x), _P_FLOOR, 1.0)
    picked = _PickLabels()(log(p), _data(t))
    return -1 * _sum(picked) / n


def sigmoid_cross_entropy(x: Any, t: Any) -> Variable:
    """Binary cross entropy of sigmoid(x) against 0/1 targets ``t``, summed and divided by N."""
    return SigmoidCrossEntropy()(x, _data(t))


def binary_cross_entropy(p: Any, t: Any) -> Variable:
    """Binary cross entropy of probabilities ``p`` (clipped to [1e-15, 0.999] as DeZero)."""
    p = as_variable(p)
    t = as_variable(t)
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
    """Fraction of rows of ``y`` whose argmax equals the label in ``t`` (not differentiable)."""
    y, t = _data(y), _data(t)
    xp = backend_of(y).xp
    predicted = xp.reshape(xp.argmax(y, axis=1), t.shape)
    # float64 like DeZero (NumPy's mean of a bool array), so printed accuracies match
    hits = xp.astype(predicted == t, xp.float64)
    return Variable(xp.asarray(xp.mean(hits)))
