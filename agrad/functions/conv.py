"""Convolution and pooling on NCHW images, built from strided slices (no stride tricks needed).

``im2col`` gathers every kernel window by stacking ``KH * KW`` strided slices of the padded image,
so the only Python loop runs over kernel offsets; ``col2im`` is its adjoint and adds the slices
back. Convolution is one matrix product of the window matrix with the flattened kernels.
Every backward pass is built from functions of this module again, so all of them can be
differentiated twice.
"""

from __future__ import annotations

from typing import Any

from agrad.core import Function, Variable
from agrad.ops import array_twin
from agrad.utils import get_conv_outsize, get_deconv_outsize, pair

__all__ = [
    "Conv2d",
    "Deconv2d",
    "Conv2DGradW",
    "Pooling",
    "Pooling2DGrad",
    "Pooling2DWithIndexes",
    "AveragePooling",
    "Im2col",
    "Col2im",
    "conv2d",
    "deconv2d",
    "conv2d_simple",
    "conv2d_grad_w",
    "pooling",
    "pooling_simple",
    "pooling_grad",
    "pooling_with_indexes",
    "average_pooling",
    "im2col",
    "col2im",
    "im2col_array",
    "col2im_array",
]


# -- array helpers --------------------------------------------------------------------------
def _geometry(kernel_size: Any, stride: Any, pad: Any) -> tuple[int, int, int, int, int, int]:
    (KH, KW), (SH, SW), (PH, PW) = pair(kernel_size), pair(stride), pair(pad)
    return KH, KW, SH, SW, PH, PW


def _pad_spatial(xp: Any, x: Any, PH: int, PW: int, h_axis: int) -> Any:
    """``x`` with ``PH``/``PW`` zeros around the two spatial axes ``h_axis``, ``h_axis + 1``."""
    if PH == 0 and PW == 0:
        return x
    shape = list(x.shape)
    H, W = shape[h_axis], shape[h_axis + 1]
    shape[h_axis], shape[h_axis + 1] = H + 2 * PH, W + 2 * PW
    padded = xp.zeros(tuple(shape), dtype=x.dtype)  # a fresh array of ours: setitem is fine
    inner = (*(slice(None),) * h_axis, slice(PH, PH + H), slice(PW, PW + W), ...)
    padded[inner] = x
    return padded


def _windows(xp: Any, x: Any, geometry: tuple, channels_last: bool) -> Any:
    """Every kernel window of NCHW ``x``, the window offsets on one axis of length KH*KW.

    ``channels_last``: shape (N, OH, OW, C, KH*KW), whose flattening is im2col's matrix;
    otherwise (N, C, KH*KW, OH, OW).
    """
    KH, KW, SH, SW, PH, PW = geometry
    H, W = x.shape[2], x.shape[3]
    OH, OW = get_conv_outsize(H, KH, SH, PH), get_conv_outsize(W, KW, SW, PW)
    if channels_last:
        image, h_axis = _pad_spatial(xp, xp.permute_dims(x, (0, 2, 3, 1)), PH, PW, 1), 1
    else:
        image, h_axis = _pad_spatial(xp, x, PH, PW, 2), 2
    lead = (slice(None),) * h_axis
    pieces = [
        image[
            (*lead, slice(i, i + SH * (OH - 1) + 1, SH), slice(j, j + SW * (OW - 1) + 1, SW), ...)
        ]
        for i in range(KH)
        for j in range(KW)
    ]
    return xp.stack(pieces, axis=-1 if channels_last else 2)


def _add_windows(xp: Any, col: Any, img_shape: tuple, geometry: tuple, channels_last: bool) -> Any:
    """The adjoint of ``_windows``: add every window back where it came from; NCHW result.

    ``col`` is (N, OH, OW, C, KH, KW) when ``channels_last``, else (N, C, KH, KW, OH, OW).
    """
    KH, KW, SH, SW, PH, PW = geometry
    N, C, H, W = img_shape
    if channels_last:
        OH, OW = col.shape[1], col.shape[2]
        shape, h_axis = (N, H + 2 * PH, W + 2 * PW, C), 1
    else:
        OH, OW = col.shape[4], col.shape[5]
        shape, h_axis = (N, C, H + 2 * PH, W + 2 * PW), 2
    lead = (slice(None),) * h_axis
    image = xp.zeros(shape, dtype=col.dtype)
    for i in range(KH):
        for j in range(KW):
            target = (
                *lead,
                slice(i, i + SH * (OH - 1) + 1, SH),
                slice(j, j + SW * (OW - 1) + 1, SW),
                ...,
            )
            piece = col[..., i, j] if channels_last else col[:, :, i, j, ...]
            image[target] = image[target] + piece
    inside = (*lead, slice(PH, PH + H), slice(PW, PW + W), ...)
    image = image[inside]
    return xp.permute_dims(image, (0, 3, 1, 2)) if channels_last else image


