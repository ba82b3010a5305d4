"""Shared checks for the function tests: numerical gradients, double backward, fast == graph."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.cuda import as_numpy
from agrad.utils import gradient_check

rng = np.random.default_rng(0)


def randn(*shape: int) -> np.ndarray:
    """Host float64 normal samples (reproducible across the session)."""
    return rng.standard_normal(shape)


def away_from(values: np.ndarray, kinks: tuple[float, ...], gap: float = 0.05) -> np.ndarray:
    """``values`` nudged so that none lies within ``gap`` of a kink (finite differences break)."""
    out = values.copy()
    for kink in kinks:
        close = np.abs(out - kink) < gap
        out[close] = kink + np.where(out[close] >= kink, gap, -gap) * 2
    return out


def host(v: Any) -> np.ndarray:
    """A Variable or array of any backend as a NumPy array."""
    return np.asarray(as_numpy(v))


def _outputs(y: Any) -> list:
    return list(y) if isinstance(y, (list, tuple)) else [y]


def _loss(y: Any) -> Variable:
    # sin keeps the gradient dependent on x even for linear f, so the second order is not zero
    total = None
    for out in _outputs(y):
        term = F.sum(F.sin(out))
        total = term if total is None else total + term
    return total


def grad_of(f: Callable) -> Callable:
    """x -> d sum(sin(f(x))) / dx, built with create_graph=True so it can be differentiated."""

    def gradient(x: Variable) -> Variable:
        x.cleargrad()
        _loss(f(x)).backward(create_graph=True)
        gx = x.grad
        x.cleargrad()  # the caller's backward must start from no gradient
        return gx

    gradient.__qualname__ = f"grad_of({getattr(f, '__qualname__', f)})"
    return gradient


def check_function(
    xp: Any,
    f: Callable,
    x: np.ndarray,
    *,
    double: bool = True,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Gradient vs numerical, double backward vs numerical, and fast path == graph path."""
    data = xp.asarray(x)
    gradient_check(f, data, rtol=rtol, atol=atol)
    if double:
        gradient_check(grad_of(f), data, rtol=rtol * 10, atol=atol * 10)
    check_fast_equals_graph(xp, f, x)


def check_fast_equals_graph(xp: Any, f: Callable, x: np.ndarray) -> None:
    """backward() and backward(create_graph=True) give the same gradient."""
    grads = []
    for create_graph in (False, True):
        v = Variable(xp.asarray(x))
        _loss(f(v)).backward(create_graph=create_graph)
        grads.append(host(v.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def check_dtype(xp: Any, f: Callable, x: np.ndarray, dtype_name: str) -> None:
    """Output and gradient keep the input's floating dtype."""
    backend = agrad.current_backend()
    dtype = backend.dtype(dtype_name)
    v = Variable(xp.asarray(x, dtype=dtype))
    outputs = _outputs(f(v))
    for out in outputs:
        assert out.dtype == dtype, (dtype_name, out.dtype)
    _loss(outputs).backward()
    assert v.grad is not None
    assert v.grad.dtype == dtype, (dtype_name, v.grad.dtype)


def check_read_only(f: Callable, x: np.ndarray) -> None:
    """A read-only NumPy input passes through forward and backward unchanged."""
    frozen = np.array(x)
    frozen.flags.writeable = False
    before = frozen.copy()
    v = Variable(frozen)
    _loss(f(v)).backward()
    _loss(f(v)).backward(create_graph=True)
    np.testing.assert_array_equal(frozen, before)


def dtypes_for(xp: Any) -> list[str]:
    """float32 and float64 everywhere; float16 on NumPy."""
    names = ["float32", "float64"]
    if agrad.current_backend().name == "numpy":
        names.append("float16")
    return names


def check_double_backward(f: Callable, x: Any) -> None:
    """The gradient built with ``create_graph=True`` is itself checked by central differences
    (along a random direction, against random output weights)."""
    xp = agrad.backends.backend_of(x).xp
    draw = np.random.default_rng(11)
    weights = xp.asarray(draw.standard_normal(tuple(f(Variable(x)).shape)), dtype=xp.float64)
    direction = xp.asarray(draw.standard_normal(tuple(x.shape)), dtype=xp.float64)

    def gradient_along_direction(xv: Variable) -> Variable:
        xv.cleargrad()
        F.sum(f(xv) * weights).backward(create_graph=True)
        gx = xv.grad
        xv.cleargrad()  # the outer backward must start from a clean slate
        return F.sum(gx * direction)

    gradient_check(gradient_along_direction, x)
