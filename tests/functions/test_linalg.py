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