def _namespace(x: Any) -> Any:
    from agrad.backends import backend_of

    return backend_of(x).xp


def _im2col(xp: Any, img: Any, geometry: tuple, to_matrix: bool) -> Any:
    N, C = img.shape[0], img.shape[1]
    KH, KW = geometry[0], geometry[1]
    if to_matrix:
        col = _windows(xp, img, geometry, channels_last=True)
        return xp.reshape(col, (N * col.shape[1] * col.shape[2], C * KH * KW))
    col = _windows(xp, img, geometry, channels_last=False)
    return xp.reshape(col, (N, C, KH, KW, col.shape[3], col.shape[4]))


def _col2im(xp: Any, col: Any, img_shape: tuple, geometry: tuple, to_matrix: bool) -> Any:
    KH, KW, SH, SW, PH, PW = geometry
    N, C, H, W = img_shape
    if to_matrix:
        OH, OW = get_conv_outsize(H, KH, SH, PH), get_conv_outsize(W, KW, SW, PW)
        col = xp.reshape(col, (N, OH, OW, C, KH, KW))
    return _add_windows(xp, col, tuple(img_shape), geometry, channels_last=to_matrix)


def im2col_array(
    img: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0, to_matrix: bool = True
) -> Any:
    """Kernel windows of NCHW array ``img``: (N*OH*OW, C*KH*KW), or (N, C, KH, KW, OH, OW)."""
    return _im2col(_namespace(img), img, _geometry(kernel_size, stride, pad), to_matrix)


def col2im_array(
    col: Any,
    img_shape: tuple,
    kernel_size: Any,
    stride: Any = 1,
    pad: Any = 0,
    to_matrix: bool = True,
) -> Any:
    """Sum windows back into an NCHW array of ``img_shape`` (the adjoint of ``im2col_array``)."""
    geometry = _geometry(kernel_size, stride, pad)
    return _col2im(_namespace(col), col, tuple(img_shape), geometry, to_matrix)


# -- im2col / col2im ------------------------------------------------------------------------
class Im2col(Function):
    """Kernel windows of an NCHW image (see ``im2col_array``); the gradient is ``col2im``."""

    retain_inputs = retain_outputs = ()

    def __init__(self, kernel_size: Any, stride: Any = 1, pad: Any = 0, to_matrix: bool = True):
        self.kernel_size, self.stride, self.pad = kernel_size, stride, pad
        self.to_matrix = to_matrix

    def forward(self, x: Any) -> Any:
        self.input_shape = tuple(x.shape)
        geometry = _geometry(self.kernel_size, self.stride, self.pad)
        return _im2col(self.xp, x, geometry, self.to_matrix)

    def vjp(self, d, xs, ys, gys):
        return d.col2im(
            gys[0], self.input_shape, self.kernel_size, self.stride, self.pad, self.to_matrix
        )


class Col2im(Function):
    """Sum windows back into an NCHW image; the gradient is ``im2col``."""

    retain_inputs = retain_outputs = ()

    def __init__(
        self,
        input_shape: tuple,
        kernel_size: Any,
        stride: Any = 1,
        pad: Any = 0,
        to_matrix: bool = True,
    ) -> None:
        self.input_shape = tuple(input_shape)
        self.kernel_size, self.stride, self.pad = kernel_size, stride, pad
        self.to_matrix = to_matrix

    def forward(self, x: Any) -> Any:
        geometry = _geometry(self.kernel_size, self.stride, self.pad)
        return _col2im(self.xp, x, self.input_shape, geometry, self.to_matrix)

    def vjp(self, d, xs, ys, gys):
        return d.im2col(gys[0], self.kernel_size, self.stride, self.pad, self.to_matrix)


def im2col(
    x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0, to_matrix: bool = True
) -> Variable:
    """Kernel windows of NCHW ``x``: (N*OH*OW, C*KH*KW), or (N, C, KH, KW, OH, OW)."""
    return Im2col(kernel_size, stride, pad, to_matrix)(x)


