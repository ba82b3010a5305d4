"""matmul (and ``@``, ``.dot``), linear and linear_simple."""

from __future__ import annotations

import numpy as np
import pytest
from fn_checks import check_dtype, check_function, check_read_only, dtypes_for, host, randn

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.cuda import as_numpy

X, W, B = randn(3, 4), randn(4, 2), randn(2)


@pytest.fixture(autouse=True)
def _constants_on_backend(request, monkeypatch):
    """Swap the module's host constants for arrays of the test's backend."""
    if "xp" not in request.fixturenames:
        return
    xp = request.getfixturevalue("xp")
    for name in ("X", "W", "B"):
        monkeypatch.setitem(globals(), name, xp.asarray(globals()[name]))


CASES = {
    "matmul_x": (lambda x: F.matmul(x, W), randn(3, 4)),
    "matmul_W": (lambda w: F.matmul(X, w), randn(4, 2)),
    "matmul_self": (lambda x: x @ x.T, randn(3, 4)),
    "matmul_vector_matrix": (lambda x: x @ W, randn(4)),
    "matmul_matrix_vector": (lambda x: F.matmul(X, x), randn(4)),
    "matmul_batched": (lambda x: F.matmul(x, W), randn(2, 3, 4)),
    "dot_method": (lambda x: x.dot(W), randn(3, 4)),
    "matmul_method": (lambda x: x.matmul(x.T), randn(2, 3)),
    "linear_x": (lambda x: F.linear(x, W, B), randn(3, 4)),
    "linear_W": (lambda w: F.linear(X, w, B), randn(4, 2)),
    "linear_b": (lambda b: F.linear(X, W, b), randn(2)),
    "linear_b_row": (lambda b: F.linear(X, W, b), randn(1, 2)),
    "linear_no_bias": (lambda x: F.linear(x, W), randn(3, 4)),
    "linear_class_none_bias": (lambda x: F.Linear()(x, W, None), randn(3, 4)),
    "linear_batched": (lambda x: F.linear(x, W, B), randn(2, 3, 4)),
    "linear_simple_x": (lambda x: F.linear_simple(x, W, B), randn(3, 4)),
    "linear_simple_b": (lambda b: F.linear_simple(X, W, b), randn(2)),
    "linear_simple_no_bias": (lambda w: F.linear_simple(X, w), randn(4, 2)),
    "linear_all_params": (lambda x: F.linear(x, x.T, x[0]), randn(3, 3)),
}
CONSTANT_FREE = {"matmul_self", "matmul_method", "linear_all_params"}


@pytest.mark.parametrize("name", list(CASES))
def test_gradients(xp, name):
    f, x = CASES[name]
    check_function(xp, f, x)


@pytest.mark.parametrize("name", sorted(CONSTANT_FREE))
def test_dtypes(xp, name):
    f, x = CASES[name]
    for dtype in dtypes_for(xp):
        check_dtype(xp, f, x, dtype)


def test_linear_dtypes(xp):
    for dtype in dtypes_for(xp):
        backend = agrad.current_backend()
        x, w, b = (Variable(backend.asarray(a, dtype)) for a in (randn(3, 4), randn(4, 2), B))
        y = F.linear(x, w, b)
        assert y.dtype == backend.dtype(dtype)
        F.sum(y).backward()
        assert x.grad.dtype == w.grad.dtype == b.grad.dtype == backend.dtype(dtype)


@pytest.mark.parametrize("name", list(CASES))
def test_read_only_numpy_input(name):
    f, x = CASES[name]
    check_read_only(f, x)


def test_forward_values(xp):
    x, w, b = randn(3, 4), randn(4, 2), randn(2)
    vx, vw, vb = (Variable(xp.asarray(a)) for a in (x, w, b))
    np.testing.assert_allclose(host(F.matmul(vx, vw)), x @ w)
    np.testing.assert_allclose(host(vx @ vw), x @ w)
    np.testing.assert_allclose(host(vx @ xp.asarray(w)), x @ w)
    np.testing.assert_allclose(host(vx.dot(vw)), x @ w)
    np.testing.assert_allclose(host(F.linear(vx, vw, vb)), x @ w + b)
    np.testing.assert_allclose(host(F.linear(vx, vw)), x @ w)
    np.testing.assert_allclose(host(F.linear_simple(vx, vw, vb)), x @ w + b)


