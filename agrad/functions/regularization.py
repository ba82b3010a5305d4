"""Dropout and batch normalisation: both behave differently in training and in test mode.

Running statistics of ``batch_norm``: DeZero updates the caller's ``mean``/``var`` arrays in
place. agrad does the same for arrays (``mean[...] = ...``, which NumPy, CuPy and
array-api-strict allow; read-only or immutable arrays raise), and for ``Variable``/``Parameter``
running statistics it rebinds ``.data`` to the new array instead, which works on any backend.
"""

from __future__ import annotations

import numbers
from typing import Any

from agrad.backends import backend_of
from agrad.config import Config
from agrad.core import Function, Variable, as_variable
from agrad.functions._axes import size_of

__all__ = [
    "Dropout",
    "BatchNorm",
    "dropout",
    "batch_norm",
    "batch_nrom",
]


class Dropout(Function):
    """x * mask / (1 - ratio): inverted dropout with a fixed 0/1 ``mask`` of x's shape.

    ``scale`` is 1 - ratio; a scale of 0 (ratio 1: every element dropped) gives zeros, not 0/0.
    The function behind :func:`dropout`, called as ``Dropout(mask, scale)(x)``; its backward
    keeps only the mask: the gradient is ``gy * mask / scale``.

    Parameters
    ----------
    mask : array
        Booleans (or 0/1) of ``x``'s shape: True keeps an element.
    scale : float
        ``1 - dropout_ratio``; the kept elements are divided by it.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.asarray([1.0, 2.0, 3.0]))
    >>> y = F.Dropout(xp.asarray([True, False, True]), 0.5)(x)
    >>> y.backward()
    >>> y, x.grad
    (variable([2. 0. 6.]), variable([2. 0. 2.]))
    """

    retain_inputs = ()
    retain_outputs = ()
    retain_attributes = ("mask",)

    def __init__(self, mask: Any, scale: float) -> None:
        self.mask = mask
        self.scale = scale

    def forward(self, x: Any) -> Any:
        if self.scale == 0:
            return self.xp.zeros_like(x)
        return x * self.xp.astype(self.mask, x.dtype) / self.scale

    def vjp(self, d, xs, ys, gys):
        gy = gys[0]
        if self.scale == 0:
            return gy * 0.0  # gy is a Variable when the backward is recorded
        return gy * self.xp.astype(self.mask, gy.dtype) / self.scale


def _check_dropout_ratio(dropout_ratio: Any) -> float:
    if isinstance(dropout_ratio, bool) or not isinstance(dropout_ratio, numbers.Real):
        raise TypeError(f"dropout: dropout_ratio must be a number, not {dropout_ratio!r}")
    ratio = float(dropout_ratio)
    if not 0.0 <= ratio <= 1.0:  # also false for NaN
        raise ValueError(
            f"dropout: dropout_ratio={dropout_ratio!r} is not a probability: it must satisfy "
            "0 <= dropout_ratio <= 1"
        )
    return ratio


def dropout(x: Any, dropout_ratio: float = 0.5) -> Variable:
    """Zero each element with probability ``dropout_ratio`` and rescale the rest (training only).

    ``dropout_ratio`` must lie in [0, 1] (checked in both modes); 1 drops everything and gives
    zeros with a zero gradient, as PyTorch does. In test mode (``Config.train`` False) ``x``
    comes back unchanged. The mask is drawn from the backend's seeded random numbers
    (``agrad.seed``), as DeZero draws from ``np.random``.

    Parameters
    ----------
    x : Variable or array
        Input of any shape.
    dropout_ratio : float, default 0.5
        The probability that an element is zeroed, in [0, 1].

    Returns
    -------
    Variable
        In training mode, of ``x``'s shape and dtype: each element zeroed or divided by
        ``1 - dropout_ratio``; the gradient goes through the same mask and scale. In test mode
        ``x`` itself (as a Variable).

    Raises
    ------
    TypeError
        If ``dropout_ratio`` is not a real number (a bool included).
    ValueError
        If ``dropout_ratio`` is outside [0, 1] (or NaN).

    See Also
    --------
    agrad.test_mode : Turns dropout off inside a ``with`` block.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.ones((2, 4)))
    >>> y = F.dropout(x, 0.5)
    >>> bool(xp.all((y.data == 0.0) | (y.data == 2.0)))  # kept ones are scaled by 1 / 0.5
    True
    >>> F.sum(y).backward()
    >>> bool(xp.all(x.grad.data == y.data))  # the gradient has the same mask and scale
    True
    >>> with agrad.test_mode():
    ...     F.dropout(x) is x
    True
    >>> F.dropout(x, 1.5)
    Traceback (most recent call last):
      ...
    ValueError: dropout: dropout_ratio=1.5 is not a probability: ...
    """
    ratio = _check_dropout_ratio(dropout_ratio)
    x = as_variable(x)
    if not Config.train:
        return x
    backend = backend_of(x.data)
    mask = backend.random(tuple(x.shape)) > ratio
    return Dropout(mask, 1.0 - ratio)(x)