def col2im(
    x: Any,
    input_shape: tuple,
    kernel_size: Any,
    stride: Any = 1,
    pad: Any = 0,
    to_matrix: bool = True,
) -> Variable:
    """Add windows ``x`` (as ``im2col`` lays them out) back into an image of ``input_shape``."""
    return Col2im(input_shape, kernel_size, stride, pad, to_matrix)(x)


@array_twin("im2col")
def _im2col_twin(xp, x, kernel_size, stride=1, pad=0, to_matrix=True):
    return _im2col(xp, x, _geometry(kernel_size, stride, pad), to_matrix)


@array_twin("col2im")
def _col2im_twin(xp, x, input_shape, kernel_size, stride=1, pad=0, to_matrix=True):
    return _col2im(xp, x, tuple(input_shape), _geometry(kernel_size, stride, pad), to_matrix)


# -- convolution ----------------------------------------------------------------------------
def _bias_grad(xs: tuple, d: Any, gy: Any) -> tuple:
    """The bias gradient as a 0- or 1-tuple: none without a bias input, None for a None bias."""
    if len(xs) == 2:
        return ()
    if xs[2] is None:  # called as Conv2d()(x, W, None), as DeZero's conv2d does
        return (None,)
    return (d.sum(gy, axis=(0, 2, 3)),)


def _conv_forward(xp: Any, x: Any, W: Any, b: Any, stride: Any, pad: Any) -> Any:
    OC, C, KH, KW = W.shape
    geometry = (KH, KW, *pair(stride), *pair(pad))
    col = _windows(xp, x, geometry, channels_last=True)  # (N, OH, OW, C, KH*KW)
    N, OH, OW = col.shape[:3]
    col = xp.reshape(col, (N * OH * OW, C * KH * KW))
    y = xp.matmul(col, xp.permute_dims(xp.reshape(W, (OC, C * KH * KW)), (1, 0)))
    if b is not None:
        y = y + b
    return xp.permute_dims(xp.reshape(y, (N, OH, OW, OC)), (0, 3, 1, 2))


def _deconv_forward(xp: Any, x: Any, W: Any, b: Any, stride: Any, pad: Any, outsize: Any) -> Any:
    C, OC, KH, KW = W.shape
    N, _, H, Wd = x.shape
    (SH, SW), (PH, PW) = pair(stride), pair(pad)
    if outsize is None:
        OH, OW = get_deconv_outsize(H, KH, SH, PH), get_deconv_outsize(Wd, KW, SW, PW)
    else:
        OH, OW = pair(outsize)
        if (get_conv_outsize(OH, KH, SH, PH), get_conv_outsize(OW, KW, SW, PW)) != (H, Wd):
            raise ValueError(
                f"deconv2d: outsize {(OH, OW)} does not convolve back to the input size "
                f"{(H, Wd)} with kernel {(KH, KW)}, stride {(SH, SW)}, pad {(PH, PW)}"
            )
    rows = xp.reshape(xp.permute_dims(x, (0, 2, 3, 1)), (N * H * Wd, C))
    col = xp.matmul(rows, xp.reshape(W, (C, OC * KH * KW)))
    col = xp.reshape(col, (N, H, Wd, OC, KH, KW))
    geometry = (KH, KW, SH, SW, PH, PW)
    y = _add_windows(xp, col, (N, OC, OH, OW), geometry, channels_last=True)
    if b is not None:
        y = y + xp.reshape(b, (1, OC, 1, 1))
    return y


def _grad_w_forward(xp: Any, x: Any, gy: Any, kernel_size: Any, stride: Any, pad: Any) -> Any:
    KH, KW = pair(kernel_size)
    C, OC = x.shape[1], gy.shape[1]
    col = _windows(xp, x, (KH, KW, *pair(stride), *pair(pad)), channels_last=True)
    col = xp.reshape(col, (-1, C * KH * KW))
    rows = xp.reshape(xp.permute_dims(gy, (0, 2, 3, 1)), (-1, OC))
    gW = xp.matmul(xp.permute_dims(rows, (1, 0)), col)
    return xp.reshape(gW, (OC, C, KH, KW))


