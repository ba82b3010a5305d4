"""Convolution and pooling on NCHW images.

Kernel windows come from the backend (``Backend.window_view``): a strided view where the library
has stride tricks (NumPy, CuPy), a stack of strided slices where it has not (the Array API
standard). Convolution is then one batched matrix product per image of the flattened kernels with
the window matrix ``(C*KH*KW, OH*OW)``, so its output is NCHW without a transpose; ``col2im``
(``Backend.add_windows``) is the adjoint. Max and average pooling take the ``KH*KW`` strided
slices of the image one by one (elementwise, no reduction over a strided axis), and max pooling
keeps only each window's argmax for its gradient. Every backward pass is built from functions of
this module again, so all of them can be differentiated twice.
"""

from __future__ import annotations

from typing import Any

from agrad.backends import backend_of
from agrad.config import _autocast_dtype
from agrad.core import Function, Variable
from agrad.ops import array_twin
from agrad.utils import conv_pair, get_conv_outsize, get_deconv_outsize, pair

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


# -- geometry and argument checks -------------------------------------------------------------
Geometry = tuple[int, int, int, int, int, int]  # KH, KW, SH, SW, PH, PW


def _geometry(owner: str, kernel_size: Any, stride: Any, pad: Any) -> Geometry:
    (KH, KW) = conv_pair(kernel_size, "kernel_size", 1, owner)
    (SH, SW), (PH, PW) = conv_pair(stride, "stride", 1, owner), conv_pair(pad, "pad", 0, owner)
    return KH, KW, SH, SW, PH, PW


def _check_image(owner: str, name: str, x: Any) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{owner}: {name} must be a 4-D (N, C, H, W) array, got shape {tuple(x.shape)}"
        )


def _out_size(owner: str, H: int, W: int, geometry: Geometry) -> tuple[int, int]:
    """(OH, OW) of a window sweep; ``ValueError`` when the kernel does not fit even once."""
    KH, KW, SH, SW, PH, PW = geometry
    if H + 2 * PH < KH or W + 2 * PW < KW:
        raise ValueError(
            f"{owner}: kernel {(KH, KW)} is larger than the padded input "
            f"{(H + 2 * PH, W + 2 * PW)} (input {(H, W)}, pad {(PH, PW)}); the kernel must fit "
            "in the input plus twice the padding"
        )
    return get_conv_outsize(H, KH, SH, PH), get_conv_outsize(W, KW, SW, PW)


def _check_kernel(owner: str, x: Any, W: Any, channel_axis: int) -> None:
    _check_image(owner, "x", x)
    if W.ndim != 4:
        layout = "(OC, C, KH, KW)" if channel_axis == 1 else "(C, OC, KH, KW)"
        raise ValueError(f"{owner}: W must be 4-D {layout}, got shape {tuple(W.shape)}")
    C = W.shape[channel_axis]
    if x.shape[1] != C:
        raise ValueError(
            f"{owner}: x has {x.shape[1]} channels (shape {tuple(x.shape)}) but W "
            f"{tuple(W.shape)} takes {C}; x must be (N, {C}, H, W)"
        )


def _check_bias(owner: str, b: Any, OC: int) -> None:
    if b is not None and tuple(b.shape) != (OC,):
        raise ValueError(
            f"{owner}: b must have shape ({OC},), one value per output channel, "
            f"got {tuple(b.shape)}"
        )


