"""What a modern model needs, with PyTorch's signatures: GELU, SiLU, logsumexp, argmax/argmin,
one-hot codes, layer normalisation and scaled dot-product attention.

Most are composed of agrad's differentiable functions, so their gradients (and second
derivatives) come from those; ``erf`` is a Function of its own whose forward is the backend's
(``Backend.erf``) and whose gradient is written with ``d.exp``, so it differentiates twice too.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from agrad.core import Function, Variable, as_variable
from agrad.functions.activation import sigmoid, softmax
from agrad.functions.arithmetic import add, mul
from agrad.functions.elementwise import exp, log, sqrt, tanh, where
from agrad.functions.linalg import matmul
from agrad.functions.reduction import mean
from agrad.functions.reduction import sum as _sum
from agrad.functions.shape import reshape, transpose

__all__ = [
    "Erf",
    "erf",
    "gelu",
    "silu",
    "logsumexp",
    "argmax",
    "argmin",
    "one_hot",
    "layer_norm",
    "scaled_dot_product_attention",
]

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


class Erf(Function):
    """The error function; its gradient is ``2 / sqrt(pi) * exp(-x ** 2)``."""

    retain_inputs = (0,)
    retain_outputs = ()

    def forward(self, x: Any) -> Any:
        return self.backend.erf(x)

    def vjp(self, d, xs, ys, gys):
        x = xs[0]
        return gys[0] * d.exp(-(x * x)) * _TWO_OVER_SQRT_PI


def erf(x: Any) -> Variable:
    """The error function, elementwise (``torch.erf``).

    Parameters
    ----------
    x : Variable or array
        Floating point.

    Returns
    -------
    Variable
        Of ``x``'s shape and dtype.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> y = F.erf(agrad.current_backend().asarray([0.0, 10.0]))
    >>> [round(v, 6) for v in agrad.cuda.as_numpy(y).tolist()]
    [0.0, 1.0]
    """
    return Erf()(x)


def gelu(x: Any, approximate: str = "none") -> Variable:
    """Gaussian error linear unit, ``x * Phi(x)`` (``torch.nn.functional.gelu``).

    Parameters
    ----------
    x : Variable or array
        Floating point.
    approximate : {"none", "tanh"}, default "none"
        ``"none"``: ``0.5 x (1 + erf(x / sqrt 2))``; ``"tanh"``: PyTorch's tanh approximation.

    Returns
    -------
    Variable
        Of ``x``'s shape and dtype.

    Raises
    ------
    ValueError
        If ``approximate`` is neither ``"none"`` nor ``"tanh"``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> y = F.gelu(agrad.current_backend().asarray([0.0, 1.0]))
    >>> [round(v, 4) for v in agrad.cuda.as_numpy(y).tolist()]
    [0.0, 0.8413]
    """
    if approximate == "none":
        x = as_variable(x)
        return x * (erf(x * (1.0 / math.sqrt(2.0))) + 1.0) * 0.5
    if approximate == "tanh":
        x = as_variable(x)
        inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return x * (tanh(inner) + 1.0) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")


def silu(x: Any) -> Variable:
    """Sigmoid linear unit (swish), ``x * sigmoid(x)`` (``torch.nn.functional.silu``).

    Parameters
    ----------
    x : Variable or array
        Floating point.

    Returns
    -------
    Variable
        Of ``x``'s shape and dtype.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> agrad.cuda.as_numpy(F.silu(agrad.current_backend().asarray([0.0]))).tolist()
    [0.0]
    """
    x = as_variable(x)
    return mul(x, sigmoid(x))


def _axis(name: str, axis: Any, ndim: int) -> Any:
    """``axis`` checked: None, an int or a tuple of ints within ``ndim`` dimensions."""
    axes = axis if isinstance(axis, tuple) else (axis,)
    if axis is not None:
        for a in axes:
            if isinstance(a, bool) or not isinstance(a, numbers.Integral) or not -ndim <= a < ndim:
                raise ValueError(
                    f"{name}: axis={axis!r} is not an axis of an array with {ndim} dimensions "
                    f"(allowed: None, or ints in [{-ndim}, {ndim - 1}])"
                )
    return axis


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    """``log(sum(exp(x), axis))``, shifted by the max so that it does not overflow.

    The gradient is ``softmax(x)`` along ``axis``; the shift is a constant, so second
    derivatives are exact too.

    Parameters
    ----------
    x : Variable or array
        Floating point.
    axis : int, tuple of int or None, default None
        Reduced axes (None: all).
    keepdims : bool, default False
        Keep the reduced axes with size 1.

    Returns
    -------
    Variable
        The reduction, in ``x``'s dtype.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> y = F.logsumexp(agrad.current_backend().asarray([1000.0, 1000.0]))
    >>> round(float(y.data), 4)
    1000.6931
    """
    x = as_variable(x)
    axis = _axis("logsumexp", axis, x.ndim)
    xp = x.xp
    shift = xp.max(x.data, axis=axis, keepdims=True)
    shift = xp.where(xp.isfinite(shift), shift, xp.zeros_like(shift))  # all -inf: no shift
    total = log(_sum(exp(x - shift), axis=axis, keepdims=keepdims))
    return add(total, xp.reshape(shift, total.shape))


def _arg(name: str, x: Any, axis: Any, keepdims: bool) -> Variable:
    x = as_variable(x)
    if axis is not None and isinstance(axis, tuple):
        raise ValueError(f"{name}: axis must be None or one int, not {axis!r}")
    axis = _axis(name, axis, x.ndim)
    if x.size == 0:
        raise ValueError(f"{name}: the array is empty, so it has no {name[3:]}imum")
    xp = x.xp
    fn = xp.argmax if name == "argmax" else xp.argmin
    if axis is None:
        found = fn(xp.reshape(x.data, (-1,)))
        if keepdims:
            found = xp.reshape(found, (1,) * x.ndim)
    else:
        found = fn(x.data, axis=axis, keepdims=keepdims)
    return Variable(x.backend.from_result(found))


def argmax(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    """Index of the largest value along ``axis`` (of the flattened array for None); no gradient.

    Parameters
    ----------
    x : Variable or array
        Any real dtype.
    axis : int or None, default None
        The axis searched.
    keepdims : bool, default False
        Keep the searched axis with size 1.

    Returns
    -------
    Variable
        Integer indexes (the first one where values tie), outside any graph.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.current_backend().asarray([[1.0, 5.0], [7.0, 2.0]])
    >>> int(F.argmax(x).data), agrad.cuda.as_numpy(F.argmax(x, axis=1)).tolist()
    (2, [1, 0])
    """
    return _arg("argmax", x, axis, keepdims)


def argmin(x: Any, axis: Any = None, keepdims: bool = False) -> Variable:
    """Index of the smallest value along ``axis``; no gradient (see :func:`argmax`).

    Parameters
    ----------
    x : Variable or array
        Any real dtype.
    axis : int or None, default None
        The axis searched.
    keepdims : bool, default False
        Keep the searched axis with size 1.

    Returns
    -------
    Variable
        Integer indexes, outside any graph.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.current_backend().asarray([[1.0, 5.0], [7.0, 2.0]])
    >>> agrad.cuda.as_numpy(F.argmin(x, axis=0)).tolist()
    [0, 1]
    """
    return _arg("argmin", x, axis, keepdims)


def one_hot(t: Any, num_classes: int) -> Variable:
    """One-hot codes of integer labels: shape ``t.shape + (num_classes,)``, int64 as PyTorch's.

    Parameters
    ----------
    t : Variable or array
        Integer class labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes (>= 1).

    Returns
    -------
    Variable
        0/1 codes (no gradient); cast with ``F.astype`` to use them as floats.

    Raises
    ------
    TypeError
        If ``t`` is not integer, or ``num_classes`` not an int.
    ValueError
        If ``num_classes < 1``, or a label is outside ``[0, num_classes)`` (checked where it
        costs no wait for a device: on the CPU, outside ``agrad.jit``).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> agrad.cuda.as_numpy(F.one_hot(agrad.current_backend().asarray([0, 2]), 3)).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    t = as_variable(t)
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"one_hot: num_classes must be an int, not {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be >= 1, not {num_classes}")
    xp = t.xp
    if not xp.isdtype(t.dtype, "integral"):
        raise TypeError(f"one_hot: labels must be integers, not {t.dtype}")
    backend = t.backend
    if not backend.checks_stay_on_device:
        bad = xp.any((t.data < 0) | (t.data >= num_classes))
        if bool(bad):
            raise ValueError(f"one_hot: a label is outside [0, {num_classes}) (num_classes)")
    classes = xp.arange(num_classes, dtype=t.dtype)
    codes = xp.expand_dims(t.data, axis=-1) == classes
    return Variable(xp.astype(codes, backend.dtype("int64")))