class Conv2d(Function):
    """2-D convolution (cross-correlation) of NCHW ``x`` with ``W`` (OC, C, KH, KW), plus bias."""

    retain_inputs, retain_outputs = (0, 1), ()

    def __init__(self, stride: Any = 1, pad: Any = 0) -> None:
        self.stride, self.pad = pair(stride), pair(pad)

    def forward(self, x: Any, W: Any, b: Any = None) -> Any:
        return _conv_forward(self.xp, x, W, b, self.stride, self.pad)

    def vjp(self, d, xs, ys, gys):
        (gy,), x, W = gys, xs[0], xs[1]
        outsize = (x.shape[2], x.shape[3])
        gx = None  # a raw input batch needs no gradient: skip the col2im pass
        if self.needs_input_grad(0):
            gx = d.deconv2d(gy, W, None, self.stride, self.pad, outsize)
        gW = d.conv2d_grad_w(x, gy, (W.shape[2], W.shape[3]), self.stride, self.pad)
        return (gx, gW, *_bias_grad(xs, d, gy))


class Deconv2d(Function):
    """Transposed convolution of NCHW ``x`` with ``W`` (C, OC, KH, KW), plus bias."""

    retain_inputs, retain_outputs = (0, 1), ()

    def __init__(self, stride: Any = 1, pad: Any = 0, outsize: Any = None) -> None:
        self.stride, self.pad = pair(stride), pair(pad)
        self.outsize = None if outsize is None else pair(outsize)

    def forward(self, x: Any, W: Any, b: Any = None) -> Any:
        return _deconv_forward(self.xp, x, W, b, self.stride, self.pad, self.outsize)

    def vjp(self, d, xs, ys, gys):
        (gy,), x, W = gys, xs[0], xs[1]
        gx = d.conv2d(gy, W, None, self.stride, self.pad)
        gW = d.conv2d_grad_w(gy, x, (W.shape[2], W.shape[3]), self.stride, self.pad)
        return (gx, gW, *_bias_grad(xs, d, gy))


