"""Arithmetic and the basic elementwise functions, plus the book's higher-order demonstrations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fn_checks import check_dtype, check_function, check_read_only, dtypes_for, host, randn

import agrad.functions as F
from agrad import Variable

COLUMN = randn(3, 1)
ROW = randn(1, 4)
MATRIX = randn(3, 4)
POSITIVE = np.abs(randn(3, 4)) + 0.5


@pytest.fixture(autouse=True)
def _constants_on_backend(request, monkeypatch):
    """Swap the module's host constants for arrays of the test's backend."""
    if "xp" not in request.fixturenames:
        return
    xp = request.getfixturevalue("xp")
    for name in ("COLUMN", "ROW", "MATRIX", "POSITIVE"):
        monkeypatch.setitem(globals(), name, xp.asarray(globals()[name]))


CASES = {
    "add_col_row": (lambda x: F.add(x, ROW), randn(3, 1)),
    "add_row_col": (lambda x: F.add(COLUMN, x), randn(1, 4)),
    "add_scalar": (lambda x: x + 2.0, randn(3, 4)),
    "add_scalar_left": (lambda x: 2.0 + x, randn(3, 4)),
    "add_0d_matrix": (lambda x: x + MATRIX, np.array(0.7)),
    "sub_col_row": (lambda x: x - ROW, randn(3, 1)),
    "sub_row_col": (lambda x: F.sub(COLUMN, x), randn(1, 4)),
    "sub_scalar_left": (lambda x: 1.5 - x, randn(3, 4)),
    "rsub": (lambda x: F.rsub(x, MATRIX), randn(1, 4)),
    "mul_col_row": (lambda x: x * ROW, randn(3, 1)),
    "mul_row_col": (lambda x: F.mul(COLUMN, x), randn(1, 4)),
    "mul_self": (lambda x: x * x, randn(3, 4)),
    "mul_0d_matrix": (lambda x: F.mul(MATRIX, x), np.array(-0.4)),
    "div_col_row": (lambda x: x / (ROW * ROW + 1.0), randn(3, 1)),
    "div_denominator": (lambda x: F.div(COLUMN, x), np.abs(randn(1, 4)) + 0.5),
    "div_scalar": (lambda x: x / 3.0, randn(3, 4)),
    "rdiv_scalar": (lambda x: 2.0 / x, np.abs(randn(3, 4)) + 0.5),
    "rdiv": (lambda x: F.rdiv(x, MATRIX), np.abs(randn(3, 4)) + 0.5),
    "neg": (lambda x: -x, randn(3, 4)),
    "pow3": (lambda x: x**3, randn(3, 4)),
    "pow_half": (lambda x: x**0.5, np.abs(randn(2, 3)) + 0.5),
    "pow_negative": (lambda x: F.pow(x, -2), np.abs(randn(2, 3)) + 0.5),
    "square": (F.square, randn(3, 4)),
    "sin": (F.sin, randn(3, 4)),
    "cos": (F.cos, randn(3, 4)),
    "tanh": (F.tanh, randn(3, 4)),
    "exp": (F.exp, randn(3, 4)),
    "log": (F.log, np.abs(randn(3, 4)) + 0.5),
    "sqrt": (F.sqrt, np.abs(randn(3, 4)) + 0.5),
    "0d": (lambda x: F.sin(x) * x, np.array(0.3)),
}

WITH_ARRAY_CONSTANTS = {
    name
    for name in CASES
    if any(part in name for part in ("col", "row", "matrix", "denominator"))
    or name in ("rsub", "rdiv")
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradients(xp, name):
    f, x = CASES[name]
    check_function(xp, f, x)


@pytest.mark.parametrize("name", list(CASES))
def test_dtypes(xp, name):
    f, x = CASES[name]
    if name in WITH_ARRAY_CONSTANTS:
        pytest.skip("float64 constants promote; the constant-free cases cover dtypes")
    for dtype in dtypes_for(xp):
        check_dtype(xp, f, x, dtype)


@pytest.mark.parametrize("name", list(CASES))
def test_read_only_numpy_input(name):
    f, x = CASES[name]
    check_read_only(f, x)


def test_forward_values(xp):
    a, b = randn(3, 1), randn(1, 4)
    va, vb = Variable(xp.asarray(a)), Variable(xp.asarray(b))
    np.testing.assert_allclose(host(va + vb), a + b)
    np.testing.assert_allclose(host(va - vb), a - b)
    np.testing.assert_allclose(host(va * vb), a * b)
    np.testing.assert_allclose(host(va / vb), a / b)
    np.testing.assert_allclose(host(-va), -a)
    np.testing.assert_allclose(host(va**3), a**3)
    np.testing.assert_allclose(host(2.0 - va), 2.0 - a)
    np.testing.assert_allclose(host(2.0 / vb), 2.0 / b)
    np.testing.assert_allclose(host(F.add(xp.asarray(a), vb)), a + b)
    np.testing.assert_allclose(host(F.sin(va)), np.sin(a))
    np.testing.assert_allclose(host(F.cos(va)), np.cos(a))
    np.testing.assert_allclose(host(F.tanh(va)), np.tanh(a))
    np.testing.assert_allclose(host(F.exp(va)), np.exp(a))
    np.testing.assert_allclose(host(F.log(F.exp(va))), a)
    np.testing.assert_allclose(host(F.sqrt(va * va)), np.abs(a))


def _nth_derivatives(f, x, n):
    """[f'(x), f''(x), ...] by repeated backward(create_graph=True) (the book's step 33-35)."""
    y = f(x)
    x.cleargrad()
    y.backward(create_graph=True)
    derivatives = []
    for _ in range(n):
        gx = x.grad
        derivatives.append(host(gx))
        x.cleargrad()
        gx.backward(create_graph=True)
    return derivatives


def test_nth_derivatives_of_sin(xp):
    x0 = np.linspace(-3.0, 3.0, 7)
    x = Variable(xp.asarray(x0))
    derivatives = _nth_derivatives(F.sin, x, 6)
    cycle = [np.cos, lambda t: -np.sin(t), lambda t: -np.cos(t), np.sin]
    for k, got in enumerate(derivatives):
        np.testing.assert_allclose(got, cycle[k % 4](x0), atol=1e-12)


def test_tanh_higher_derivatives(xp):
    x0 = np.array([-1.2, 0.0, 0.5, 1.0])
    x = Variable(xp.asarray(x0))
    d1, d2, d3 = _nth_derivatives(F.tanh, x, 3)
    t = np.tanh(x0)
    np.testing.assert_allclose(d1, 1 - t**2, atol=1e-12)
    np.testing.assert_allclose(d2, -2 * t * (1 - t**2), atol=1e-12)
    np.testing.assert_allclose(d3, (1 - t**2) * (6 * t**2 - 2), atol=1e-12)


def test_newtons_method_converges(xp):
    # step 33: y = x^4 - 2x^2 from x = 2 reaches the minimum at 1 in a few iterations
    x = Variable(xp.asarray(2.0))
    for _ in range(10):
        y = x**4 - 2 * x**2
        x.cleargrad()
        y.backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        gx.backward()
        gx2 = x.grad
        x.data = x.data - gx.data / gx2.data
    assert math.isclose(float(host(x)), 1.0, rel_tol=1e-12)


def test_operators_keep_float32(xp):
    x = Variable(xp.asarray([1.0, 2.0], dtype=xp.float32))
    for y in (x + 1.0, 1.0 - x, x * 2.5, 3.0 / x, x**2.0, -x, x / 2):
        assert y.dtype == xp.float32


def test_numpy_array_on_the_left_of_an_operator():
    # NumPy defers to Variable's reflected operators (array-api-strict raises instead: use F.add)
    a, b = randn(3, 1), randn(1, 4)
    vb = Variable(b)
    np.testing.assert_allclose(host(a + vb), a + b)
    np.testing.assert_allclose(host(a - vb), a - b)
    np.testing.assert_allclose(host(a * vb), a * b)
    np.testing.assert_allclose(host(a / vb), a / b)


def _first_two_derivatives(f, x0, xp):
    x = Variable(xp.asarray(x0))
    y = f(x)
    F.sum(y).backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    F.sum(gx).backward()
    # a first derivative that does not depend on x leaves no second one (0)
    d2 = np.zeros_like(x0) if x.grad is None else host(x.grad)
    return host(y), host(gx), d2


# Values from PyTorch 2.x in float64 (torch.autograd.grad twice, create_graph=True); the
# edge points are x = 0, where the textbook rule c * x ** (c - 1) gives 0 * inf
@pytest.mark.parametrize(
    ("c", "x0", "expected"),
    [
        (0, [0.0, 2.0, -1.5], ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])),
        (1, [0.0, 2.0, -1.5], ([0.0, 2.0, -1.5], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])),
        (2, [0.0, 2.0, -1.5], ([0.0, 4.0, 2.25], [0.0, 4.0, -3.0], [2.0, 2.0, 2.0])),
        (3, [0.0, 2.0], ([0.0, 8.0], [0.0, 12.0], [0.0, 12.0])),
        (0.5, [0.0, 4.0], ([0.0, 2.0], [math.inf, 0.25], [-math.inf, -1 / 32])),
        (1.5, [0.0, 4.0], ([0.0, 8.0], [0.0, 3.0], [math.inf, 0.375])),
        (-1, [0.0, 2.0], ([math.inf, 0.5], [-math.inf, -0.25], [math.inf, 0.25])),
    ],
)
@pytest.mark.filterwarnings("ignore:.*(divide by zero|invalid value):RuntimeWarning")
def test_pow_at_its_edge_points_matches_pytorch(xp, c, x0, expected):
    got = _first_two_derivatives(lambda v: v**c, np.array(x0), xp)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12)


@pytest.mark.filterwarnings("ignore:.*(divide by zero|invalid value):RuntimeWarning")
def test_rpow_of_base_zero_matches_pytorch(xp):
    # torch.pow(0., x): 1, 0, inf; gradient 0 where x >= 0 and -inf where x < 0 (log(0) * inf)
    x0 = np.array([0.0, 1.0, -1.0])
    x = Variable(xp.asarray(x0))
    y = 0.0**x
    F.sum(y).backward()
    np.testing.assert_array_equal(host(y), [1.0, 0.0, math.inf])
    np.testing.assert_array_equal(host(x.grad), [0.0, 0.0, -math.inf])
    with pytest.raises(ValueError, match=r"base must be positive or zero to differentiate, not -2"):
        (-2.0) ** x


@pytest.mark.filterwarnings("ignore:.*(divide by zero|invalid value):RuntimeWarning")
def test_sqrt_at_zero_matches_pytorch(xp):
    # torch: sqrt'(0) = inf, sqrt''(0) = -inf
    y, d1, d2 = _first_two_derivatives(F.sqrt, np.array([0.0, 4.0]), xp)
    np.testing.assert_allclose(y, [0.0, 2.0])
    np.testing.assert_allclose(d1, [math.inf, 0.25])
    np.testing.assert_allclose(d2, [-math.inf, -1 / 32])