# -- array helpers --------------------------------------------------------------------------
def _padded(xp: Any, x: Any, PH: int, PW: int) -> Any:
    """``x`` with ``PH``/``PW`` zeros around its last two axes."""
    if PH == 0 and PW == 0:
        return x
    *lead, H, W = x.shape
    padded = xp.zeros((*lead, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
    # a fresh array of ours: written in place where the library allows
    return backend_of(x).set_at(padded, (..., slice(PH, PH + H), slice(PW, PW + W)), x)


def _windows(x: Any, geometry: Geometry) -> Any:
    """Every kernel window of NCHW ``x``: (N, C, KH, KW, OH, OW), a view where possible."""
    KH, KW, SH, SW, PH, PW = geometry
    backend = backend_of(x)
    return backend.window_view(_padded(backend.xp, x, PH, PW), (KH, KW), (SH, SW))


def _window_matrix(x: Any, geometry: Geometry) -> Any:
    """The windows of ``x`` as one (C*KH*KW, OH*OW) matrix per image: (N, C*KH*KW, OH*OW)."""
    windows = _windows(x, geometry)
    N, C, KH, KW, OH, OW = windows.shape
    return backend_of(x).xp.reshape(windows, (N, C * KH * KW, OH * OW))  # copies a view


def _unwindows(col: Any, img_shape: tuple, geometry: Geometry) -> Any:
    """The adjoint of ``_windows``: (N, C, KH, KW, OH, OW) windows summed into ``img_shape``."""
    SH, SW, PH, PW = geometry[2:]
    H, W = img_shape[2], img_shape[3]
    backend = backend_of(col)
    image = backend.add_windows(col, (H + 2 * PH, W + 2 * PW), (SH, SW))
    if PH == 0 and PW == 0:
        return image
    return image[..., PH : PH + H, PW : PW + W]


def _offsets(geometry: Geometry, OH: int, OW: int) -> list[tuple]:
    """Per kernel offset (row-major), the index of its strided slice of the padded image."""
    KH, KW, SH, SW = geometry[:4]
    return [
        (..., slice(i, i + SH * (OH - 1) + 1, SH), slice(j, j + SW * (OW - 1) + 1, SW))
        for i in range(KH)
        for j in range(KW)
    ]


def _im2col(img: Any, geometry: Geometry, to_matrix: bool) -> Any:
    _check_image("im2col", "x", img)
    _out_size("im2col", img.shape[2], img.shape[3], geometry)
    xp = backend_of(img).xp
    windows = _windows(img, geometry)
    N, C, KH, KW, OH, OW = windows.shape
    if to_matrix:  # DeZero's layout: one row per output pixel
        rows = xp.permute_dims(windows, (0, 4, 5, 1, 2, 3))
        if KH * KW == 1:  # the reshape below could then be a (read-only) view of the input
            rows = xp.asarray(rows, copy=True)
        return xp.reshape(rows, (N * OH * OW, C * KH * KW))
    return xp.asarray(windows, copy=True)  # never hand out a view of the input


def _col2im(col: Any, img_shape: tuple, geometry: Geometry, to_matrix: bool) -> Any:
    KH, KW = geometry[0], geometry[1]
    if len(img_shape) != 4:
        raise ValueError(f"col2im: input_shape must be (N, C, H, W), got {img_shape!r}")
    N, C, H, W = img_shape
    OH, OW = _out_size("col2im", H, W, geometry)
    xp = backend_of(col).xp
    expected = (N * OH * OW, C * KH * KW) if to_matrix else (N, C, KH, KW, OH, OW)
    if tuple(col.shape) != expected:
        raise ValueError(
            f"col2im: windows of shape {tuple(col.shape)} do not match input_shape "
            f"{tuple(img_shape)} with kernel {(KH, KW)}, stride {geometry[2:4]}, pad "
            f"{geometry[4:]}; expected {expected}"
        )
    if to_matrix:
        col = xp.permute_dims(xp.reshape(col, (N, OH, OW, C, KH, KW)), (0, 3, 4, 5, 1, 2))
    return _unwindows(col, tuple(img_shape), geometry)


def im2col_array(
    img: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0, to_matrix: bool = True
) -> Any:
    """Kernel windows of NCHW array ``img``: (N*OH*OW, C*KH*KW), or (N, C, KH, KW, OH, OW).

    The array counterpart of :func:`im2col`: no Variable, no graph.

    Parameters
    ----------
    img : array
        Images of shape (N, C, H, W).
    kernel_size : int or (int, int)
        (KH, KW), each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.
    to_matrix : bool, default True
        True for DeZero's matrix layout, False for the 6-D one.

    Returns
    -------
    array
        A copy (never a view of ``img``), of ``img``'s backend and dtype: one row per output
        pixel, in (n, oh, ow) order, with columns in (c, kh, kw) order; or (N, C, KH, KW, OH, OW).

    Raises
    ------
    ValueError
        If ``img`` is not 4-D, ``kernel_size``, ``stride`` or ``pad`` is out of range, or the
        kernel is larger than the padded image.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> img = xp.reshape(xp.arange(16.0), (1, 1, 4, 4))
    >>> agrad.cuda.as_numpy(F.im2col_array(img, 2, stride=2))
    array([[ 0.,  1.,  4.,  5.],
           [ 2.,  3.,  6.,  7.],
           [ 8.,  9., 12., 13.],
           [10., 11., 14., 15.]])
    >>> F.im2col_array(img, 3, to_matrix=False).shape
    (1, 1, 3, 3, 2, 2)
    """
    return _im2col(img, _geometry("im2col", kernel_size, stride, pad), to_matrix)


def col2im_array(
    col: Any,
    img_shape: tuple,
    kernel_size: Any,
    stride: Any = 1,
    pad: Any = 0,
    to_matrix: bool = True,
) -> Any:
    """Sum windows back into an NCHW array of ``img_shape`` (the adjoint of ``im2col_array``).

    The array counterpart of :func:`col2im`: no Variable, no graph.

    Parameters
    ----------
    col : array
        Windows as :func:`im2col_array` lays them out for ``to_matrix``: (N*OH*OW, C*KH*KW) or
        (N, C, KH, KW, OH, OW).
    img_shape : tuple of int
        (N, C, H, W) of the image.
    kernel_size : int or (int, int)
        (KH, KW), each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Padding the windows were taken with; it is cropped off the result.
    to_matrix : bool, default True
        The layout of ``col``.

    Returns
    -------
    array
        Of shape ``img_shape``; where windows overlap, their values add up.

    Raises
    ------
    ValueError
        If ``img_shape`` is not 4 long, ``col``'s shape does not match it and the geometry,
        ``kernel_size``, ``stride`` or ``pad`` is out of range, or the kernel is larger than the
        padded image.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> agrad.cuda.as_numpy(F.col2im_array(xp.ones((4, 4)), (1, 1, 3, 3), 2))
    array([[[[1., 2., 1.],
             [2., 4., 2.],
             [1., 2., 1.]]]])
    """
    geometry = _geometry("col2im", kernel_size, stride, pad)
    return _col2im(col, tuple(img_shape), geometry, to_matrix)


# -- im2col / col2im ------------------------------------------------------------------------
class Im2col(Function):
    """Kernel windows of an NCHW image (see ``im2col_array``); the gradient is ``col2im``.

    The function behind :func:`im2col`, called as ``Im2col(kernel_size, stride, pad,
    to_matrix)(x)``; its backward needs only the input's shape.

    Parameters
    ----------
    kernel_size : int or (int, int)
        (KH, KW), each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.
    to_matrix : bool, default True
        (N*OH*OW, C*KH*KW) output when True, (N, C, KH, KW, OH, OW) when False.

    Raises
    ------
    ValueError
        If ``kernel_size``, ``stride`` or ``pad`` is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = xp.reshape(xp.arange(16.0), (1, 1, 4, 4))
    >>> F.Im2col(2, stride=2)(x)
    variable([[ 0.  1.  4.  5.]
              [ 2.  3.  6.  7.]
              [ 8.  9. 12. 13.]
              [10. 11. 14. 15.]])
    """

    retain_inputs = ()
    retain_outputs = ()

    def __init__(self, kernel_size: Any, stride: Any = 1, pad: Any = 0, to_matrix: bool = True):
        self.geometry = _geometry("im2col", kernel_size, stride, pad)
        self.kernel_size, self.stride, self.pad = kernel_size, stride, pad
        self.to_matrix = to_matrix

    def forward(self, x: Any) -> Any:
        self.input_shape = tuple(x.shape)
        return _im2col(x, self.geometry, self.to_matrix)

    def vjp(self, d, xs, ys, gys):
        return d.col2im(
            gys[0], self.input_shape, self.kernel_size, self.stride, self.pad, self.to_matrix
        )


class Col2im(Function):
    """Sum windows back into an NCHW image; the gradient is ``im2col``.

    The function behind :func:`col2im`, called as ``Col2im(input_shape, kernel_size, stride,
    pad, to_matrix)(x)``.

    Parameters
    ----------
    input_shape : tuple of int
        (N, C, H, W) of the image.
    kernel_size : int or (int, int)
        (KH, KW), each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Padding the windows were taken with; it is cropped off the result.
    to_matrix : bool, default True
        The layout of the windows, as for :func:`im2col`.

    Raises
    ------
    ValueError
        If ``kernel_size``, ``stride`` or ``pad`` is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> F.Col2im((1, 1, 3, 3), 2)(xp.ones((4, 4)))
    variable([[[[1. 2. 1.]
                [2. 4. 2.]
                [1. 2. 1.]]]])
    """

    retain_inputs = ()
    retain_outputs = ()

    def __init__(
        self,
        input_shape: tuple,
        kernel_size: Any,
        stride: Any = 1,
        pad: Any = 0,
        to_matrix: bool = True,
    ) -> None:
        self.geometry = _geometry("col2im", kernel_size, stride, pad)
        self.input_shape = tuple(input_shape)
        self.kernel_size, self.stride, self.pad = kernel_size, stride, pad
        self.to_matrix = to_matrix

    def forward(self, x: Any) -> Any:
        return _col2im(x, self.input_shape, self.geometry, self.to_matrix)

    def vjp(self, d, xs, ys, gys):
        return d.im2col(gys[0], self.kernel_size, self.stride, self.pad, self.to_matrix)


def im2col(
    x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0, to_matrix: bool = True
) -> Variable:
    """Kernel windows of NCHW ``x``: (N*OH*OW, C*KH*KW), or (N, C, KH, KW, OH, OW).

    DeZero's ``im2col``, differentiable (twice too): the gradient adds each window's gradient
    back at its place with :func:`col2im`, so pixels in several windows collect several.

    Parameters
    ----------
    x : Variable or array
        Images of shape (N, C, H, W).
    kernel_size : int or (int, int)
        (KH, KW), each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.
    to_matrix : bool, default True
        True for DeZero's matrix layout, False for the 6-D one.

    Returns
    -------
    Variable
        A copy of the windows, of ``x``'s dtype: with ``to_matrix`` one row per output pixel, in
        (n, oh, ow) order, with columns in (c, kh, kw) order; otherwise (N, C, KH, KW, OH, OW).
        OH and OW are as for :func:`conv2d`.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, ``kernel_size``, ``stride`` or ``pad`` is out of range, or the
        kernel is larger than the padded input.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.reshape(xp.arange(16.0), (1, 1, 4, 4)))
    >>> F.im2col(x, 2, stride=2)
    variable([[ 0.  1.  4.  5.]
              [ 2.  3.  6.  7.]
              [ 8.  9. 12. 13.]
              [10. 11. 14. 15.]])
    >>> F.im2col(x, 3, to_matrix=False).shape
    (1, 1, 3, 3, 2, 2)
    >>> F.sum(F.im2col(x, 3)).backward()  # each pixel's gradient counts its windows
    >>> x.grad
    variable([[[[1. 2. 2. 1.]
                [2. 4. 4. 2.]
                [2. 4. 4. 2.]
                [1. 2. 2. 1.]]]])
    """
    return Im2col(kernel_size, stride, pad, to_matrix)(x)


def col2im(
    x: Any,
    input_shape: tuple,
    kernel_size: Any,
    stride: Any = 1,
    pad: Any = 0,
    to_matrix: bool = True,
) -> Variable:
    """Add windows ``x`` (as ``im2col`` lays them out) back into an image of ``input_shape``.

    DeZero's ``col2im``, the adjoint of :func:`im2col`: its gradient is ``im2col`` of the
    image's gradient.

    Parameters
    ----------
    x : Variable or array
        Windows of shape (N*OH*OW, C*KH*KW) with ``to_matrix``, else (N, C, KH, KW, OH, OW).
    input_shape : tuple of int
        (N, C, H, W) of the image.
    kernel_size : int or (int, int)
        (KH, KW), each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Padding the windows were taken with; it is cropped off the result.
    to_matrix : bool, default True
        The layout of ``x``.

    Returns
    -------
    Variable
        Of shape ``input_shape`` and ``x``'s dtype; where windows overlap, their values add up.

    Raises
    ------
    ValueError
        If ``input_shape`` is not 4 long, ``x``'s shape does not match it and the geometry,
        ``kernel_size``, ``stride`` or ``pad`` is out of range, or the kernel is larger than the
        padded image.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> windows = agrad.Variable(xp.ones((4, 4)))
    >>> image = F.col2im(windows, (1, 1, 3, 3), 2)  # four 2x2 windows of a 3x3 image
    >>> image
    variable([[[[1. 2. 1.]
                [2. 4. 2.]
                [1. 2. 1.]]]])
    >>> image[0, 0, 1, 1].backward()  # the centre pixel is in every window
    >>> windows.grad
    variable([[0. 0. 0. 1.]
              [0. 0. 1. 0.]
              [0. 1. 0. 0.]
              [1. 0. 0. 0.]])
    """
    return Col2im(input_shape, kernel_size, stride, pad, to_matrix)(x)


@array_twin("im2col")
def _im2col_twin(xp, x, kernel_size, stride=1, pad=0, to_matrix=True):
    return _im2col(x, _geometry("im2col", kernel_size, stride, pad), to_matrix)


@array_twin("col2im")
def _col2im_twin(xp, x, input_shape, kernel_size, stride=1, pad=0, to_matrix=True):
    geometry = _geometry("col2im", kernel_size, stride, pad)
    return _col2im(x, tuple(input_shape), geometry, to_matrix)


# -- convolution ----------------------------------------------------------------------------
def _add_bias(xp: Any, y: Any, b: Any) -> Any:
    """``y`` (N, OC, ...) plus ``b`` (OC,) on the channel axis; in place when ``y`` is ours
    and the dtypes agree (mixed dtypes promote as an out-of-place sum would)."""
    b = xp.reshape(b, (b.shape[0], *(1,) * (y.ndim - 2)))
    if b.dtype == y.dtype:
        y += b
        return y
    return y + b


def _conv_forward(x: Any, W: Any, b: Any, stride: Any, pad: Any, owner: str = "conv2d") -> Any:
    _check_kernel(owner, x, W, channel_axis=1)
    OC, C, KH, KW = W.shape
    _check_bias(owner, b, OC)
    geometry = (KH, KW, *pair(stride), *pair(pad))
    OH, OW = _out_size(owner, x.shape[2], x.shape[3], geometry)
    xp = backend_of(x).xp
    col = _window_matrix(x, geometry)  # (N, C*KH*KW, OH*OW)
    y = xp.matmul(xp.reshape(W, (OC, C * KH * KW)), col)  # (N, OC, OH*OW): already NCHW
    if b is not None:
        y = _add_bias(xp, y, b)
    return xp.reshape(y, (x.shape[0], OC, OH, OW))


def _deconv_forward(
    x: Any, W: Any, b: Any, stride: Any, pad: Any, outsize: Any, owner: str = "deconv2d"
) -> Any:
    _check_kernel(owner, x, W, channel_axis=0)
    C, OC, KH, KW = W.shape
    _check_bias(owner, b, OC)
    N, _, H, Wd = x.shape
    (SH, SW), (PH, PW) = pair(stride), pair(pad)
    geometry = (KH, KW, SH, SW, PH, PW)
    if outsize is None:
        OH, OW = get_deconv_outsize(H, KH, SH, PH), get_deconv_outsize(Wd, KW, SW, PW)
        if OH < 1 or OW < 1:
            raise ValueError(
                f"{owner}: pad {(PH, PW)} leaves no output: stride*(in-1)+kernel-2*pad is "
                f"{(OH, OW)} for input {(H, Wd)}, kernel {(KH, KW)}, stride {(SH, SW)}; "
                "it must be at least 1"
            )
    else:
        OH, OW = conv_pair(outsize, "outsize", 1, owner)
        fits = OH + 2 * PH >= KH and OW + 2 * PW >= KW
        back = (get_conv_outsize(OH, KH, SH, PH), get_conv_outsize(OW, KW, SW, PW))
        if not fits or back != (H, Wd):
            raise ValueError(
                f"{owner}: outsize {(OH, OW)} does not convolve back to the input size "
                f"{(H, Wd)} with kernel {(KH, KW)}, stride {(SH, SW)}, pad {(PH, PW)}"
            )
    xp = backend_of(x).xp
    kernels = xp.permute_dims(xp.reshape(W, (C, OC * KH * KW)), (1, 0))
    col = xp.matmul(kernels, xp.reshape(x, (N, C, H * Wd)))  # (N, OC*KH*KW, H*W)
    y = _unwindows(xp.reshape(col, (N, OC, KH, KW, H, Wd)), (N, OC, OH, OW), geometry)
    if b is not None:
        y = _add_bias(xp, y, b)
    return y


def _grad_w_forward(x: Any, gy: Any, kernel_size: Any, stride: Any, pad: Any) -> Any:
    owner = "conv2d_grad_w"
    _check_image(owner, "x", x)
    _check_image(owner, "gy", gy)
    KH, KW = pair(kernel_size)
    geometry = (KH, KW, *pair(stride), *pair(pad))
    out = _out_size(owner, x.shape[2], x.shape[3], geometry)
    N, C = x.shape[0], x.shape[1]
    OC = gy.shape[1]
    if (gy.shape[0], *gy.shape[2:]) != (N, *out):
        raise ValueError(
            f"{owner}: gy of shape {tuple(gy.shape)} is not a conv2d output of x "
            f"{tuple(x.shape)} with kernel {(KH, KW)}, stride {geometry[2:4]}, pad "
            f"{geometry[4:]}; expected ({N}, OC, {out[0]}, {out[1]})"
        )
    xp = backend_of(x).xp
    col = _window_matrix(x, geometry)  # (N, C*KH*KW, OH*OW)
    rows = xp.permute_dims(xp.reshape(gy, (N, OC, out[0] * out[1])), (0, 2, 1))
    gW = xp.sum(xp.matmul(col, rows), axis=0)  # (C*KH*KW, OC), summed over the images
    return xp.reshape(xp.permute_dims(gW, (1, 0)), (OC, C, KH, KW))


def _bias_grad(n_inputs: int, has_bias: bool, d: Any, gy: Any) -> tuple:
    """The bias gradient as a 0- or 1-tuple: none without a bias input, None for a None bias."""
    if n_inputs == 2:
        return ()
    if not has_bias:  # called as Conv2d()(x, W, None), as DeZero's conv2d does
        return (None,)
    return (d.sum(gy, axis=(0, 2, 3)),)


class Conv2d(Function):
    """2-D convolution (cross-correlation) of NCHW ``x`` with ``W`` (OC, C, KH, KW), plus bias.

    The function behind :func:`conv2d`, called as ``Conv2d(stride, pad)(x, W)`` or
    ``Conv2d(stride, pad)(x, W, b)`` (``b`` may be None, as DeZero passes it). Its backward keeps
    ``x`` and ``W``: the input gradient is :func:`deconv2d` of ``gy`` with ``W`` (skipped for a
    raw-array ``x``), the kernel gradient :func:`conv2d_grad_w`.

    Parameters
    ----------
    stride : int or (int, int), default 1
        Step of the kernel along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.

    Raises
    ------
    ValueError
        If ``stride`` or ``pad`` is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = xp.reshape(xp.arange(16.0), (1, 1, 4, 4))
    >>> F.Conv2d(stride=2)(x, xp.ones((1, 1, 2, 2)))
    variable([[[[10. 18.]
                [42. 50.]]]])
    """

    retain_inputs = (0, 1)  # x for the kernel gradient, W for the input gradient
    retain_outputs = ()

    def __init__(self, stride: Any = 1, pad: Any = 0) -> None:
        self.stride = conv_pair(stride, "stride", 1, "conv2d")
        self.pad = conv_pair(pad, "pad", 0, "conv2d")

    def forward(self, x: Any, W: Any, b: Any = None) -> Any:
        self.has_bias = b is not None
        return _conv_forward(x, W, b, self.stride, self.pad)

    def vjp(self, d, xs, ys, gys):
        (gy,), x, W = gys, xs[0], xs[1]
        outsize = (x.shape[2], x.shape[3])
        gx = gW = None  # raw arrays (the data batch) need no gradient: skip their passes
        if self.needs_input_grad(0):
            gx = d.deconv2d(gy, W, None, self.stride, self.pad, outsize)
        if self.needs_input_grad(1):
            gW = d.conv2d_grad_w(x, gy, (W.shape[2], W.shape[3]), self.stride, self.pad)
        return (gx, gW, *_bias_grad(len(xs), self.has_bias, d, gy))


class Deconv2d(Function):
    """Transposed convolution of NCHW ``x`` with ``W`` (C, OC, KH, KW), plus bias.

    The function behind :func:`deconv2d`, called as ``Deconv2d(stride, pad, outsize)(x, W)`` or
    ``Deconv2d(stride, pad, outsize)(x, W, b)``. Its backward keeps ``x`` and ``W``: the input
    gradient is :func:`conv2d` of ``gy`` with ``W``, the kernel gradient :func:`conv2d_grad_w`.

    Parameters
    ----------
    stride : int or (int, int), default 1
        Distance between the kernels that neighbouring input pixels add, each >= 1.
    pad : int or (int, int), default 0
        Rows and columns cropped from each side of the result, each >= 0.
    outsize : int, (int, int) or None, default None
        The output's (OH, OW), each >= 1; None for ``stride * (H - 1) + KH - 2 * pad`` (and
        likewise OW).

    Raises
    ------
    ValueError
        If ``stride``, ``pad`` or ``outsize`` is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> F.Deconv2d(stride=2)(xp.asarray([[[[1.0, 2.0]]]]), xp.ones((1, 1, 2, 2)))
    variable([[[[1. 1. 2. 2.]
                [1. 1. 2. 2.]]]])
    """

    retain_inputs = (0, 1)  # x for the kernel gradient, W for the input gradient
    retain_outputs = ()

    def __init__(self, stride: Any = 1, pad: Any = 0, outsize: Any = None) -> None:
        self.stride = conv_pair(stride, "stride", 1, "deconv2d")
        self.pad = conv_pair(pad, "pad", 0, "deconv2d")
        self.outsize = None if outsize is None else conv_pair(outsize, "outsize", 1, "deconv2d")

    def forward(self, x: Any, W: Any, b: Any = None) -> Any:
        self.has_bias = b is not None
        return _deconv_forward(x, W, b, self.stride, self.pad, self.outsize)

    def vjp(self, d, xs, ys, gys):
        (gy,), x, W = gys, xs[0], xs[1]
        gx = gW = None
        if self.needs_input_grad(0):
            gx = d.conv2d(gy, W, None, self.stride, self.pad)
        if self.needs_input_grad(1):
            gW = d.conv2d_grad_w(gy, x, (W.shape[2], W.shape[3]), self.stride, self.pad)
        return (gx, gW, *_bias_grad(len(xs), self.has_bias, d, gy))


class Conv2DGradW(Function):
    """The kernel gradient of ``conv2d``, from inputs ``(x, gy)``; differentiable again.

    Takes the kernel geometry, or (as DeZero) the ``Conv2d`` function whose W it differentiates.
    The function behind :func:`conv2d_grad_w`, called as ``Conv2DGradW(kernel_size, stride,
    pad)(x, gy)`` or ``Conv2DGradW(conv)(x, gy)``. Its backward keeps both inputs: the gradient
    for ``x`` is a :func:`deconv2d` of ``gy``, the one for ``gy`` a :func:`conv2d` of ``x``.

    Parameters
    ----------
    kernel_size : int, (int, int) or Conv2d
        (KH, KW) of the kernel, each >= 1; or a :class:`Conv2d` that has run forward, whose
        kernel shape, stride and pad are taken (``stride`` and ``pad`` are then ignored).
    stride : int or (int, int), default 1
        The convolution's stride, each >= 1.
    pad : int or (int, int), default 0
        The convolution's padding, each >= 0.

    Raises
    ------
    ValueError
        If ``kernel_size``, ``stride`` or ``pad`` is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = xp.reshape(xp.arange(16.0), (1, 1, 4, 4))
    >>> gy = xp.ones((1, 1, 2, 2))
    >>> F.Conv2DGradW(2, stride=2)(x, gy)
    variable([[[[20. 24.]
                [36. 40.]]]])
    >>> conv = F.Conv2d(stride=2)
    >>> y = conv(x, xp.ones((1, 1, 2, 2)))
    >>> F.Conv2DGradW(conv)(x, gy)  # DeZero's form: the geometry of conv
    variable([[[[20. 24.]
                [36. 40.]]]])
    """

    retain_inputs = (0, 1)  # each input's gradient is a convolution with the other
    retain_outputs = ()

    def __init__(self, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> None:
        if isinstance(kernel_size, Function):  # DeZero: Conv2DGradW(conv)
            conv = kernel_size
            kernel_size, stride, pad = tuple(conv.input_nodes[1].shape[2:]), conv.stride, conv.pad
        owner = "conv2d_grad_w"
        self.kernel_size = conv_pair(kernel_size, "kernel_size", 1, owner)
        self.stride = conv_pair(stride, "stride", 1, owner)
        self.pad = conv_pair(pad, "pad", 0, owner)

    def forward(self, x: Any, gy: Any) -> Any:
        return _grad_w_forward(x, gy, self.kernel_size, self.stride, self.pad)

    def vjp(self, d, xs, ys, gys):
        (ggW,), (x, gy) = gys, xs
        outsize = (x.shape[2], x.shape[3])
        gx = d.deconv2d(gy, ggW, None, self.stride, self.pad, outsize)
        ggy = d.conv2d(x, ggW, None, self.stride, self.pad)
        return gx, ggy


def conv2d(x: Any, W: Any, b: Any = None, stride: Any = 1, pad: Any = 0) -> Variable:
    """2-D convolution of NCHW ``x`` with kernels ``W`` (OC, C, KH, KW) and optional bias (OC,).

    A cross-correlation, as in DeZero, Chainer and PyTorch (the kernel is not flipped), computed
    as one matrix product per image of the flattened kernels with the image's windows. It is
    differentiable twice; a raw-array ``x`` (a data batch) gets no gradient, which saves a pass.

    Parameters
    ----------
    x : Variable or array
        Images of shape (N, C, H, W).
    W : Variable or array
        Kernels of shape (OC, C, KH, KW).
    b : Variable, array or None, default None
        Bias of shape (OC,), one value per output channel; None for no bias.
    stride : int or (int, int), default 1
        Step of the kernel along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.

    Returns
    -------
    Variable
        Of shape (N, OC, OH, OW), with ``OH = (H + 2 * pad - KH) // stride + 1`` (and likewise
        OW; :func:`agrad.utils.get_conv_outsize`). Inside :func:`agrad.amp.autocast`, float32
        operands are convolved in float16 and the result is float32.

    Raises
    ------
    ValueError
        If ``x`` or ``W`` is not 4-D, their channel counts differ, ``b`` is not of shape (OC,),
        ``stride`` or ``pad`` is out of range, or the kernel is larger than the padded input.
    TypeError
        If the inputs are arrays of different backends.

    See Also
    --------
    conv2d_simple : DeZero's composite version, built from im2col and linear.
    agrad.layers.Conv2d : The layer that holds ``W`` and ``b``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.reshape(xp.arange(16.0), (1, 1, 4, 4)))
    >>> W = agrad.Variable(xp.ones((1, 1, 2, 2)))
    >>> b = agrad.Variable(xp.asarray([0.5]))
    >>> y = F.conv2d(x, W, b, stride=2)  # each output: the sum of a 2x2 block, plus 0.5
    >>> y
    variable([[[[10.5 18.5]
                [42.5 50.5]]]])
    >>> F.sum(y).backward()
    >>> W.grad, b.grad
    (variable([[[[20. 24.]
                 [36. 40.]]]]), variable([4.]))
    >>> F.conv2d(x, xp.ones((1, 3, 2, 2)))
    Traceback (most recent call last):
      ...
    ValueError: conv2d: x has 1 channels (shape (1, 1, 4, 4)) but W (1, 3, 2, 2) takes 3; ...
    """
    f = Conv2d(stride, pad)
    if _autocast_dtype.get() is not None:  # inside agrad.amp.autocast: in float16
        from agrad.amp import autocast_call

        return autocast_call(f, x, W, b)
    return f(x, W) if b is None else f(x, W, b)


def deconv2d(
    x: Any, W: Any, b: Any = None, stride: Any = 1, pad: Any = 0, outsize: Any = None
) -> Variable:
    """Transposed convolution with ``W`` (C, OC, KH, KW); output ``s*(in-1)+k-2p`` or outsize.

    The adjoint of :func:`conv2d` with the same ``W``, ``stride`` and ``pad`` (DeZero's
    ``deconv2d``): each input pixel adds ``W`` scaled by its value into the output, ``stride``
    apart, and ``pad`` rows and columns are cropped off each side. Differentiable twice.

    Parameters
    ----------
    x : Variable or array
        Images of shape (N, C, H, W).
    W : Variable or array
        Kernels of shape (C, OC, KH, KW): input channels first, as the ``W`` of the conv2d it
        reverses.
    b : Variable, array or None, default None
        Bias of shape (OC,); None for no bias.
    stride : int or (int, int), default 1
        Distance between the kernels that neighbouring input pixels add, each >= 1.
    pad : int or (int, int), default 0
        Rows and columns cropped from each side of the result, each >= 0.
    outsize : int, (int, int) or None, default None
        The output's (OH, OW). None gives ``OH = stride * (H - 1) + KH - 2 * pad`` (and likewise
        OW; :func:`agrad.utils.get_deconv_outsize`); a size given must convolve back to (H, W),
        which with a stride > 1 several sizes do.

    Returns
    -------
    Variable
        Of shape (N, OC, OH, OW). Inside :func:`agrad.amp.autocast`, float32 operands are
        computed in float16 and the result is float32.

    Raises
    ------
    ValueError
        If ``x`` or ``W`` is not 4-D, their channel counts differ, ``b`` is not of shape (OC,),
        ``stride``, ``pad`` or ``outsize`` is out of range, ``pad`` leaves no output, or
        ``outsize`` does not convolve back to (H, W).
    TypeError
        If the inputs are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.asarray([[[[1.0, 2.0]]]]))
    >>> W = agrad.Variable(xp.ones((1, 1, 2, 2)))
    >>> y = F.deconv2d(x, W)  # two 2x2 kernels, one column apart, overlap in the middle
    >>> y
    variable([[[[1. 3. 2.]
                [1. 3. 2.]]]])
    >>> F.sum(y).backward()
    >>> x.grad, W.grad
    (variable([[[[4. 4.]]]]), variable([[[[3. 3.]
                 [3. 3.]]]]))
    >>> F.deconv2d(x, W, stride=2).shape, F.deconv2d(x, W, stride=2, outsize=(3, 5)).shape
    ((1, 1, 2, 4), (1, 1, 3, 5))
    """
    f = Deconv2d(stride, pad, outsize)
    if _autocast_dtype.get() is not None:  # inside agrad.amp.autocast: in float16
        from agrad.amp import autocast_call

        return autocast_call(f, x, W, b)
    return f(x, W) if b is None else f(x, W, b)


def conv2d_grad_w(x: Any, gy: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """d conv2d / d W: the kernel gradient for input ``x`` and output gradient ``gy``.

    What :func:`conv2d`'s backward computes for ``W`` (DeZero's ``Conv2DGradW``), as a function
    of its own so that it can be differentiated again.

    Parameters
    ----------
    x : Variable or array
        The convolution's input, of shape (N, C, H, W).
    gy : Variable or array
        The gradient of its output, of shape (N, OC, OH, OW).
    kernel_size : int or (int, int)
        (KH, KW) of the kernel, each >= 1.
    stride : int or (int, int), default 1
        The convolution's stride, each >= 1.
    pad : int or (int, int), default 0
        The convolution's padding, each >= 0.

    Returns
    -------
    Variable
        Of shape (OC, C, KH, KW): the windows of ``x`` weighted by ``gy``, summed over the batch.

    Raises
    ------
    ValueError
        If ``x`` or ``gy`` is not 4-D, ``kernel_size``, ``stride`` or ``pad`` is out of range,
        the kernel is larger than the padded input, or ``gy`` is not shaped as a conv2d output
        of ``x`` with that geometry.
    TypeError
        If the inputs are arrays of different backends.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = xp.reshape(xp.arange(16.0), (1, 1, 4, 4))
    >>> gy = agrad.Variable(xp.ones((1, 1, 2, 2)))
    >>> gW = F.conv2d_grad_w(x, gy, 2, stride=2)  # W.grad of F.sum(F.conv2d(x, W, stride=2))
    >>> gW
    variable([[[[20. 24.]
                [36. 40.]]]])
    >>> F.sum(gW).backward()
    >>> gy.grad
    variable([[[[10. 18.]
                [42. 50.]]]])
    """
    return Conv2DGradW(kernel_size, stride, pad)(x, gy)


def conv2d_simple(x: Any, W: Any, b: Any = None, stride: Any = 1, pad: Any = 0) -> Variable:
    """``conv2d`` composed from ``im2col``, ``linear``, ``reshape`` and ``transpose`` (DeZero).

    The same values and gradients as :func:`conv2d`, in six graph nodes instead of one and with
    a copy of every window; prefer :func:`conv2d`.

    Parameters
    ----------
    x : Variable or array
        Images of shape (N, C, H, W).
    W : Variable or array
        Kernels of shape (OC, C, KH, KW).
    b : Variable, array or None, default None
        Bias of shape (OC,); None for no bias.
    stride : int or (int, int), default 1
        Step of the kernel along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.

    Returns
    -------
    Variable
        Of shape (N, OC, OH, OW), OH and OW as for :func:`conv2d`.

    Raises
    ------
    ValueError
        If ``x`` or ``W`` is not 4-D, their channel counts differ, ``stride`` or ``pad`` is out
        of range, or the kernel is larger than the padded input.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.reshape(xp.arange(16.0), (1, 1, 4, 4)))
    >>> W = agrad.Variable(xp.ones((1, 1, 2, 2)))
    >>> y = F.conv2d_simple(x, W, xp.asarray([0.5]), stride=2)
    >>> y
    variable([[[[10.5 18.5]
                [42.5 50.5]]]])
    >>> F.sum(y).backward()
    >>> W.grad
    variable([[[[20. 24.]
                [36. 40.]]]])
    """
    from agrad.functions.linalg import linear
    from agrad.functions.shape import reshape, transpose

    _check_kernel("conv2d_simple", x, W, channel_axis=1)
    N, _, H, Wd = x.shape
    OC, C, KH, KW = W.shape
    (SH, SW) = conv_pair(stride, "stride", 1, "conv2d_simple")
    (PH, PW) = conv_pair(pad, "pad", 0, "conv2d_simple")
    OH, OW = _out_size("conv2d_simple", H, Wd, (KH, KW, SH, SW, PH, PW))
    col = im2col(x, (KH, KW), stride, pad, to_matrix=True)
    kernels = transpose(reshape(W, (OC, C * KH * KW)))
    y = linear(col, kernels, b)
    return transpose(reshape(y, (N, OH, OW, OC)), (0, 3, 1, 2))


@array_twin("conv2d")
def _conv2d_twin(xp, x, W, b=None, stride=1, pad=0):
    return _conv_forward(x, W, b, pair(stride), pair(pad))


@array_twin("deconv2d")
def _deconv2d_twin(xp, x, W, b=None, stride=1, pad=0, outsize=None):
    return _deconv_forward(x, W, b, pair(stride), pair(pad), outsize)


@array_twin("conv2d_grad_w")
def _conv2d_grad_w_twin(xp, x, gy, kernel_size, stride=1, pad=0):
    return _grad_w_forward(x, gy, kernel_size, stride, pad)


# -- pooling --------------------------------------------------------------------------------
def _pool_slices(owner: str, x: Any, geometry: Geometry) -> tuple[Any, list]:
    """The padded image and, per kernel offset, its strided slice index (window order)."""
    _check_image(owner, "x", x)
    OH, OW = _out_size(owner, x.shape[2], x.shape[3], geometry)
    xp = backend_of(x).xp
    return _padded(xp, x, geometry[4], geometry[5]), _offsets(geometry, OH, OW)


def _index_dtype(xp: Any, window: int) -> Any:
    """The narrowest integer dtype that numbers the positions of a window."""
    return xp.int8 if window <= 127 else xp.int16 if window <= 32767 else xp.int32


def _max_pool_forward(x: Any, geometry: Geometry) -> tuple[Any, Any]:
    """Window maxima and the position of each window's first maximum (row-major order)."""
    image, slices = _pool_slices("pooling", x, geometry)
    xp = backend_of(x).xp
    pieces = [image[s] for s in slices]
    y = pieces[0]
    for piece in pieces[1:]:
        y = xp.maximum(y, piece)
    if len(pieces) == 1:
        y = xp.asarray(y, copy=True)  # not a view of the input
    dtype = _index_dtype(xp, len(pieces))
    found = pieces[0] == y
    indexes = xp.zeros(y.shape, dtype=dtype)
    for k, piece in enumerate(pieces[1:], start=1):
        first = (piece == y) & ~found  # ties go to the first maximum, as numpy's argmax
        found = found | first
        indexes = indexes + xp.astype(first, dtype) * k
    return y, indexes


def _pooling_grad_forward(gy: Any, indexes: Any, input_shape: tuple, geometry: Geometry) -> Any:
    """Each window's output gradient routed to the position ``indexes`` names."""
    KH, KW, SH, SW, PH, PW = geometry
    N, C, H, W = input_shape
    OH, OW = gy.shape[2], gy.shape[3]
    backend = backend_of(gy)
    xp = backend.xp
    image = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=gy.dtype)
    overlapping = SH < KH or SW < KW
    for k, at in enumerate(_offsets(geometry, OH, OW)):
        routed = xp.astype(indexes == k, gy.dtype) * gy
        write = backend.add_at if overlapping else backend.set_at
        image = write(image, at, routed)
    return image[..., PH : PH + H, PW : PW + W]


def _pooling_with_indexes_forward(x: Any, indexes: Any, geometry: Geometry) -> Any:
    image, slices = _pool_slices("pooling_with_indexes", x, geometry)
    xp = backend_of(x).xp
    y = None
    for k, at in enumerate(slices):
        picked = xp.astype(indexes == k, x.dtype) * image[at]
        y = picked if y is None else y + picked
    return y


class Pooling(Function):
    """Max pooling; remembers each window's argmax (the first, on ties) for the gradient.

    The function behind :func:`pooling`, called as ``Pooling(kernel_size, stride, pad)(x)``.
    After the forward pass ``indexes`` holds, per output pixel, the row-major position of its
    window's maximum (a small integer dtype); the backward is :func:`pooling_grad` of them.

    Parameters
    ----------
    kernel_size : int or (int, int)
        (KH, KW) of the window, each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.

    Raises
    ------
    ValueError
        If ``kernel_size``, ``stride`` or ``pad`` is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = xp.reshape(xp.arange(16.0), (1, 1, 4, 4))
    >>> pool = F.Pooling(2, stride=2)
    >>> pool(x)
    variable([[[[ 5.  7.]
                [13. 15.]]]])
    >>> agrad.cuda.as_numpy(pool.indexes).tolist()  # the bottom-right corner of each window
    [[[[3, 3], [3, 3]]]]
    """

    retain_inputs = ()  # the gradient needs only the input's shape and the argmax
    retain_outputs = ()
    retain_attributes = ("indexes",)

    def __init__(self, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> None:
        self.geometry = _geometry("pooling", kernel_size, stride, pad)
        self.kernel_size, self.stride, self.pad = pair(kernel_size), pair(stride), pair(pad)

    def forward(self, x: Any) -> Any:
        self.input_shape = tuple(x.shape)
        y, self.indexes = _max_pool_forward(x, self.geometry)
        return y

    def vjp(self, d, xs, ys, gys):
        return d.pooling_grad(
            gys[0], self.indexes, self.input_shape, self.kernel_size, self.stride, self.pad
        )


class Pooling2DGrad(Function):
    """The gradient of max pooling: each output gradient goes to its window's argmax.

    The function behind :func:`pooling_grad`, called as ``Pooling2DGrad(indexes, input_shape,
    kernel_size, stride, pad)(gy)`` or, as DeZero, ``Pooling2DGrad(pool)(gy)`` with the
    :class:`Pooling` that has run forward. Its gradient is :func:`pooling_with_indexes`.

    Parameters
    ----------
    indexes : array or Pooling
        Per output pixel, the row-major position of its window's maximum; or a Pooling whose
        indexes, input shape and geometry are taken (the other arguments are then ignored).
    input_shape : tuple of int or None, default None
        (N, C, H, W) of the pooled image.
    kernel_size : int or (int, int)
        (KH, KW) of the window, each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Padding of the pooling, each >= 0; it is cropped off the result.

    Raises
    ------
    ValueError
        If ``kernel_size``, ``stride`` or ``pad`` is out of range (a missing ``kernel_size``
        included).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> pool = F.Pooling(2, stride=2)
    >>> y = pool(xp.reshape(xp.arange(16.0), (1, 1, 4, 4)))
    >>> F.Pooling2DGrad(pool)(xp.ones((1, 1, 2, 2)))
    variable([[[[0. 0. 0. 0.]
                [0. 1. 0. 1.]
                [0. 0. 0. 0.]
                [0. 1. 0. 1.]]]])
    """

    retain_inputs = ()
    retain_outputs = ()
    retain_attributes = ("indexes",)

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
            indexes, input_shape = pool.indexes, pool.input_shape
            kernel_size, stride, pad = pool.kernel_size, pool.stride, pool.pad
        self.geometry = _geometry("pooling_grad", kernel_size, stride, pad)
        self.indexes, self.input_shape = indexes, tuple(input_shape)
        self.kernel_size, self.stride, self.pad = pair(kernel_size), pair(stride), pair(pad)

    def forward(self, gy: Any) -> Any:
        return _pooling_grad_forward(gy, self.indexes, self.input_shape, self.geometry)

    def vjp(self, d, xs, ys, gys):
        return d.pooling_with_indexes(gys[0], self.indexes, self.kernel_size, self.stride, self.pad)


class Pooling2DWithIndexes(Function):
    """Each window's element of ``x`` at the saved argmax (max pooling as a linear map).

    The function behind :func:`pooling_with_indexes`, called as ``Pooling2DWithIndexes(indexes,
    kernel_size, stride, pad)(x)`` or, as DeZero, ``Pooling2DWithIndexes(pool)(x)`` with the
    :class:`Pooling` that has run forward. Its gradient is :func:`pooling_grad`.

    Parameters
    ----------
    indexes : array or Pooling
        Per output pixel, the row-major position in its window of the element to pick; or a
        Pooling whose indexes and geometry are taken (the other arguments are then ignored).
    kernel_size : int or (int, int)
        (KH, KW) of the window, each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.

    Raises
    ------
    ValueError
        If ``kernel_size``, ``stride`` or ``pad`` is out of range (a missing ``kernel_size``
        included).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = xp.reshape(xp.arange(16.0), (1, 1, 4, 4))
    >>> pool = F.Pooling(2, stride=2)
    >>> y = pool(x)
    >>> F.Pooling2DWithIndexes(pool)(-x)  # -x at the argmax of x, not the max of -x
    variable([[[[ -5.  -7.]
                [-13. -15.]]]])
    """

    retain_inputs = ()
    retain_outputs = ()
    retain_attributes = ("indexes",)

    def __init__(self, indexes: Any, kernel_size: Any = None, stride: Any = 1, pad: Any = 0):
        if isinstance(indexes, Pooling):  # DeZero: Pooling2DWithIndexes(mpool2d)
            pool = indexes
            indexes, kernel_size, stride, pad = (
                pool.indexes,
                pool.kernel_size,
                pool.stride,
                pool.pad,
            )
        self.geometry = _geometry("pooling_with_indexes", kernel_size, stride, pad)
        self.indexes = indexes
        self.kernel_size, self.stride, self.pad = pair(kernel_size), pair(stride), pair(pad)

    def forward(self, x: Any) -> Any:
        self.input_shape = tuple(x.shape)
        return _pooling_with_indexes_forward(x, self.indexes, self.geometry)

    def vjp(self, d, xs, ys, gys):
        return d.pooling_grad(
            gys[0], self.indexes, self.input_shape, self.kernel_size, self.stride, self.pad
        )


def pooling(x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """Max pooling over NCHW ``x`` (DeZero's default stride is 1, not the kernel size).

    Pass ``stride=kernel_size`` for the usual non-overlapping windows. Differentiable twice.

    Parameters
    ----------
    x : Variable or array
        Images of shape (N, C, H, W).
    kernel_size : int or (int, int)
        (KH, KW) of the window, each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0. They take part in the maximum, as in
        DeZero: a window of negative values that reaches into the padding gives 0.

    Returns
    -------
    Variable
        Of shape (N, C, OH, OW) and ``x``'s dtype, OH and OW as for :func:`conv2d`. The gradient
        of each output goes to the first maximum of its window in row-major order (ties get
        nothing more); where windows overlap, the gradients add up.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, ``kernel_size``, ``stride`` or ``pad`` is out of range, or the
        kernel is larger than the padded input.

    See Also
    --------
    pooling_simple : DeZero's composite version, which gives the gradient to every tie.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.reshape(xp.arange(16.0), (1, 1, 4, 4)))
    >>> y = F.pooling(x, 2, stride=2)
    >>> y
    variable([[[[ 5.  7.]
                [13. 15.]]]])
    >>> F.sum(y).backward()
    >>> x.grad
    variable([[[[0. 0. 0. 0.]
                [0. 1. 0. 1.]
                [0. 0. 0. 0.]
                [0. 1. 0. 1.]]]])
    """
    return Pooling(kernel_size, stride, pad)(x)


def pooling_grad(
    gy: Any, indexes: Any, input_shape: tuple, kernel_size: Any, stride: Any = 1, pad: Any = 0
) -> Variable:
    """Route max-pooling output gradients ``gy`` to the argmax ``indexes`` of each window.

    What :func:`pooling`'s backward computes, as a function of its own so that it can be
    differentiated again (its gradient is :func:`pooling_with_indexes`).

    Parameters
    ----------
    gy : Variable or array
        Output gradients, of shape (N, C, OH, OW).
    indexes : array
        Integers of ``gy``'s shape: per output pixel, the row-major position in its window
        (0 to KH*KW - 1) that gets the gradient, as :attr:`Pooling.indexes` holds them.
    input_shape : tuple of int
        (N, C, H, W) of the pooled image.
    kernel_size : int or (int, int)
        (KH, KW) of the window, each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Padding of the pooling, each >= 0; it is cropped off the result.

    Returns
    -------
    Variable
        Of shape ``input_shape`` and ``gy``'s dtype: zeros except where a window's gradient went
        (added up where windows overlap).

    Raises
    ------
    ValueError
        If ``kernel_size``, ``stride`` or ``pad`` is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> gy = xp.asarray([[[[1.0, 2.0], [3.0, 4.0]]]])
    >>> indexes = xp.asarray([[[[3, 0], [1, 2]]]], dtype=xp.int8)
    >>> F.pooling_grad(gy, indexes, (1, 1, 4, 4), 2, stride=2)
    variable([[[[0. 0. 2. 0.]
                [0. 1. 0. 0.]
                [0. 3. 0. 0.]
                [0. 0. 4. 0.]]]])
    """
    return Pooling2DGrad(indexes, input_shape, kernel_size, stride, pad)(gy)


def pooling_with_indexes(
    x: Any, indexes: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0
) -> Variable:
    """Each window's element of ``x`` at the given argmax ``indexes``.

    Max pooling with the maxima's positions fixed, so a linear map of ``x``: the function
    through which :func:`pooling_grad` is differentiated (its gradient is ``pooling_grad``).

    Parameters
    ----------
    x : Variable or array
        Images of shape (N, C, H, W).
    indexes : array
        Integers of the output's shape (N, C, OH, OW): per output pixel, the row-major position
        in its window (0 to KH*KW - 1) of the element to pick.
    kernel_size : int or (int, int)
        (KH, KW) of the window, each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.

    Returns
    -------
    Variable
        Of shape (N, C, OH, OW) and ``x``'s dtype.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, ``kernel_size``, ``stride`` or ``pad`` is out of range, or the
        kernel is larger than the padded input.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.reshape(xp.arange(16.0), (1, 1, 4, 4)))
    >>> indexes = xp.asarray([[[[3, 0], [1, 2]]]], dtype=xp.int8)
    >>> y = F.pooling_with_indexes(x, indexes, 2, stride=2)
    >>> y
    variable([[[[ 5.  2.]
                [ 9. 14.]]]])
    >>> F.sum(y).backward()
    >>> x.grad
    variable([[[[0. 0. 1. 0.]
                [0. 1. 0. 0.]
                [0. 1. 0. 0.]
                [0. 0. 1. 0.]]]])
    """
    return Pooling2DWithIndexes(indexes, kernel_size, stride, pad)(x)


def pooling_simple(x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """Max pooling composed from ``im2col`` and ``max`` (DeZero); ties all get the gradient.

    The same values as :func:`pooling`, in several graph nodes and with a copy of every window;
    prefer :func:`pooling`.

    Parameters
    ----------
    x : Variable or array
        Images of shape (N, C, H, W).
    kernel_size : int or (int, int)
        (KH, KW) of the window, each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0; they take part in the maximum.

    Returns
    -------
    Variable
        Of shape (N, C, OH, OW), OH and OW as for :func:`conv2d`. Every element equal to its
        window's maximum gets that window's whole gradient.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, ``kernel_size``, ``stride`` or ``pad`` is out of range, or the
        kernel is larger than the padded input.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.ones((1, 1, 2, 2)))  # one window, four tied maxima
    >>> y = F.pooling_simple(x, 2)
    >>> y.backward()
    >>> y, x.grad
    (variable([[[[1.]]]]), variable([[[[1. 1.]
                [1. 1.]]]]))
    >>> x.cleargrad()
    >>> F.pooling(x, 2).backward()  # pooling: the first maximum only
    >>> x.grad
    variable([[[[1. 0.]
                [0. 0.]]]])
    """
    from agrad.functions.reduction import max as max_
    from agrad.functions.shape import reshape, transpose

    KH, KW, SH, SW, PH, PW = _geometry("pooling_simple", kernel_size, stride, pad)
    _check_image("pooling_simple", "x", x)
    N, C, H, W = x.shape
    OH, OW = _out_size("pooling_simple", H, W, (KH, KW, SH, SW, PH, PW))
    col = reshape(im2col(x, (KH, KW), stride, pad, to_matrix=True), (N * OH * OW * C, KH * KW))
    y = max_(col, axis=1)
    return transpose(reshape(y, (N, OH, OW, C)), (0, 3, 1, 2))


@array_twin("pooling_grad")
def _pooling_grad_twin(xp, gy, indexes, input_shape, kernel_size, stride=1, pad=0):
    geometry = _geometry("pooling_grad", kernel_size, stride, pad)
    return _pooling_grad_forward(gy, indexes, tuple(input_shape), geometry)


@array_twin("pooling_with_indexes")
def _pooling_with_indexes_twin(xp, x, indexes, kernel_size, stride=1, pad=0):
    geometry = _geometry("pooling_with_indexes", kernel_size, stride, pad)
    return _pooling_with_indexes_forward(x, indexes, geometry)


class AveragePooling(Function):
    """Average pooling (padding counts as zeros, as in DeZero); the gradient is spread evenly.

    The function behind :func:`average_pooling`, called as ``AveragePooling(kernel_size, stride,
    pad)(x)``; its backward needs only the input's shape.

    Parameters
    ----------
    kernel_size : int or (int, int)
        (KH, KW) of the window, each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0.

    Raises
    ------
    ValueError
        If ``kernel_size``, ``stride`` or ``pad`` is out of range.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> F.AveragePooling(2, stride=2)(xp.reshape(xp.arange(16.0), (1, 1, 4, 4)))
    variable([[[[ 2.5  4.5]
                [10.5 12.5]]]])
    """

    retain_inputs = ()  # the gradient needs only the input's shape
    retain_outputs = ()

    def __init__(self, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> None:
        self.geometry = _geometry("average_pooling", kernel_size, stride, pad)
        self.kernel_size, self.stride, self.pad = pair(kernel_size), pair(stride), pair(pad)

    def forward(self, x: Any) -> Any:
        image, slices = _pool_slices("average_pooling", x, self.geometry)
        total = image[slices[0]]
        for at in slices[1:]:
            total = total + image[at]
        return total * (1 / len(slices))

    def vjp(self, d, xs, ys, gys):
        gy = gys[0]
        N, C, OH, OW = gy.shape
        KH, KW = self.kernel_size
        spread = d.reshape(gy * (1 / (KH * KW)), (N, C, 1, 1, OH, OW))
        gcol = d.broadcast_to(spread, (N, C, KH, KW, OH, OW))
        shape = tuple(xs[0].shape)
        return d.col2im(gcol, shape, self.kernel_size, self.stride, self.pad, False)


def average_pooling(x: Any, kernel_size: Any, stride: Any = 1, pad: Any = 0) -> Variable:
    """Average pooling over NCHW ``x`` (default stride 1, as DeZero).

    Pass ``stride=kernel_size`` for the usual non-overlapping windows. Differentiable twice.

    Parameters
    ----------
    x : Variable or array
        Images of shape (N, C, H, W).
    kernel_size : int or (int, int)
        (KH, KW) of the window, each >= 1.
    stride : int or (int, int), default 1
        Step between windows along H and W, each >= 1.
    pad : int or (int, int), default 0
        Zeros added on both sides of H and W, each >= 0. They count in the mean: every window
        is divided by KH*KW.

    Returns
    -------
    Variable
        Of shape (N, C, OH, OW) and ``x``'s dtype, OH and OW as for :func:`conv2d`. Each
        output's gradient is spread as ``gy / (KH*KW)`` over its window.

    Raises
    ------
    ValueError
        If ``x`` is not 4-D, ``kernel_size``, ``stride`` or ``pad`` is out of range, or the
        kernel is larger than the padded input.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.reshape(xp.arange(16.0), (1, 1, 4, 4)))
    >>> y = F.average_pooling(x, 2, stride=2)
    >>> y
    variable([[[[ 2.5  4.5]
                [10.5 12.5]]]])
    >>> y[0, 0, 0, 0].backward()
    >>> x.grad[0, 0]
    variable([[0.25 0.25 0.   0.  ]
              [0.25 0.25 0.   0.  ]
              [0.   0.   0.   0.  ]
              [0.   0.   0.   0.  ]])
    >>> F.average_pooling(xp.ones((1, 1, 2, 2)), 2, pad=1)  # the padding's zeros count
    variable([[[[0.25 0.5  0.25]
                [0.5  1.   0.5 ]
                [0.25 0.5  0.25]]]])
    """
    return AveragePooling(kernel_size, stride, pad)(x)