class Conv2DGradW(Function):
    """The kernel gradient of ``conv2d``, from inputs ``(x, gy)``; differentiable again.

    Takes the kernel geometry, or (as DeZero) the ``Conv2d`` function whose W it differentiates.
    """

    retain_inputs, retain_outputs = (0, 1), ()

    def __init__(self, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> None:
        if isinstance(kernel_size, Function):  # DeZero: Conv2DGradW(conv)
            conv = kernel_size
            kernel_size, stride, pad = tuple(conv.input_nodes[1].shape[2:]), conv.stride, conv.pad
        self.kernel_size, self.stride, self.pad = pair(kernel_size), pair(stride), pair(pad)

    def forward(self, x: Any, gy: Any) -> Any:
        return _grad_w_forward(self.xp, x, gy, self.kernel_size, self.stride, self.pad)

    def vjp(self, d, xs, ys, gys):
        (ggW,), (x, gy) = gys, xs
        outsize = (x.shape[2], x.shape[3])
        gx = d.deconv2d(gy, ggW, None, self.stride, self.pad, outsize)
        ggy = d.conv2d(x, ggW, None, self.stride, self.pad)
        return gx, ggy


def conv2d(x: Any, W: Any, b: Any = None, stride: Any = 1, pad: Any = 0) -> Variable:
    """2-D convolution of NCHW ``x`` with kernels ``W`` (OC, C, KH, KW) and optional bias (OC,)."""
    f = Conv2d(stride, pad)
    return f(x, W) if b is None else f(x, W, b)


def deconv2d(
    x: Any, W: Any, b: Any = None, stride: Any = 1, pad: Any = 0, outsize: Any = None
) -> Variable:
    """Transposed convolution with ``W`` (C, OC, KH, KW); output ``s*(in-1)+k-2p`` or outsize."""
    f = Deconv2d(stride, pad, outsize)
    return f(x, W) if b is None else f(x, W, b)


def conv2d_grad_w(x: Any, gy: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """d conv2d / d W: the kernel gradient for input ``x`` and output gradient ``gy``."""
    return Conv2DGradW(kernel_size, stride, pad)(x, gy)


def conv2d_simple(x: Any, W: Any, b: Any = None, stride: Any = 1, pad: Any = 0) -> Variable:
    """``conv2d`` composed from ``im2col``, ``linear``, ``reshape`` and ``transpose`` (DeZero)."""
    from agrad.functions.linalg import linear
    from agrad.functions.shape import reshape, transpose

    N, _, H, Wd = x.shape
    OC, C, KH, KW = W.shape
    (SH, SW), (PH, PW) = pair(stride), pair(pad)
    OH, OW = get_conv_outsize(H, KH, SH, PH), get_conv_outsize(Wd, KW, SW, PW)
    col = im2col(x, (KH, KW), stride, pad, to_matrix=True)
    kernels = transpose(reshape(W, (OC, C * KH * KW)))
    y = linear(col, kernels, b)
    return transpose(reshape(y, (N, OH, OW, OC)), (0, 3, 1, 2))


@array_twin("conv2d")
def _conv2d_twin(xp, x, W, b=None, stride=1, pad=0):
    return _conv_forward(xp, x, W, b, pair(stride), pair(pad))


@array_twin("deconv2d")
def _deconv2d_twin(xp, x, W, b=None, stride=1, pad=0, outsize=None):
    return _deconv_forward(xp, x, W, b, pair(stride), pair(pad), outsize)


@array_twin("conv2d_grad_w")
def _conv2d_grad_w_twin(xp, x, gy, kernel_size, stride=1, pad=0):
    return _grad_w_forward(xp, x, gy, kernel_size, stride, pad)


# -- pooling --------------------------------------------------------------------------------
def _argmax_mask(xp: Any, indexes: Any, window: int, dtype: Any) -> Any:
    """One-hot (N, C, KH*KW, OH, OW) of each window's (first) maximum."""
    offsets = xp.reshape(xp.arange(window, dtype=indexes.dtype), (1, 1, window, 1, 1))
    return xp.astype(offsets == xp.expand_dims(indexes, axis=2), dtype)


def _pooling_grad_forward(
    xp: Any, gy: Any, indexes: Any, input_shape: tuple, geometry: tuple
) -> Any:
    KH, KW = geometry[0], geometry[1]
    N, C, OH, OW = gy.shape
    gcol = _argmax_mask(xp, indexes, KH * KW, gy.dtype) * xp.expand_dims(gy, axis=2)
    gcol = xp.reshape(gcol, (N, C, KH, KW, OH, OW))
    return _add_windows(xp, gcol, tuple(input_shape), geometry, channels_last=False)


def _pooling_with_indexes_forward(xp: Any, x: Any, indexes: Any, geometry: tuple) -> Any:
    KH, KW = geometry[0], geometry[1]
    col = _windows(xp, x, geometry, channels_last=False)
    return xp.sum(col * _argmax_mask(xp, indexes, KH * KW, x.dtype), axis=2)


class Pooling(Function):
    """Max pooling; remembers each window's argmax (the first, on ties) for the gradient."""

    retain_inputs, retain_outputs, retain_attributes = (), (), ("indexes",)

    def __init__(self, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> None:
        self.kernel_size, self.stride, self.pad = pair(kernel_size), pair(stride), pair(pad)

    def forward(self, x: Any) -> Any:
        geometry = _geometry(self.kernel_size, self.stride, self.pad)
        col = _windows(self.xp, x, geometry, channels_last=False)  # (N, C, KH*KW, OH, OW)
        self.indexes = self.xp.argmax(col, axis=2)
        return self.xp.max(col, axis=2)

    def vjp(self, d, xs, ys, gys):
        shape = tuple(xs[0].shape)
        return d.pooling_grad(gys[0], self.indexes, shape, self.kernel_size, self.stride, self.pad)


class Pooling2DGrad(Function):
    """The gradient of max pooling: each output gradient goes to its window's argmax."""

    retain_inputs, retain_outputs, retain_attributes = (), (), ("indexes",)

    def __init__(
        self,
        indexes: Any,
        input_shape: tuple | None = None,
        kernel_size: Any = None,
        stride: Any = 1,
        pad: Any = 0,
    ) -> None:
        if isinstance(indexes, Pooling):  # DeZero: Pooling2DGrad(mpool2d)
            pool = indexes
            indexes, input_shape = pool.indexes, tuple(pool.input_nodes[0].shape)
            kernel_size, stride, pad = pool.kernel_size, pool.stride, pool.pad
        self.indexes, self.input_shape = indexes, tuple(input_shape)
        self.kernel_size, self.stride, self.pad = pair(kernel_size), pair(stride), pair(pad)

    def forward(self, gy: Any) -> Any:
        geometry = _geometry(self.kernel_size, self.stride, self.pad)
        return _pooling_grad_forward(self.xp, gy, self.indexes, self.input_shape, geometry)

    def vjp(self, d, xs, ys, gys):
        return d.pooling_with_indexes(gys[0], self.indexes, self.kernel_size, self.stride, self.pad)


class Pooling2DWithIndexes(Function):
    """Each window's element of ``x`` at the saved argmax (max pooling as a linear map)."""

    retain_inputs, retain_outputs, retain_attributes = (), (), ("indexes",)

    def __init__(self, indexes: Any, kernel_size: Any = None, stride: Any = 1, pad: Any = 0):
        if isinstance(indexes, Pooling):  # DeZero: Pooling2DWithIndexes(mpool2d)
            pool = indexes
            indexes, kernel_size, stride, pad = (
                pool.indexes,
                pool.kernel_size,
                pool.stride,
                pool.pad,
            )
        self.indexes = indexes
        self.kernel_size, self.stride, self.pad = pair(kernel_size), pair(stride), pair(pad)

    def forward(self, x: Any) -> Any:
        self.input_shape = tuple(x.shape)
        geometry = _geometry(self.kernel_size, self.stride, self.pad)
        return _pooling_with_indexes_forward(self.xp, x, self.indexes, geometry)

    def vjp(self, d, xs, ys, gys):
        return d.pooling_grad(
            gys[0], self.indexes, self.input_shape, self.kernel_size, self.stride, self.pad
        )


def pooling(x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """Max pooling over NCHW ``x`` (DeZero's default stride is 1, not the kernel size)."""
    return Pooling(kernel_size, stride, pad)(x)


def pooling_grad(
    gy: Any, indexes: Any, input_shape: tuple, kernel_size: Any, stride: Any = 1, pad: Any = 0
) -> Variable:
    """Route max-pooling output gradients ``gy`` to the argmax ``indexes`` of each window."""
    return Pooling2DGrad(indexes, input_shape, kernel_size, stride, pad)(gy)


def pooling_with_indexes(
    x: Any, indexes: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0
) -> Variable:
    """Each window's element of ``x`` at the given argmax ``indexes``."""
    return Pooling2DWithIndexes(indexes, kernel_size, stride, pad)(x)


def pooling_simple(x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """Max pooling composed from ``im2col`` and ``max`` (DeZero); ties all get the gradient."""
    from agrad.functions.reduction import max as max_
    from agrad.functions.shape import reshape, transpose

    N, C, H, W = x.shape
    KH, KW, SH, SW, PH, PW = _geometry(kernel_size, stride, pad)
    OH, OW = get_conv_outsize(H, KH, SH, PH), get_conv_outsize(W, KW, SW, PW)
    col = reshape(im2col(x, (KH, KW), stride, pad, to_matrix=True), (N * OH * OW * C, KH * KW))
    y = max_(col, axis=1)
    return transpose(reshape(y, (N, OH, OW, C)), (0, 3, 1, 2))


@array_twin("pooling_grad")
def _pooling_grad_twin(xp, gy, indexes, input_shape, kernel_size, stride=1, pad=0):
    geometry = _geometry(kernel_size, stride, pad)
    return _pooling_grad_forward(xp, gy, indexes, tuple(input_shape), geometry)


@array_twin("pooling_with_indexes")
def _pooling_with_indexes_twin(xp, x, indexes, kernel_size, stride=1, pad=0):
    return _pooling_with_indexes_forward(xp, x, indexes, _geometry(kernel_size, stride, pad))


class AveragePooling(Function):
    """Average pooling (padding counts as zeros, as in DeZero); the gradient is spread evenly."""

    retain_inputs = retain_outputs = ()

    def __init__(self, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> None:
        self.kernel_size, self.stride, self.pad = pair(kernel_size), pair(stride), pair(pad)

    def forward(self, x: Any) -> Any:
        geometry = _geometry(self.kernel_size, self.stride, self.pad)
        col = _windows(self.xp, x, geometry, channels_last=False)
        return self.xp.mean(col, axis=2)

    def vjp(self, d, xs, ys, gys):
        gy = gys[0]
        N, C, OH, OW = gy.shape
        KH, KW = self.kernel_size
        spread = d.reshape(gy * (1 / (KH * KW)), (N, C, 1, 1, OH, OW))
        gcol = d.broadcast_to(spread, (N, C, KH, KW, OH, OW))
        shape = tuple(xs[0].shape)
        return d.col2im(gcol, shape, self.kernel_size, self.stride, self.pad, False)


def average_pooling(x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """Average pooling over NCHW ``x`` (default stride 1, as DeZero)."""
    return AveragePooling(kernel_size, stride, pad)(x)