def test_linear_is_one_node(xp):
    y = F.linear(Variable(xp.asarray(randn(3, 4))), xp.asarray(W), xp.asarray(B))
    assert isinstance(y.creator, F.Linear)
    assert all(x.creator is None for x in y.creator.inputs)


def test_rmatmul_with_numpy_array():
    x, w = randn(3, 4), randn(4, 2)
    vw = Variable(w)
    y = x @ vw
    np.testing.assert_allclose(host(y), x @ w)
    F.sum(y).backward()
    np.testing.assert_allclose(host(vw.grad), x.T @ np.ones((3, 2)))


def test_raw_array_input_skips_its_gradient_but_not_the_weights(xp):
    """A data batch passed as a raw array needs no gradient; W's must not change because of it."""
    rng = np.random.default_rng(0)
    x_host, w_host = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    grads = {}
    for kind in ("array", "variable"):
        W = agrad.Parameter(xp.asarray(w_host))
        x = xp.asarray(x_host) if kind == "array" else agrad.Variable(xp.asarray(x_host))
        y = F.linear(x, W)
        assert y.creator.needs_input_grad(0) is (kind == "variable")
        F.sum(y * y).backward()
        grads[kind] = as_numpy(W.grad)
        if kind == "variable":
            np.testing.assert_allclose(as_numpy(x.grad), 2 * (x_host @ w_host) @ w_host.T)
    np.testing.assert_allclose(grads["array"], grads["variable"])


# (x shape, W shape): every 1-D / 2-D / batched combination matmul accepts
MATMUL_SHAPES = [
    ((4,), (4,)),
    ((3, 4), (4,)),
    ((4,), (4, 2)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 3)),
    ((3, 4), (4, 2)),
    ((2, 3, 4), (4, 2)),
    ((3, 4), (2, 4, 2)),
    ((2, 1, 3, 4), (5, 4, 2)),
]


@pytest.mark.parametrize("operand", ["x", "W"])
@pytest.mark.parametrize(("x_shape", "w_shape"), MATMUL_SHAPES)
def test_matmul_every_shape(xp, x_shape, w_shape, operand):
    """Gradient, double backward and fast == graph path for each operand (two vectors used to
    raise AxisError in a plain backward())."""
    x_host, w_host = randn(*x_shape), randn(*w_shape)
    if operand == "x":
        w_const = xp.asarray(w_host)
        check_function(xp, lambda x: F.matmul(x, w_const), x_host)
    else:
        x_const = xp.asarray(x_host)
        check_function(xp, lambda w: F.matmul(x_const, w), w_host)


@pytest.mark.parametrize(("x_shape", "w_shape"), MATMUL_SHAPES)
def test_matmul_both_operands_gradients(xp, x_shape, w_shape):
    """Both gradients at once (plain and create_graph backward) match NumPy's closed forms."""
    x_host, w_host = randn(*x_shape), randn(*w_shape)
    for create_graph in (False, True):
        x, w = Variable(xp.asarray(x_host)), Variable(xp.asarray(w_host))
        y = F.matmul(x, w)
        np.testing.assert_allclose(host(y), np.matmul(x_host, w_host))
        F.sum(y).backward(create_graph=create_graph)
        assert x.grad.shape == x_host.shape and w.grad.shape == w_host.shape
        gy = np.ones(np.matmul(x_host, w_host).shape)
        x2 = x_host[None] if x_host.ndim == 1 else x_host
        w2 = w_host[:, None] if w_host.ndim == 1 else w_host
        g2 = gy.reshape(np.matmul(x2, w2).shape)
        expect_x = np.matmul(g2, np.swapaxes(w2, -1, -2))
        expect_w = np.matmul(np.swapaxes(x2, -1, -2), g2)
        expect_x = _sum_to(expect_x, x2.shape).reshape(x_host.shape)
        expect_w = _sum_to(expect_w, w2.shape).reshape(w_host.shape)
        np.testing.assert_allclose(host(x.grad), expect_x, rtol=1e-12)
        np.testing.assert_allclose(host(w.grad), expect_w, rtol=1e-12)


def _sum_to(a: np.ndarray, shape: tuple) -> np.ndarray:
    lead = a.ndim - len(shape)
    a = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a
