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
    """Matrix product node, x @ W, for 1-D, 2-D and batched (N-D) operands (DeZero's ``matmul``).

    Called as ``MatMul()(x, W)``; the function behind :func:`matmul` and ``@``. Its backward reads
    both inputs; for 2-D operands it skips the gradient of an input that needs none (a raw-array
    data batch), saving one matrix product.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.MatMul()(backend.asarray([[1.0, 2.0]]), backend.asarray([[3.0], [4.0]]))
    variable([[11.]])
    """

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
    """Matrix product ``x @ W`` (also ``x @ W`` on Variables, and ``x.dot(W)``).

    Parameters
    ----------
    x, W : Variable or array
        Operands as for the Array API's ``matmul``: a 1-D ``x`` is a row and a 1-D ``W`` a
        column; more than two dimensions are stacks of matrices, broadcast together.

    Returns
    -------
    Variable
        The product. The gradients are ``gy @ W.T`` and ``x.T @ gy``, summed over broadcast
        stack dimensions. Inside :func:`agrad.amp.autocast`, float32 operands are multiplied in
        float16 and the result is float32.

    Raises
    ------
    TypeError
        If ``x`` and ``W`` are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray([[1.0, 2.0]]))
    >>> W = agrad.Variable(backend.asarray([[3.0, 0.0], [4.0, 1.0]]))
    >>> y = F.matmul(x, W)
    >>> y
    variable([[11.  2.]])
    >>> y.backward()
    >>> x.grad, W.grad
    (variable([[3. 5.]]), variable([[1. 1.]
              [2. 2.]]))
    """
    if _autocast_dtype.get() is not None:  # inside agrad.amp.autocast: in float16
        from agrad.amp import autocast_call

        return autocast_call(MatMul(), x, W)
    for name, operand in (("x", x), ("W", W)):
        if operand is None:
            raise TypeError(f"matmul: {name} is None; expected a Variable or an array")
    return MatMul()(x, W)


class Linear(Function):
    """Affine node, ``x @ W + b`` with ``W`` of shape (in, out) and an optional bias (DeZero's).

    Called as ``Linear()(x, W)`` or ``Linear()(x, W, b)`` (``b`` may be None); the function behind
    :func:`linear` and :class:`agrad.layers.Linear`. One graph node instead of two, keeping only
    ``x`` and ``W`` for backward.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = backend.asarray([[1.0, 2.0]])
    >>> W = backend.asarray([[1.0, 0.0], [0.0, 1.0]])
    >>> F.Linear()(x, W, backend.asarray([10.0, 20.0]))
    variable([[11. 22.]])
    """

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
    """Affine map ``x @ W + b`` in one graph node; ``b`` may be None.

    With 2-D operands, a raw-array ``x`` (a data batch) gets no gradient, which saves one of the
    three matrix products of a training step.

    Parameters
    ----------
    x : Variable or array
        Inputs of shape (N, in) (or as for :func:`matmul`).
    W : Variable or array
        Weight of shape (in, out).
    b : Variable, array or None, default None
        Bias of shape (out,) (anything that broadcasts to the output); None for no bias.

    Returns
    -------
    Variable
        ``x @ W + b``, of shape (N, out); the bias gradient is summed over the batch. Inside
        :func:`agrad.amp.autocast`, the product of float32 operands is computed in float16 and the
        result is float32.

    Raises
    ------
    TypeError
        If the inputs are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = backend.asarray([[1.0, 2.0], [3.0, 4.0]])
    >>> W = agrad.Variable(backend.asarray([[1.0], [1.0]]))
    >>> b = agrad.Variable(backend.asarray([0.5]))
    >>> y = F.linear(x, W, b)
    >>> y
    variable([[3.5]
              [7.5]])
    >>> y.backward()
    >>> W.grad, b.grad
    (variable([[4.]
              [6.]]), variable([2.]))
    """
    if _autocast_dtype.get() is not None:  # inside agrad.amp.autocast: in float16
        from agrad.amp import autocast_call

        return autocast_call(Linear(), x, W, b)
    return Linear()(x, W) if b is None else Linear()(x, W, b)


def linear_simple(x: Any, W: Any, b: Any = None) -> Variable:
    """``linear`` built from ``matmul`` and ``+`` (DeZero's composite version).

    The same values and gradients as :func:`linear`, in two graph nodes (one without a bias).

    Parameters
    ----------
    x : Variable or array
        Inputs of shape (N, in) (or as for :func:`matmul`).
    W : Variable or array
        Weight of shape (in, out).
    b : Variable, array or None, default None
        Bias of shape (out,) (anything that broadcasts to the output); None for no bias.

    Returns
    -------
    Variable
        ``x @ W + b``, of shape (N, out); the bias gradient is summed over the batch. Inside
        :func:`agrad.amp.autocast`, the product of float32 operands is computed in float16 and the
        result is float32.

    Raises
    ------
    TypeError
        If the inputs are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> x = backend.asarray([[1.0, 2.0]])
    >>> W = agrad.Variable(backend.asarray([[1.0], [1.0]]))
    >>> y = F.linear_simple(x, W, backend.asarray([0.5]))
    >>> y.backward()
    >>> y, W.grad
    (variable([[3.5]]), variable([[1.]
              [2.]]))
    """
    t = matmul(x, W)
    if b is None:
        return t
    # DeZero frees t.data here; agrad's Add reads its inputs' shapes during backward, so keep it
    return t + b
