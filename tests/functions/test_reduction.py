"""sum, average/mean, max, min over every axis/keepdims variant, including negative axes."""

from __future__ import annotations

import numpy as np
import pytest
from fn_checks import check_dtype, check_function, check_read_only, dtypes_for, host, randn

import agrad.functions as F
from agrad import Variable
from agrad.utils import max_backward_shape, reshape_sum_backward

AXES = [None, 0, 1, -1, -2, (0, 2), (-1, 0)]
SHAPE = (2, 3, 4)
REDUCTIONS = {
    "sum": (F.sum, np.sum),
    "average": (F.average, np.mean),
    "mean": (F.mean, np.mean),
    "max": (F.max, np.max),
    "min": (F.min, np.min),
}
# distinct values, so that max/min have no ties and finite differences see one smooth branch
DISTINCT = np.random.default_rng(1).permutation(24).reshape(SHAPE) * 0.1 - 1.2

VARIANTS = [
    (name, axis, keepdims) for name in REDUCTIONS for axis in AXES for keepdims in (False, True)
]


def _id(variant):
    name, axis, keepdims = variant
    return f"{name}-axis={axis}-keepdims={keepdims}"


@pytest.mark.parametrize("variant", VARIANTS, ids=[_id(v) for v in VARIANTS])
def test_forward_and_gradients(xp, variant):
    name, axis, keepdims = variant
    f, reference = REDUCTIONS[name]
    y = f(Variable(xp.asarray(DISTINCT)), axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(host(y), reference(DISTINCT, axis=axis, keepdims=keepdims))
    check_function(xp, lambda v: f(v, axis, keepdims), DISTINCT)


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_methods_and_dtypes(xp, name):
    f, reference = REDUCTIONS[name]
    method = getattr(Variable, name, None)
    if method is not None:
        v = Variable(xp.asarray(DISTINCT))
        np.testing.assert_allclose(host(method(v, axis=1)), reference(DISTINCT, axis=1))
        np.testing.assert_allclose(host(method(v)), reference(DISTINCT))
    for dtype in dtypes_for(xp):
        check_dtype(xp, lambda v: f(v, axis=-1), DISTINCT, dtype)


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_read_only_numpy_input(name):
    check_read_only(lambda v: REDUCTIONS[name][0](v, axis=0), DISTINCT)


@pytest.mark.parametrize("extreme", [F.max, F.min])
def test_ties_all_get_the_gradient(xp, extreme):
    x = np.array([[1.0, 3.0, 3.0], [-2.0, -2.0, 0.5]])
    value = 3.0 if extreme is F.max else -2.0
    v = Variable(xp.asarray(x))
    extreme(v).backward()
    np.testing.assert_array_equal(host(v.grad), (x == value).astype(float))
    v.cleargrad()
    F.sum(extreme(v, axis=1) * xp.asarray([2.0, 5.0])).backward()
    row_extreme = x.max(axis=1) if extreme is F.max else x.min(axis=1)
    want = (x == row_extreme[:, None]) * np.array([[2.0], [5.0]])
    np.testing.assert_array_equal(host(v.grad), want)


def test_sum_of_scalar_and_matrix(xp):
    matrix, column = xp.asarray(randn(3, 4)), xp.asarray(randn(3, 1))
    check_function(xp, lambda v: F.sum(v * matrix), np.array(0.3))
    check_function(xp, lambda v: F.mean(v + column, axis=0), randn(1, 4))


def test_utils_helpers(xp):
    assert max_backward_shape(np.zeros(SHAPE), 1) == [2, 1, 4]
    assert max_backward_shape(np.zeros(SHAPE), None) == [1, 1, 1]
    assert max_backward_shape(np.zeros(SHAPE), (0, -1)) == [1, 3, 1]
    gy = xp.asarray(randn(2, 4))
    assert tuple(reshape_sum_backward(gy, SHAPE, 1, False).shape) == (2, 1, 4)
    assert tuple(reshape_sum_backward(gy, SHAPE, 1, True).shape) == (2, 4)


@pytest.mark.parametrize("name", list(REDUCTIONS))
@pytest.mark.parametrize("axis", [3, -4, (0, 3), (0, -5)])
def test_out_of_range_axis_is_named(xp, name, axis):
    f = REDUCTIONS[name][0]
    with pytest.raises(F.AxisError, match=r"axis=-?\d+ is out of range .* 3 dimensions"):
        f(Variable(xp.asarray(DISTINCT)), axis=axis)


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_the_same_axis_twice_is_named(xp, name):
    f = REDUCTIONS[name][0]
    with pytest.raises(ValueError, match=r"axis=\(0, -3\) names the same axis twice"):
        f(Variable(xp.asarray(DISTINCT)), axis=(0, -3))


@pytest.mark.parametrize("name", ["mean", "average"])
def test_mean_of_an_empty_array_is_nan_like_numpy(xp, name):
    """It used to raise ZeroDivisionError."""
    f = REDUCTIONS[name][0]
    empty = Variable(xp.zeros((0, 3)))
    with pytest.warns(RuntimeWarning, match="empty"):
        y = f(empty)
    assert y.shape == () and np.isnan(host(y))
    with pytest.warns(RuntimeWarning, match="empty"):
        column = f(empty, axis=0)
    assert column.shape == (3,) and np.isnan(host(column)).all()
    rows = f(empty, axis=1)  # no output elements: nothing to warn about, as NumPy
    assert rows.shape == (0,)
    F.sum(rows).backward()
    assert empty.grad.shape == (0, 3)
