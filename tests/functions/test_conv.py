"""conv2d, deconv2d, pooling, average_pooling, im2col/col2im and their _simple variants.

Forward values are compared with plain loops over NumPy arrays written here; gradients with
finite differences in float64, twice; the fast backward with the recorded one.
"""

from __future__ import annotations

import numpy as np
import pytest
from fn_checks import check_dtype, check_function, check_read_only, dtypes_for, host, randn

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.utils import get_conv_outsize, pair

# small enough that finite differences of the gradient stay fast on array-api-strict
X, W, B = randn(1, 2, 4, 5), randn(3, 2, 2, 3), randn(3)  # conv: W (OC, C, KH, KW)
XD, WD, BD = randn(1, 2, 3, 2), randn(2, 3, 3, 2), randn(3)  # deconv: W (C, OC, KH, KW)
GY = randn(1, 3, 3, 3)  # an output gradient of conv2d(X, W, stride=2, pad=1)
COL = randn(9, 12)  # im2col(X, (2, 3), 2, 1) as a matrix
COL6 = randn(1, 2, 2, 3, 3, 3)  # im2col(X, (2, 3), 2, 1) unflattened


def distinct(*shape: int) -> np.ndarray:
    """Values 0.1 apart in random order: no ties and no near-ties (max pooling's kinks), and
    none near 0, the value of the zero padding."""
    n = int(np.prod(shape))
    values = (np.random.default_rng(n).permutation(n) - n / 2 + 0.5) * 0.1
    return values.reshape(shape)


XP = distinct(1, 2, 4, 5)


@pytest.fixture(autouse=True)
def _constants_on_backend(request, monkeypatch):
    """Swap the module's host constants for arrays of the test's backend."""
    if "xp" not in request.fixturenames:
        return
    xp = request.getfixturevalue("xp")
    for name in ("X", "W", "B", "XD", "WD", "BD", "GY", "XP"):
        monkeypatch.setitem(globals(), name, xp.asarray(globals()[name]))


