"""abs, sign, maximum, minimum, where, clip: forward, gradients, double backward, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from fn_checks import (
    away_from,
    check_dtype,
    check_function,
    check_read_only,
    dtypes_for,
    host,
    randn,
)

import agrad.functions as F
from agrad import Variable

COLUMN = np.array([[-1.5], [0.3], [1.2]])  # (3, 1)
ROW = np.array([[-1.0, 0.0, 0.7, 2.0]])  # (1, 4); no entry within 0.2 of a COLUMN entry
MATRIX = np.array([[-1.3, 0.4, 2.2, -0.6], [0.9, -2.1, 0.2, 1.6], [-0.3, 1.1, -1.7, 0.5]])
MASK = np.array(
    [[True, False, True, False], [False, True, True, False], [True, True, False, False]]
)

# name -> (function of one Variable, host input, smooth enough for a double-backward check)
CASES = {
    "abs": (F.abs, away_from(randn(3, 4), (0.0,)), True),
    "sign": (F.sign, away_from(randn(3, 4), (0.0,)), True),
    "maximum_rhs_col": (lambda x: F.maximum(x, ROW), COLUMN, True),
    "maximum_lhs_row": (lambda x: F.maximum(COLUMN, x), ROW, True),
    "maximum_scalar": (lambda x: F.maximum(x, 0.0), MATRIX, True),
    "maximum_scalar_left": (lambda x: F.maximum(0.0, x), MATRIX, True),
    "maximum_0d": (lambda x: F.maximum(MATRIX, x), np.array(0.1), True),
    "minimum_rhs_col": (lambda x: F.minimum(x, ROW), COLUMN, True),
    "minimum_lhs_row": (lambda x: F.minimum(COLUMN, x), ROW, True),
    "minimum_scalar": (lambda x: F.minimum(x, 0.0), MATRIX, True),
    "where_first": (lambda x: F.where(MASK, x, -MATRIX), MATRIX, True),
    "where_second": (lambda x: F.where(MASK, MATRIX, x), MATRIX, True),
    "where_broadcast": (lambda x: F.where(MASK, x, 0.0), COLUMN, True),
    "where_broadcast_second": (lambda x: F.where(MASK, ROW, x), COLUMN, True),
    "clip": (lambda x: F.clip(x, -0.5, 1.0), away_from(randn(3, 4), (-0.5, 1.0)), True),
    "clip_low_only": (lambda x: F.clip(x, -0.5, None), away_from(randn(2, 3), (-0.5,)), True),
}


@pytest.fixture(autouse=True)
def _constants_on_backend(request, monkeypatch):
    """Swap the module's host constants for arrays of the test's backend."""
    if "xp" not in request.fixturenames:
        return
    xp = request.getfixturevalue("xp")
    for name in ("COLUMN", "ROW", "MATRIX", "MASK"):
        monkeypatch.setitem(globals(), name, xp.asarray(globals()[name]))


@pytest.mark.parametrize("name", list(CASES))
def test_gradients(xp, name):
    f, x, double = CASES[name]
    check_function(xp, f, x, double=double)


@pytest.mark.parametrize("name", list(CASES))
def test_dtypes(xp, name):
    f, x, _ = CASES[name]
    for dtype in dtypes_for(xp):
        if name.startswith(("maximum", "minimum", "where")) and "scalar" not in name:
            continue  # float64 constants would promote; covered by test_dtype_with_constants
        check_dtype(xp, f, x, dtype)


def test_dtype_with_constants(xp):
    for dtype in (xp.float32, xp.float64):
        a = Variable(xp.asarray(COLUMN, dtype=dtype))
        b = Variable(xp.asarray(ROW, dtype=dtype))
        mask = xp.asarray(MASK)
        for y in (F.maximum(a, b), F.minimum(a, b), F.where(mask, a, b)):
            assert y.dtype == dtype
            a.cleargrad()
            b.cleargrad()
            F.sum(y).backward()
            assert a.grad.dtype == dtype and b.grad.dtype == dtype


@pytest.mark.parametrize("name", list(CASES))
def test_read_only_numpy_input(name):
    f, x, _ = CASES[name]
    check_read_only(f, x)


def test_forward_values(xp):
    x = randn(3, 4)
    v = Variable(xp.asarray(x))
    np.testing.assert_allclose(host(F.abs(v)), np.abs(x))
    np.testing.assert_allclose(host(F.sign(v)), np.sign(x))
    np.testing.assert_allclose(host(F.maximum(v, 0.0)), np.maximum(x, 0.0))
    np.testing.assert_allclose(host(F.minimum(v, 0.0)), np.minimum(x, 0.0))
    np.testing.assert_allclose(host(F.clip(v, -0.5, 0.5)), np.clip(x, -0.5, 0.5))
    col, row = Variable(xp.asarray(np.asarray(COLUMN))), xp.asarray(np.asarray(ROW))
    np.testing.assert_allclose(host(F.maximum(col, row)), np.maximum(host(COLUMN), host(ROW)))
    mask = x > 0
    np.testing.assert_allclose(host(F.where(xp.asarray(mask), v, 0.0)), np.where(mask, x, 0.0))
    np.testing.assert_allclose(
        host(F.where(Variable(xp.asarray(mask)), 1.0, v)), np.where(mask, 1.0, x)
    )


def test_ties_share_the_gradient(xp):
    x = Variable(xp.asarray([1.0, 2.0, 3.0]))
    y = Variable(xp.asarray([1.0, 0.0, 5.0]))
    F.sum(F.maximum(x, y)).backward()
    np.testing.assert_allclose(host(x.grad), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(host(y.grad), [0.5, 0.0, 1.0])


def test_clip_gradient_mask_includes_bounds(xp):
    x = Variable(xp.asarray([-2.0, -1.0, 0.0, 1.0, 2.0]))
    F.sum(F.clip(x, -1.0, 1.0)).backward()
    np.testing.assert_array_equal(host(x.grad), [0.0, 1.0, 1.0, 1.0, 0.0])