def layer_norm(
    x: Any,
    normalized_shape: Any,
    weight: Any = None,
    bias: Any = None,
    eps: float = 1e-5,
) -> Variable:
    """Normalise over the last ``len(normalized_shape)`` axes, then scale and shift
    (``torch.nn.functional.layer_norm``; the biased variance, as PyTorch).

    Parameters
    ----------
    x : Variable or array
        Floating point, its trailing shape equal to ``normalized_shape``.
    normalized_shape : int or tuple of int
        The trailing shape normalised over.
    weight, bias : Variable or array, optional
        Of shape ``normalized_shape``: multiplied, then added.
    eps : float, default 1e-5
        Added to the variance.

    Returns
    -------
    Variable
        Of ``x``'s shape.

    Raises
    ------
    ValueError
        If ``x``'s trailing shape, or ``weight``'s or ``bias``'s shape, is not
        ``normalized_shape``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> y = F.layer_norm(agrad.current_backend().asarray([[1.0, 3.0]]), 2)
    >>> [round(v, 3) for v in agrad.cuda.as_numpy(y).ravel().tolist()]
    [-1.0, 1.0]
    """
    x = as_variable(x)
    shape = (
        (normalized_shape,)
        if isinstance(normalized_shape, numbers.Integral)
        else tuple(normalized_shape)
    )
    n = len(shape)
    if n == 0 or n > x.ndim or tuple(x.shape[-n:]) != shape:
        raise ValueError(
            f"layer_norm: normalized_shape {shape} must be the trailing shape of the input "
            f"(its shape is {tuple(x.shape)})"
        )
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != shape:
            raise ValueError(
                f"layer_norm: {name} has shape {tuple(value.shape)}, not normalized_shape {shape}"
            )
    axes = tuple(range(x.ndim - n, x.ndim))
    centred = x - mean(x, axis=axes, keepdims=True)
    variance = mean(centred * centred, axis=axes, keepdims=True)
    y = centred / sqrt(variance + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def scaled_dot_product_attention(
    q: Any,
    k: Any,
    v: Any,
    attn_mask: Any = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> Variable:
    """``softmax(q @ k^T * scale + mask) @ v`` over the last two axes
    (``torch.nn.functional.scaled_dot_product_attention``).

    Parameters
    ----------
    q : Variable or array
        Queries, shape (..., L, E).
    k : Variable or array
        Keys, shape (..., S, E).
    v : Variable or array
        Values, shape (..., S, Ev).
    attn_mask : array or Variable, optional
        Broadcastable to (..., L, S): boolean (True takes part) or added to the scores.
    is_causal : bool, default False
        Query ``i`` attends to keys ``j <= i`` only.
    scale : float, optional
        Default ``1 / sqrt(E)``.

    Returns
    -------
    Variable
        Shape (..., L, Ev).

    Raises
    ------
    ValueError
        If both ``attn_mask`` and ``is_causal`` are given (as PyTorch), or the shapes differ.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> q = agrad.current_backend().asarray([[[1.0, 0.0], [0.0, 1.0]]])
    >>> F.scaled_dot_product_attention(q, q, q, is_causal=True).shape
    (1, 2, 2)
    """
    q, k, v = as_variable(q), as_variable(k), as_variable(v)
    if q.ndim < 2 or k.ndim < 2 or v.ndim < 2:
        raise ValueError("scaled_dot_product_attention: q, k and v need (..., length, features)")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: q {tuple(q.shape)}, k {tuple(k.shape)} and v "
            f"{tuple(v.shape)} do not fit: q and k need the same last axis, k and v the same "
            "length"
        )
    if attn_mask is not None and is_causal:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal, not both")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    axes = (*range(k.ndim - 2), k.ndim - 1, k.ndim - 2)
    scores = matmul(q, transpose(k, axes)) * scale
    xp = q.xp
    length, keys = q.shape[-2], k.shape[-2]
    if is_causal:
        rows = xp.reshape(xp.arange(length), (length, 1))
        cols = xp.reshape(xp.arange(keys), (1, keys))
        attn_mask = cols <= rows
    if attn_mask is not None:
        mask = attn_mask.data if isinstance(attn_mask, Variable) else attn_mask
        if xp.isdtype(mask.dtype, "bool"):
            blocked = xp.full(tuple(scores.shape), -math.inf, dtype=scores.dtype)
            scores = where(xp.broadcast_to(mask, tuple(scores.shape)), scores, blocked)
        else:
            scores = scores + attn_mask
    weights = softmax(scores, axis=-1)
    out = matmul(weights, v)
    return reshape(out, (*q.shape[:-1], v.shape[-1]))