def _running_data(stat: Any) -> Any:
    return stat.data if isinstance(stat, Variable) else stat


def _store_running(stat: Any, value: Any, xp: Any) -> None:
    """Write the new running statistic into ``stat`` (see the module docstring)."""
    if isinstance(stat, Variable):
        stat.data = xp.astype(value, stat.data.dtype)
        return
    try:
        stat[...] = xp.astype(value, stat.dtype)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            "batch_norm: cannot update the running statistics in place "
            f"({type(exc).__name__}: {exc}); pass them as Variables/Parameters instead"
        ) from exc


class BatchNorm(Function):
    """gamma * (x - mean) / sqrt(var + eps) + beta over the batch (2-D) or batch and pixels (NCHW).

    In training mode the statistics are those of the batch and the running ``mean``/``var``
    are updated (var scaled by m/(m-1), DeZero's unbiased estimate); in test mode the running
    statistics normalise and are left alone. The gradient is twice differentiable in both modes.
    The function behind :func:`batch_norm`, called as ``BatchNorm(mean, var, decay,
    eps)(x, gamma, beta)``; the mode is read at the forward pass.

    Parameters
    ----------
    mean, var : array or Variable
        The running statistics, of shape (C,), updated as :func:`batch_norm` says.
    decay : float
        The weight of the old running statistics in their update.
    eps : float
        Added to the variance before its square root.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = xp.asarray([[0.0, 1.0], [2.0, 5.0]])
    >>> bn = F.BatchNorm(xp.zeros((2,)), xp.ones((2,)), 0.9, 0.0)
    >>> bn(x, xp.ones((2,)), xp.zeros((2,)))
    variable([[-1. -1.]
              [ 1.  1.]])
    """

    retain_inputs, retain_outputs = (0, 1), ()
    retain_attributes = ("running_mean", "inv_std")

    def __init__(self, mean: Any, var: Any, decay: float, eps: float) -> None:
        self.avg_mean = mean
        self.avg_var = var
        self.decay = decay
        self.eps = eps
        self.train = True
        self.axes: tuple[int, ...] = (0,)

    def _layout(self, x: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Axes reduced over, and the shape per-channel vectors take to broadcast against x."""
        if x.ndim == 2:
            return (0,), (1, x.shape[1])
        if x.ndim == 4:
            return (0, 2, 3), (1, x.shape[1], 1, 1)
        raise ValueError(
            f"batch_norm expects a 2-D (N, C) or 4-D (N, C, H, W) input, not {x.ndim}-D"
        )

    def forward(self, x: Any, gamma: Any, beta: Any) -> Any:
        xp = self.xp
        self.axes, channel_shape = self._layout(x)
        channels = x.shape[1]
        stats = (
            ("gamma", gamma),
            ("beta", beta),
            ("mean", _running_data(self.avg_mean)),
            ("var", _running_data(self.avg_var)),
        )
        for name, value in stats:
            if tuple(value.shape) != (channels,):
                raise ValueError(
                    f"batch_norm: {name} must have shape ({channels},), one entry per channel "
                    f"of x (axis 1 of shape {tuple(x.shape)}), not {tuple(value.shape)}"
                )
        self.train = Config.train
        gamma = xp.reshape(gamma, channel_shape)
        beta = xp.reshape(beta, channel_shape)
        if self.train:
            mean = xp.mean(x, axis=self.axes, keepdims=True)
            var = xp.mean((x - mean) ** 2, axis=self.axes, keepdims=True)
            inv_std = 1 / xp.sqrt(var + self.eps)
            m = size_of(x) // size_of(gamma)
            adjust = m / max(m - 1.0, 1.0)
            decay = self.decay
            avg_mean, avg_var = _running_data(self.avg_mean), _running_data(self.avg_var)
            new_mean = avg_mean * decay + (1 - decay) * xp.reshape(mean, avg_mean.shape)
            new_var = avg_var * decay + (1 - decay) * adjust * xp.reshape(var, avg_var.shape)
            _store_running(self.avg_mean, new_mean, xp)
            _store_running(self.avg_var, new_var, xp)
        else:
            mean = xp.reshape(_running_data(self.avg_mean), channel_shape)
            var = xp.reshape(_running_data(self.avg_var), channel_shape)
            inv_std = xp.astype(1 / xp.sqrt(var + self.eps), x.dtype)
            mean = xp.astype(mean, x.dtype)
            # kept for backward: the running statistics may change before it runs
            self.running_mean, self.inv_std = mean, inv_std
        x_hat = (x - mean) * inv_std
        return gamma * x_hat + beta

    def vjp(self, d, xs, ys, gys):
        x, gamma, _ = xs
        gy = gys[0]
        axes = self.axes
        channel_shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        gamma_b = d.reshape(gamma, channel_shape)
        if self.train:
            # recompute the batch statistics from x, so the graph path differentiates them too
            m = size_of(x) // size_of(gamma)
            mean = d.sum(x, axis=axes, keepdims=True) / m
            centred = x - mean
            var = d.sum(centred * centred, axis=axes, keepdims=True) / m
            inv_std = 1 / d.sqrt(var + self.eps)
            x_hat = centred * inv_std
            g_beta = d.sum(gy, axis=axes)
            g_gamma = d.sum(gy * x_hat, axis=axes)
            mean_gy = d.reshape(g_beta, channel_shape) / m
            mean_gy_x_hat = d.reshape(g_gamma, channel_shape) / m
            gx = (gy - mean_gy - x_hat * mean_gy_x_hat) * (gamma_b * inv_std)
        else:
            x_hat = (x - self.running_mean) * self.inv_std
            g_beta = d.sum(gy, axis=axes)
            g_gamma = d.sum(gy * x_hat, axis=axes)
            gx = gy * (gamma_b * self.inv_std)
        return gx, g_gamma, g_beta


def batch_norm(
    x: Any,
    gamma: Any,
    beta: Any,
    mean: Any,
    var: Any,
    decay: float = 0.9,
    eps: float = 2e-5,
) -> Variable:
    """Batch normalisation of ``x`` (N, C) or (N, C, H, W) with scale ``gamma`` and shift ``beta``.

    ``mean``/``var`` are the running statistics: updated during training (see the module
    docstring for how), used instead of the batch's in test mode. ``batch_nrom`` is the same
    function under DeZero's spelling.

    Parameters
    ----------
    x : Variable or array
        Input of shape (N, C), normalised over N, or (N, C, H, W), normalised over N, H and W.
    gamma, beta : Variable or array
        Scale and shift, of shape (C,).
    mean, var : array or Variable
        Running statistics of shape (C,). In training mode they become
        ``decay * old + (1 - decay) * batch``, the batch variance taken as m/(m-1) times the
        biased one (m values per channel): written into an array in place, rebound as ``.data``
        of a Variable or Parameter.
    decay : float, default 0.9
        The weight of the old running statistics in their update.
    eps : float, default 2e-5
        Added to the variance before its square root.

    Returns
    -------
    Variable
        ``gamma * (x - mean) / sqrt(var + eps) + beta``, of ``x``'s shape, with the batch's
        statistics in training mode and the running ones in test mode.

    Raises
    ------
    ValueError
        If ``x`` is neither 2-D nor 4-D.
    TypeError
        If the running statistics are arrays that cannot be written in place (read-only or
        immutable); pass Variables or Parameters then.

    See Also
    --------
    agrad.layers.BatchNorm : The layer that holds gamma, beta and the running statistics.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = xp.asarray([[0.0, 1.0], [2.0, 5.0]])
    >>> gamma = agrad.Variable(xp.ones((2,)))
    >>> beta = agrad.Variable(xp.zeros((2,)))
    >>> mean, var = xp.zeros((2,)), xp.ones((2,))
    >>> y = F.batch_norm(x, gamma, beta, mean, var, eps=0.0)
    >>> y
    variable([[-1. -1.]
              [ 1.  1.]])
    >>> agrad.cuda.as_numpy(mean), agrad.cuda.as_numpy(var)  # batch mean (1, 3), var (2, 8)
    (array([0.1, 0.3]), array([1.1, 1.7]))
    >>> y[0, 0].backward()
    >>> gamma.grad, beta.grad
    (variable([-1.  0.]), variable([1. 0.]))
    >>> with agrad.test_mode():  # the running statistics given normalise
    ...     F.batch_norm(x, gamma, beta, xp.asarray([1.0, 3.0]), xp.asarray([1.0, 4.0]), eps=0.0)
    variable([[-1. -1.]
              [ 1.  1.]])
    """
    return BatchNorm(mean, var, decay, eps)(x, gamma, beta)


batch_nrom = batch_norm  # DeZero's spelling
