"""Matrix products."""

from __future__ import annotations

from typing import Any

from agrad.core import Function, Variable

__all__ = [
    "MatMul",
    "matmul",
]


class MatMul(Function):
    """x @ W for 1-D and 2-D operands (DeZero's ``matmul``)."""

    def forward(self, x: Any, W: Any) -> Any:
        return self.xp.matmul(x, W)

    def vjp(self, d, xs, ys, gys):
        (gy,), (x, W) = gys, xs
        if x.ndim == 2 and W.ndim == 2:
            return d.matmul(gy, d.transpose(W)), d.matmul(d.transpose(x), gy)
        return _matmul_grads(d, x, W, gy)


def _matmul_grads(d: Any, x: Any, W: Any, gy: Any) -> tuple[Any, Any]:
    """Gradients of ``matmul`` for 1-D operands and batched (N-D) stacks of matrices."""
    x2 = d.reshape(x, (1,) + tuple(x.shape)) if x.ndim == 1 else x
    W2 = d.reshape(W, tuple(W.shape) + (1,)) if W.ndim == 1 else W
    g2 = gy
    if x.ndim == 1:
        g2 = d.expand_dims(g2, axis=-2)
    if W.ndim == 1:
        g2 = d.expand_dims(g2, axis=-1)
    gx = d.matmul(g2, _swap_last(d, W2))
    gW = d.matmul(_swap_last(d, x2), g2)
    gx = d.sum_to(gx, x2.shape) if gx.ndim >= x2.ndim else gx
    gW = d.sum_to(gW, W2.shape) if gW.ndim >= W2.ndim else gW
    return d.reshape(gx, x.shape), d.reshape(gW, W.shape)


def _swap_last(d: Any, a: Any) -> Any:
    axes = list(range(a.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return d.transpose(a, tuple(axes))


def matmul(x: Any, W: Any) -> Variable:
    """Matrix product ``x @ W``."""
    return MatMul()(x, W)
