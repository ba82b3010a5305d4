"""Utilities: numerical gradient checks, array helpers, and graph export (DeZero's ``utils``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agrad.backends import backend_of
from agrad.backends.numpy import host
from agrad.core import Variable, as_variable
from agrad.ops import array_ops

__all__ = [
    "array_allclose",
    "array_equal",
    "get_conv_outsize",
    "get_deconv_outsize",
    "gradient_check",
    "logsumexp",
    "max_backward_shape",
    "numerical_grad",
    "pair",
    "reshape_sum_backward",
    "sum_to",
]


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Variable) else x


def _total(y: Any, xp: Any) -> Any:
    """Sum of every element of every output of ``f`` (outputs may be a Variable, array or list)."""
    outputs = y if isinstance(y, (list, tuple)) else [y]
    return sum(float(xp.sum(_data(o))) for o in outputs)


def numerical_grad(f: Callable, x: Any, *args: Any, eps: float = 1e-4, **kwargs: Any) -> Any:
    """d sum(f(x, *args)) / dx by central differences, in float64, on ``x``'s own backend.

    ``x`` (a Variable or an array) is never written to.
    """
    data = _data(x)
    xp = backend_of(data).xp
    base = xp.astype(data, xp.float64)
    flat = xp.reshape(base, (-1,))
    positions = xp.arange(flat.shape[0])
    values = []
    for i in range(flat.shape[0]):
        step = xp.reshape(xp.astype(positions == i, xp.float64) * eps, base.shape)
        plus = _total(f(Variable(xp.asarray(base + step)), *args, **kwargs), xp)
        minus = _total(f(Variable(xp.asarray(base - step)), *args, **kwargs), xp)
        values.append((plus - minus) / (2 * eps))
    return xp.reshape(xp.asarray(values, dtype=xp.float64), base.shape)


def gradient_check(
    f: Callable, x: Any, *args: Any, rtol: float = 1e-4, atol: float = 1e-5, **kwargs: Any
) -> bool:
    """Compare backprop with ``numerical_grad`` in float64; ``AssertionError`` with details if off."""
    data = _data(x)
    xp = backend_of(data).xp
    x64 = Variable(xp.astype(data, xp.float64))
    y = f(x64, *args, **kwargs)
    outputs = y if isinstance(y, (list, tuple)) else [y]
    total = outputs[0] if len(outputs) == 1 else sum(o.sum() for o in outputs)
    total.backward()
    if x64.grad is None:
        raise AssertionError(f"gradient_check({_name(f)}): backward gave the input no gradient")
    backprop = host.asarray(backend_of(x64.grad.data).to_host(x64.grad.data))
    numeric = host.asarray(backend_of(data).to_host(numerical_grad(f, x64.data, *args, **kwargs)))
    if backprop.shape != numeric.shape:
        raise AssertionError(
            f"gradient_check({_name(f)}): gradient shape {backprop.shape} != input shape "
            f"{numeric.shape}"
        )
    if host.allclose(backprop, numeric, rtol=rtol, atol=atol):
        return True
    error = host.abs(backprop - numeric)
    where = host.unravel_index(
        int(host.argmax(error - atol - rtol * host.abs(numeric))), error.shape
    )
    relative = error / host.maximum(host.abs(numeric), 1e-300)
    raise AssertionError(
        f"gradient_check({_name(f)}): backprop and numerical gradients differ for the input of "
        f"shape {tuple(data.shape)} dtype {data.dtype}: largest absolute error "
        f"{error.max():.3g}, largest relative error {relative.max():.3g}; worst at index "
        f"{tuple(int(i) for i in where)}: backprop {backprop[where]!r} vs numerical "
        f"{numeric[where]!r} (rtol={rtol}, atol={atol})"
    )


def _name(f: Callable) -> str:
    return getattr(f, "__qualname__", None) or type(f).__name__


def array_equal(a: Any, b: Any) -> bool:
    """Whether two arrays/Variables (any backend) hold equal values."""
    return bool(host.array_equal(_to_host(a), _to_host(b)))


def array_allclose(a: Any, b: Any, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Whether two arrays/Variables (any backend) are close, NumPy's ``allclose`` on the host."""
    return bool(host.allclose(_to_host(a), _to_host(b), rtol=rtol, atol=atol))


def _to_host(x: Any) -> Any:
    x = _data(x)
    backend = backend_of(x, None)
    return host.asarray(x) if backend is None else backend.to_host(x)


def sum_to(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum array ``x`` over leading and size-1 axes so that it takes ``shape``."""
    return array_ops(backend_of(x).xp).sum_to(x, shape)


def logsumexp(x: Any, axis: int = 1) -> Any:
    """log(sum(exp(x), axis, keepdims=True)), shifted by the max so it never overflows."""
    xp = backend_of(x).xp
    m = xp.max(x, axis=axis, keepdims=True)
    return m + xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))


def reshape_sum_backward(gy: Any, x_shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """Reshape a gradient of ``sum(x, axis)`` so that it broadcasts against ``x``."""
    from agrad.functions.reduction import _keepdims_shape

    if keepdims or (axis is None and len(x_shape) == 0):
        return gy
    return (
        as_variable(gy).reshape(_keepdims_shape(tuple(x_shape), axis))
        if isinstance(gy, Variable)
        else array_ops(backend_of(gy).xp).reshape(gy, _keepdims_shape(tuple(x_shape), axis))
    )


def max_backward_shape(x: Any, axis: Any) -> list[int]:
    """Shape of ``x`` with the reduced ``axis`` (int, tuple or None = all) set to 1 (DeZero)."""
    from agrad.functions.reduction import _keepdims_shape

    return list(_keepdims_shape(tuple(x.shape), axis))


def get_conv_outsize(input_size: int, kernel_size: int, stride: int, pad: int) -> int:
    """Output length of a convolution along one axis."""
    return (input_size + pad * 2 - kernel_size) // stride + 1


def get_deconv_outsize(size: int, k: int, s: int, p: int) -> int:
    """Output length of a transposed convolution along one axis."""
    return s * (size - 1) + k - 2 * p


def pair(x: Any) -> tuple[int, int]:
    """``(x, x)`` for an int, ``x`` for a 2-tuple; ``ValueError`` otherwise."""
    if isinstance(x, int):
        return (x, x)
    if isinstance(x, tuple):
        if len(x) != 2:
            raise ValueError(f"pair: expected an int or a 2-tuple, got a {len(x)}-tuple {x!r}")
        return x
    raise ValueError(f"pair: expected an int or a 2-tuple, got {type(x).__name__} {x!r}")