# -- references: loops over host NumPy arrays ---------------------------------------------------
def _padded(x, ph, pw):
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def ref_windows(x, kernel_size, stride, pad):
    """(N, C, KH, KW, OH, OW) by explicit loops."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel_size), pair(stride), pair(pad)
    n, c, h, w = x.shape
    oh, ow = get_conv_outsize(h, kh, sh, ph), get_conv_outsize(w, kw, sw, pw)
    xpad = _padded(x, ph, pw)
    out = np.zeros((n, c, kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            for a in range(oh):
                for b in range(ow):
                    out[:, :, i, j, a, b] = xpad[:, :, a * sh + i, b * sw + j]
    return out


def ref_im2col_matrix(x, kernel_size, stride, pad):
    windows = ref_windows(x, kernel_size, stride, pad)
    n, _, _, _, oh, ow = windows.shape
    rows = []
    for i in range(n):
        for a in range(oh):
            for b in range(ow):
                rows.append(windows[i, :, :, :, a, b].reshape(-1))
    return np.array(rows)


def ref_conv2d(x, w, b, stride, pad):
    (sh, sw), (ph, pw) = pair(stride), pair(pad)
    oc, _, kh, kw = w.shape
    n, _, h, wd = x.shape
    oh, ow = get_conv_outsize(h, kh, sh, ph), get_conv_outsize(wd, kw, sw, pw)
    xpad = _padded(x, ph, pw)
    y = np.zeros((n, oc, oh, ow))
    for i in range(n):
        for o in range(oc):
            for a in range(oh):
                for c in range(ow):
                    patch = xpad[i, :, a * sh : a * sh + kh, c * sw : c * sw + kw]
                    y[i, o, a, c] = np.sum(patch * w[o]) + (0.0 if b is None else b[o])
    return y


def ref_deconv2d(x, w, b, stride, pad, outsize=None):
    (sh, sw), (ph, pw) = pair(stride), pair(pad)
    _, oc, kh, kw = w.shape
    n, _, h, wd = x.shape
    if outsize is None:
        outsize = (sh * (h - 1) + kh - 2 * ph, sw * (wd - 1) + kw - 2 * pw)
    oh, ow = outsize
    full = np.zeros(
        (n, oc, max(sh * (h - 1) + kh, oh + 2 * ph), max(sw * (wd - 1) + kw, ow + 2 * pw))
    )
    for i in range(h):
        for j in range(wd):
            # every input pixel spreads its channels through the whole kernel
            contribution = np.einsum("nc,cokl->nokl", x[:, :, i, j], w)
            full[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw] += contribution
    y = full[:, :, ph : ph + oh, pw : pw + ow]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def ref_pool(x, kernel_size, stride, pad, reduce):
    windows = ref_windows(x, kernel_size, stride, pad)
    n, c, kh, kw, oh, ow = windows.shape
    return reduce(windows.reshape(n, c, kh * kw, oh, ow), axis=2)


def ref_col2im(col6, img_shape, kernel_size, stride, pad):
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel_size), pair(stride), pair(pad)
    n, c, h, w = img_shape
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    oh, ow = col6.shape[4], col6.shape[5]
    for i in range(kh):
        for j in range(kw):
            for a in range(oh):
                for b in range(ow):
                    out[:, :, a * sh + i, b * sw + j] += col6[:, :, i, j, a, b]
    return out[:, :, ph : ph + h, pw : pw + w]


GEOMETRIES = [(3, 1, 0), (2, 2, 1), ((2, 3), (1, 2), (1, 0)), (3, 2, 2)]


# -- forward values -------------------------------------------------------------------------
def test_im2col_shapes_of_the_book(xp):
    # DeZero step57
    col1 = F.im2col(xp.asarray(np.random.rand(1, 3, 7, 7)), kernel_size=5, stride=1, pad=0)
    assert col1.shape == (9, 75)
    col2 = F.im2col(xp.asarray(np.random.rand(10, 3, 7, 7)), kernel_size=5, stride=1, pad=0)
    assert col2.shape == (90, 75)
    col3 = F.im2col(xp.asarray(np.random.rand(1, 3, 7, 7)), 5, to_matrix=False)
    assert col3.shape == (1, 3, 5, 5, 3, 3)
    x, w = xp.asarray(np.random.rand(1, 5, 15, 15)), xp.asarray(np.random.rand(8, 5, 3, 3))
    assert F.conv2d_simple(x, w, None, stride=1, pad=1).shape == (1, 8, 15, 15)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_im2col_col2im_values(xp, geometry):
    x = randn(2, 3, 5, 6)
    expected = ref_windows(x, *geometry)
    np.testing.assert_allclose(host(F.im2col(xp.asarray(x), *geometry, to_matrix=False)), expected)
    matrix = ref_im2col_matrix(x, *geometry)
    np.testing.assert_allclose(host(F.im2col(xp.asarray(x), *geometry)), matrix)
    np.testing.assert_allclose(host(F.im2col_array(xp.asarray(x), *geometry)), matrix)

    col6 = randn(*expected.shape)
    back = ref_col2im(col6, x.shape, *geometry)
    got = F.col2im(xp.asarray(col6), x.shape, *geometry, to_matrix=False)
    np.testing.assert_allclose(host(got), back)
    col6_array = xp.asarray(col6)
    got_array = F.col2im_array(col6_array, x.shape, *geometry, to_matrix=False)
    np.testing.assert_allclose(host(got_array), back)
    # the matrix layout holds the same windows, one row per output pixel
    n, c, kh, kw, oh, ow = col6.shape
    as_matrix = np.transpose(col6, (0, 4, 5, 1, 2, 3)).reshape(n * oh * ow, c * kh * kw)
    np.testing.assert_allclose(host(F.col2im(xp.asarray(as_matrix), x.shape, *geometry)), back)


@pytest.mark.parametrize("geometry", [(1, 0), (2, 1), ((2, 1), (0, 2)), (3, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_values(xp, geometry, bias):
    x, w, b = randn(2, 3, 6, 7), randn(4, 3, 3, 2), randn(4)
    expected = ref_conv2d(x, w, b if bias else None, *geometry)
    args = (xp.asarray(x), xp.asarray(w), xp.asarray(b) if bias else None, *geometry)
    np.testing.assert_allclose(host(F.conv2d(*args)), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(F.conv2d_simple(*args)), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "geometry",
    [(1, 0, None), (2, 1, None), ((2, 1), (0, 1), None), (2, 1, (6, 3)), (3, 0, (11, 7))],
)
@pytest.mark.parametrize("bias", [True, False])
def test_deconv2d_values(xp, geometry, bias):
    x, w, b = randn(2, 3, 3, 2), randn(3, 4, 3, 2), randn(4)
    expected = ref_deconv2d(
        x, w, b if bias else None, *geometry[:2], pair(geometry[2]) if geometry[2] else None
    )
    args = (xp.asarray(x), xp.asarray(w), xp.asarray(b) if bias else None)
    y = F.deconv2d(*args, *geometry)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)


def test_deconv2d_is_the_transpose_of_conv2d(xp):
    # <conv2d(x, W), y> == <x, deconv2d(y, W)>: an identity neither implementation is built on
    x, w = randn(2, 3, 7, 6), randn(4, 3, 3, 2)
    y = randn(*ref_conv2d(x, w, None, 2, 1).shape)
    conv = host(F.conv2d(xp.asarray(x), xp.asarray(w), None, 2, 1))
    deconv = host(F.deconv2d(xp.asarray(y), xp.asarray(w), None, 2, 1, outsize=(7, 6)))
    np.testing.assert_allclose(np.sum(conv * y), np.sum(x * deconv), rtol=1e-12)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_pooling_values(xp, geometry):
    x = randn(2, 3, 5, 6)
    vx = xp.asarray(x)
    expected_max = ref_pool(x, *geometry, np.max)
    np.testing.assert_allclose(host(F.pooling(vx, *geometry)), expected_max)
    np.testing.assert_allclose(host(F.pooling_simple(vx, *geometry)), expected_max)
    expected_mean = ref_pool(x, *geometry, np.mean)
    np.testing.assert_allclose(host(F.average_pooling(vx, *geometry)), expected_mean, rtol=1e-12)


def test_deconv2d_rejects_an_outsize_that_does_not_fit(xp):
    with pytest.raises(ValueError, match="outsize"):
        F.deconv2d(xp.asarray(host(XD)), xp.asarray(host(WD)), None, 2, 1, outsize=(9, 9))


def test_pooling_default_stride_is_one(xp):
    x = randn(1, 1, 4, 4)
    assert F.pooling(xp.asarray(x), 2).shape == (1, 1, 3, 3)
    assert F.average_pooling(xp.asarray(x), 2).shape == (1, 1, 3, 3)
    assert F.pooling_simple(xp.asarray(x), 2).shape == (1, 1, 3, 3)


def test_max_pooling_ties_send_the_gradient_to_the_first_maximum(xp):
    x = Variable(xp.asarray(np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 5.0, 5.0]]]])))
    y = F.pooling(x, 2, 2)
    np.testing.assert_array_equal(host(y), [[[[3.0, 5.0]]]])
    y.backward()
    np.testing.assert_array_equal(host(x.grad), [[[[0, 1, 0, 0], [0, 0, 1, 0]]]])


# -- gradients (first and second order, fast path == graph path) ------------------------------
CASES = {
    "conv2d_x": (lambda x: F.conv2d(x, W, B), X),
    "conv2d_x_stride_pad": (lambda x: F.conv2d(x, W, B, stride=(2, 1), pad=(1, 2)), X),
    "conv2d_W": (lambda w: F.conv2d(X, w, B, 2, 1), W),
    "conv2d_b": (lambda b: F.conv2d(X, W, b, 1, 1), B),
    "conv2d_no_bias": (lambda x: F.conv2d(x, W, None, 2, 1), X),
    "conv2d_class_none_bias": (lambda x: F.Conv2d(1, 1)(x, W, None), X),
    "conv2d_simple_x": (lambda x: F.conv2d_simple(x, W, B, 2, 1), X),
    "conv2d_simple_W": (lambda w: F.conv2d_simple(X, w, B), W),
    "conv2d_simple_b": (lambda b: F.conv2d_simple(X, W, b, 1, 1), B),
    "deconv2d_x": (lambda x: F.deconv2d(x, WD, BD, 2, 1), XD),
    "deconv2d_W": (lambda w: F.deconv2d(XD, w, BD, (1, 2), (0, 1)), WD),
    "deconv2d_b": (lambda b: F.deconv2d(XD, WD, b, 2, 1), BD),
    "deconv2d_outsize": (lambda x: F.deconv2d(x, WD, None, 2, 1, outsize=(6, 3)), XD),
    "conv2d_grad_w_x": (lambda x: F.conv2d_grad_w(x, GY, (2, 3), 2, 1), X),
    "conv2d_grad_w_gy": (lambda g: F.conv2d_grad_w(X, g, (2, 3), 2, 1), GY),
    "im2col_matrix": (lambda x: F.im2col(x, (2, 3), 2, 1), X),
    "im2col_tensor": (lambda x: F.im2col(x, 3, 1, 1, to_matrix=False), X),
    "col2im_matrix": (lambda c: F.col2im(c, (1, 2, 4, 5), (2, 3), 2, 1), COL),
    "col2im_tensor": (lambda c: F.col2im(c, (1, 2, 4, 5), (2, 3), 2, 1, to_matrix=False), COL6),
    "pooling": (lambda x: F.pooling(x, 2, 2), XP),
    "pooling_stride1_pad": (lambda x: F.pooling(x, 3, 1, 1), XP),
    "pooling_tuple": (lambda x: F.pooling(x, (2, 3), (2, 1), (1, 0)), XP),
    "pooling_simple": (lambda x: F.pooling_simple(x, 2, 2), XP),
    "pooling_simple_pad": (lambda x: F.pooling_simple(x, 3, 2, 1), XP),
    "average_pooling": (lambda x: F.average_pooling(x, 2, 2), X),
    "average_pooling_pad": (lambda x: F.average_pooling(x, (3, 2), (1, 2), 1), X),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradients(xp, name):
    f, x = CASES[name]
    check_function(xp, f, host(x))


@pytest.mark.parametrize("name", list(CASES))
def test_read_only_numpy_input(name):
    f, x = CASES[name]
    check_read_only(f, x)


def test_conv2d_mixed_second_derivative(xp):
    # d/dW of |d loss / dx|^2: the backward of the backward reaches W through deconv2d

    def squared_input_gradient(w):
        x = Variable(xp.asarray(host(X)))
        F.sum(F.sin(F.conv2d(x, w, B, 2, 1))).backward(create_graph=True)
        w.cleargrad()  # keep only the second-order gradient the check asks for
        return F.sum(x.grad * x.grad)

    agrad.utils.gradient_check(squared_input_gradient, W)


def test_deconv2d_mixed_second_derivative(xp):
    def squared_kernel_gradient(x):
        w = Variable(xp.asarray(host(WD)))
        F.sum(F.sin(F.deconv2d(x, w, BD, 2, 1))).backward(create_graph=True)
        x.cleargrad()  # keep only the second-order gradient the check asks for
        return F.sum(w.grad * w.grad)

    agrad.utils.gradient_check(squared_kernel_gradient, XD)


def _with_dtype(backend, dtype, *arrays):
    return [Variable(backend.asarray(a, dtype)) for a in arrays]


DTYPE_CASES = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, 2, 1), (X, W, B)),
    "conv2d_simple": (lambda x, w, b: F.conv2d_simple(x, w, b, 1, 1), (X, W, B)),
    "deconv2d": (lambda x, w, b: F.deconv2d(x, w, b, 2, 1), (XD, WD, BD)),
    "pooling": (lambda x: F.pooling(x, 2, 2, 1), (XP,)),
    "pooling_simple": (lambda x: F.pooling_simple(x, 2, 2, 1), (XP,)),
    "average_pooling": (lambda x: F.average_pooling(x, 3, 1, 1), (X,)),
    "im2col": (lambda x: F.im2col(x, 3, 1, 1), (X,)),
    "col2im": (lambda c: F.col2im(c, (1, 2, 4, 5), (2, 3), 2, 1), (COL,)),
}


@pytest.mark.parametrize("name", list(DTYPE_CASES))
def test_dtypes_are_kept(xp, name):
    f, arrays = DTYPE_CASES[name]
    backend = agrad.current_backend()
    for dtype in dtypes_for(xp):
        inputs = _with_dtype(backend, dtype, *(host(a) for a in arrays))
        y = f(*inputs)
        assert y.dtype == backend.dtype(dtype), (dtype, y.dtype)
        F.sum(y).backward()
        for v in inputs:
            assert v.grad.dtype == backend.dtype(dtype), (dtype, v.grad.dtype)
        if len(arrays) == 1:
            check_dtype(xp, f, host(arrays[0]), dtype)


# -- API details ----------------------------------------------------------------------------
def test_lists_are_rejected_as_sizes(xp):
    x, w = xp.asarray(host(X)), xp.asarray(host(W))
    with pytest.raises(ValueError):
        F.conv2d(x, w, None, stride=[1, 1])
    with pytest.raises(ValueError):
        F.pooling(x, [2, 2])
    with pytest.raises(ValueError):
        F.im2col(x, [2, 2])


def test_dezero_style_gradient_classes(xp):
    x, w = Variable(xp.asarray(host(X))), Variable(xp.asarray(host(W)))
    conv = F.Conv2d(2, 1)
    y = conv(x, w)
    gw = F.Conv2DGradW(conv)(x, Variable(xp.ones_like(y.data)))
    F.sum(y).backward()
    np.testing.assert_allclose(host(gw), host(w.grad), rtol=1e-12)

    pool = F.Pooling(2, 2)
    p = pool(Variable(xp.asarray(host(XP))))
    gx = F.Pooling2DGrad(pool)(Variable(xp.ones_like(p.data)))
    assert gx.shape == XP.shape
    picked = F.Pooling2DWithIndexes(pool)(xp.asarray(host(XP)))
    np.testing.assert_array_equal(host(picked), host(p))


def test_conv2d_output_on_the_input_backend(xp):
    y = F.conv2d(xp.asarray(host(X)), xp.asarray(host(W)), xp.asarray(host(B)))
    assert agrad.backends.backend_of(y.data) is agrad.current_backend()
    assert isinstance(y.creator, F.Conv2d)


# -- the backends' window capability --------------------------------------------------------
WINDOW_GEOMETRIES = [((3, 3), (1, 1)), ((2, 3), (2, 1)), ((2, 2), (2, 2)), ((3, 2), (3, 4))]


def _portable(backend, monkeypatch):
    """``backend`` with its stride tricks switched off: the Array API fallback."""
    monkeypatch.setattr(type(backend), "stride_tricks", False)
    return backend


@pytest.mark.parametrize("window, stride", WINDOW_GEOMETRIES)
@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_window_view_and_add_windows_match_loops(xp, monkeypatch, window, stride, portable):
    backend = agrad.current_backend()
    if portable:
        _portable(backend, monkeypatch)
    x = randn(2, 3, 7, 8)
    (kh, kw), (sh, sw) = window, stride
    oh, ow = (7 - kh) // sh + 1, (8 - kw) // sw + 1
    expected = np.zeros((2, 3, kh, kw, oh, ow))
    for i in range(kh):
        for j in range(kw):
            expected[:, :, i, j] = x[
                :, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw
            ]
    view = backend.window_view(xp.asarray(x), window, stride)
    np.testing.assert_array_equal(host(view), expected)

    col = randn(*expected.shape)
    summed = np.zeros((2, 3, 7, 8))
    for i in range(kh):
        for j in range(kw):
            summed[:, :, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw] += col[
                :, :, i, j
            ]
    got = backend.add_windows(xp.asarray(col), (7, 8), stride)
    np.testing.assert_allclose(host(got), summed, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("to_matrix", [True, False])
def test_im2col_output_is_a_fresh_writeable_array(to_matrix):
    x = np.arange(2 * 1 * 3 * 3, dtype=np.float64).reshape(2, 1, 3, 3)
    for kernel in (1, 2):
        col = F.im2col(x, kernel, to_matrix=to_matrix).data
        assert col.flags.writeable and not np.shares_memory(col, x)


def test_window_view_of_numpy_is_a_read_only_view():
    x = np.arange(2 * 5 * 6, dtype=np.float64).reshape(1, 2, 5, 6)
    view = agrad.get_backend("numpy").window_view(x, (3, 3), (1, 1))
    assert np.shares_memory(view, x) and not view.flags.writeable


def test_add_windows_refuses_windows_that_do_not_fit(xp):
    backend = agrad.current_backend()
    with pytest.raises(ValueError, match="do not fit"):
        backend.add_windows(xp.zeros((1, 1, 3, 3, 4, 4)), (5, 5), (1, 1))


@pytest.mark.parametrize("name", ["conv2d_x", "conv2d_W", "deconv2d_x", "col2im_tensor", "pooling"])
def test_portable_path_gives_the_native_gradients(monkeypatch, name):
    # NumPy with and without stride tricks: the same values and gradients
    f, x = CASES[name]
    results = []
    for portable in (False, True):
        if portable:
            _portable(agrad.get_backend("numpy"), monkeypatch)
        v = Variable(np.asarray(x))
        y = f(v)
        F.sum(F.sin(y)).backward()
        results.append((host(y), host(v.grad)))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)


# -- what the graph keeps ---------------------------------------------------------------------
def test_retention_declarations():
    # conv reads its input and kernel; pooling only its argmax, never its input
    for cls in (F.Conv2d, F.Deconv2d, F.Conv2DGradW):
        assert cls.retain_inputs == (0, 1) and cls.retain_outputs == ()
    for cls in (F.Pooling, F.Pooling2DGrad, F.Pooling2DWithIndexes):
        assert cls.retain_inputs == () and cls.retain_outputs == ()
        assert cls.retain_attributes == ("indexes",)
    for cls in (F.AveragePooling, F.Im2col, F.Col2im):
        assert cls.retain_inputs == () and cls.retain_outputs == ()


class _StandIn:
    """What the graph keeps of an input that is not retained: its shape, ndim and dtype."""

    def __init__(self, array):
        self.shape, self.ndim, self.dtype = tuple(array.shape), array.ndim, array.dtype


@pytest.mark.parametrize(
    "build",
    [
        lambda: (F.Conv2d(2, 1), (X, W, B)),
        lambda: (F.Conv2d(1, 1), (X, W)),
        lambda: (F.Deconv2d(2, 1), (XD, WD, BD)),
        lambda: (F.Conv2DGradW((2, 3), 2, 1), (X, GY)),
        lambda: (F.Pooling(2, 2), (XP,)),
        lambda: (F.Pooling(3, 1, 1), (XP,)),
        lambda: (F.AveragePooling(2, 1, 1), (X,)),
        lambda: (F.Im2col(3, 1, 1), (X,)),
        lambda: (F.Col2im((1, 2, 4, 5), (2, 3), 2, 1), (xp_of(X).asarray(COL),)),
    ],
)
def test_vjp_reads_only_what_it_declares(xp, build):
    # the backward pass of the coming core hands vjp stand-ins for inputs and outputs it was
    # not told to keep, and drops every other array attribute: the gradients must not change
    func, inputs = build()
    ys = func(*[Variable(x) for x in inputs])
    ys = ys if isinstance(ys, list) else [ys]
    gys = [xp.ones_like(y.data) for y in ys]
    d = agrad.ops.array_ops(agrad.current_backend())
    full = func.vjp(d, tuple(inputs), tuple(y.data for y in ys), tuple(gys))
    keep_in = range(len(inputs)) if func.retain_inputs is None else func.retain_inputs
    keep_out = range(len(ys)) if func.retain_outputs is None else func.retain_outputs
    xs = tuple(x if i in keep_in else _StandIn(x) for i, x in enumerate(inputs))
    outs = tuple(y.data if i in keep_out else _StandIn(y.data) for i, y in enumerate(ys))
    arrays = agrad.backends.backend_of(inputs[0]).array_type
    for name, value in list(vars(func).items()):
        if isinstance(value, arrays) and name not in func.retain_attributes:
            setattr(func, name, None)
    lean = func.vjp(d, xs, outs, tuple(gys))
    full, lean = (g if isinstance(g, tuple) else (g,) for g in (full, lean))
    assert len(full) == len(lean)
    for a, b in zip(full, lean):
        np.testing.assert_array_equal(host(a), host(b))


def xp_of(array):
    return agrad.backends.backend_of(array).xp


def test_max_pooling_keeps_a_narrow_argmax(xp):
    pool = F.Pooling(2, 2)
    pool(Variable(xp.asarray(host(XP))))
    assert pool.indexes.dtype == xp.int8 and tuple(pool.indexes.shape) == (1, 2, 2, 2)


# -- bad input: errors that name the argument, the value and what is allowed -----------------
def _image(xp, *shape):
    return xp.asarray(randn(*shape))


BAD_CALLS = [
    ("conv2d", [(1, 3, 9, 9), (4, 2, 3, 3)], (), {}, r"x has 3 channels.*takes 2"),
    (
        "conv2d",
        [(1, 2, 5, 5), (4, 2, 3, 3)],
        (),
        {"stride": 0},
        r"stride must be an int >= 1.*got 0",
    ),
    ("conv2d", [(1, 2, 5, 5), (4, 2, 3, 3)], (), {"pad": -1}, r"pad must be an int >= 0.*got -1"),
    ("conv2d", [(1, 2, 5, 5), (4, 2, 3, 3)], (), {"pad": (1, -2)}, r"pad .*got \(1, -2\)"),
    (
        "conv2d",
        [(1, 2, 2, 2), (4, 2, 5, 5)],
        (),
        {"pad": 1},
        r"kernel \(5, 5\) is larger than the padded input \(4, 4\)",
    ),
    ("conv2d", [(2, 5, 5), (4, 2, 3, 3)], (), {}, r"x must be a 4-D"),
    ("conv2d", [(1, 2, 5, 5), (2, 3, 3)], (), {}, r"W must be 4-D"),
    ("conv2d", [(1, 2, 5, 5), (4, 2, 3, 3), (3,)], (), {}, r"b must have shape \(4,\)"),
    ("conv2d", [(1, 2, 5, 5), (4, 2, 3, 3)], (), {"stride": 1.5}, r"stride .*got 1.5"),
    ("conv2d_simple", [(1, 3, 5, 5), (4, 2, 3, 3)], (), {}, r"conv2d_simple: x has 3 channels"),
    ("deconv2d", [(1, 3, 4, 4), (2, 4, 3, 3)], (), {}, r"deconv2d: x has 3 channels.*takes 2"),
    ("deconv2d", [(1, 2, 4, 4), (2, 4, 3, 3)], (), {"stride": 0}, r"deconv2d: stride .*got 0"),
    (
        "deconv2d",
        [(1, 2, 1, 1), (2, 4, 3, 3)],
        (),
        {"pad": 2},
        r"deconv2d: pad \(2, 2\) leaves no output",
    ),
    ("deconv2d", [(1, 2, 4, 4), (2, 4, 3, 3)], (), {"pad": -1}, r"deconv2d: pad must be"),
    (
        "pooling",
        [(1, 2, 3, 3)],
        (4,),
        {},
        r"pooling: kernel \(4, 4\) is larger than the padded input \(3, 3\)",
    ),
    ("pooling", [(1, 2, 4, 4)], (2,), {"stride": 0}, r"pooling: stride .*got 0"),
    ("pooling", [(1, 2, 4, 4)], (0,), {}, r"pooling: kernel_size must be an int >= 1"),
    ("pooling", [(1, 2, 4, 4)], (2, 2), {"pad": -1}, r"pooling: pad must be"),
    ("average_pooling", [(1, 2, 3, 3)], (4,), {}, r"average_pooling: kernel \(4, 4\) is larger"),
    ("average_pooling", [(1, 2, 4, 4)], (2,), {"stride": 0}, r"average_pooling: stride"),
    ("im2col", [(1, 2, 3, 3)], (4,), {}, r"im2col: kernel \(4, 4\) is larger"),
    ("im2col", [(1, 2, 3, 3)], (2,), {"stride": 0}, r"im2col: stride"),
    (
        "col2im",
        [(9, 12)],
        ((1, 2, 4, 4), (2, 3), 2, 1),
        {},
        r"col2im: windows of shape \(9, 12\) do not match",
    ),
]


@pytest.mark.parametrize("name, shapes, args, kwargs, message", BAD_CALLS)
def test_bad_geometry_and_shapes_are_named(xp, name, shapes, args, kwargs, message):
    arrays = [_image(xp, *shape) for shape in shapes]
    with pytest.raises(ValueError, match=message):
        getattr(F, name)(*arrays, *args, **kwargs)


def test_conv_layers_name_bad_arguments(xp):
    import agrad.layers as L

    with pytest.raises(ValueError, match=r"Conv2d: stride must be an int >= 1.*got 0"):
        L.Conv2d(4, kernel_size=3, stride=0)
    with pytest.raises(ValueError, match=r"Deconv2d: pad must be an int >= 0.*got -1"):
        L.Deconv2d(4, kernel_size=3, pad=-1)
    with pytest.raises(ValueError, match=r"Conv2d: kernel_size must be"):
        L.Conv2d(4, kernel_size=0)
    with pytest.raises(ValueError, match=r"Conv2d: out_channels must be an int >= 1, got 0"):
        L.Conv2d(0, kernel_size=3)
    conv = L.Conv2d(4, kernel_size=3, in_channels=3)
    with pytest.raises(ValueError, match=r"Conv2d: input has 2 channels .*in_channels=3"):
        conv(_image(xp, 1, 2, 5, 5))
