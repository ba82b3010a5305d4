"""Matrix products."""

from __future__ import annotations

from typing import Any

from agrad.config import _autocast_dtype
from agrad.core import Function, Variable

__all__ = [
    "MatMul",
    "Linear",
    "matmul",
    "linear",
    "linear_simple",
]


class MatMul(Function):
    """x @ W for 1-D and 2-D operands (DeZero's ``matmul``)."""

    retain_inputs = (0, 1)
    retain_outputs = ()

    def forward(self, x: Any, W: Any) -> Any:
        return self.xp.matmul(x, W)

    def vjp(self, d, xs, ys, gys):
        (gy,), (x, W) = gys, xs
        if x.ndim == 2 and W.ndim == 2:
            return _matrix_grads(self, d, x, W, gy)
        return _matmul_grads(d, x, W, gy)


def _matrix_grads(func: Function, d: Any, x: Any, W: Any, gy: Any) -> tuple[Any, Any]:
    """Gradients of a 2-D ``x @ W``; none for ``x`` when it was passed as a raw array (a data
    batch), which saves one of the three matrix products of a training step."""
    gx = d.matmul(gy, d.transpose(W)) if func.needs_input_grad(0) else None
    gW = d.matmul(d.transpose(x), gy) if func.needs_input_grad(1) else None
    return gx, gW


def _matmul_grads(d: Any, x: Any, W: Any, gy: Any) -> tuple[Any, Any]:
    """Gradients of ``matmul`` for 1-D operands and batched (N-D) stacks of matrices.

    As ``matmul`` does, a 1-D ``x`` is read as a row (1, n) and a 1-D ``W`` as a column (n, 1);
    ``gy`` gets back the axes those promotions dropped from the product (for two vectors ``gy``
    is 0-d and becomes (1, 1)), so every case reduces to the batched matrix one.
    """
    x2 = d.reshape(x, (1, *x.shape)) if x.ndim == 1 else x
    W2 = d.reshape(W, (*W.shape, 1)) if W.ndim == 1 else W
    g2 = gy
    if W.ndim == 1:
        g2 = d.reshape(g2, (*g2.shape, 1))
    if x.ndim == 1:
        g2 = d.reshape(g2, (*g2.shape[:-1], 1, g2.shape[-1]))
    gx = d.sum_to(d.matmul(g2, _swap_last(d, W2)), x2.shape)
    gW = d.sum_to(d.matmul(_swap_last(d, x2), g2), W2.shape)
    return d.reshape(gx, x.shape), d.reshape(gW, W.shape)


def _swap_last(d: Any, a: Any) -> Any:
    axes = list(range(a.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return d.transpose(a, tuple(axes))


def matmul(x: Any, W: Any) -> Variable:
    """Matrix product ``x @ W``."""
    if _autocast_dtype.get() is not None:  # inside agrad.amp.autocast: in float16
        from agrad.amp import autocast_call

        return autocast_call(MatMul(), x, W)
    return MatMul()(x, W)


class Linear(Function):
    """``x @ W + b`` with ``W`` of shape (in, out) and an optional bias (DeZero's ``Linear``)."""

    retain_inputs = (0, 1)
    retain_outputs = ()

    def forward(self, x: Any, W: Any, b: Any = None) -> Any:
        # None when called as Linear()(x, W, None), as DeZero allows
        self.bias_shape = None if b is None else tuple(b.shape)
        y = self.xp.matmul(x, W)
        return y if b is None else y + b

    def vjp(self, d, xs, ys, gys):
        (gy,), x, W = gys, xs[0], xs[1]
        if x.ndim == 2 and W.ndim == 2:
            gx, gW = _matrix_grads(self, d, x, W, gy)
        else:
            gx, gW = _matmul_grads(d, x, W, gy)
        if len(xs) == 2:
            return gx, gW
        return gx, gW, None if self.bias_shape is None else d.sum_to(gy, self.bias_shape)


def linear(x: Any, W: Any, b: Any = None) -> Variable:
    """Affine map ``x @ W + b`` in one graph node; ``b`` may be None."""
    if _autocast_dtype.get() is not None:  # inside agrad.amp.autocast: in float16
        from agrad.amp import autocast_call

        return autocast_call(Linear(), x, W, b)
    return Linear()(x, W) if b is None else Linear()(x, W, b)


def linear_simple(x: Any, W: Any, b: Any = None) -> Variable:
    """``linear`` built from ``matmul`` and ``+`` (DeZero's composite version)."""
    t = matmul(x, W)
    if b is None:
        return t
    # DeZero frees t.data here; agrad's Add reads its inputs' shapes during backward, so keep it
    return t + b
