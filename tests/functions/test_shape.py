"""reshape, transpose, broadcast_to, sum_to, expand_dims, flatten, squeeze, concat, stack, split."""

from __future__ import annotations

import numpy as np
import pytest
from fn_checks import check_dtype, check_function, check_read_only, dtypes_for, host, randn

import agrad.functions as F
from agrad import Variable

OTHER = randn(2, 2, 4)


@pytest.fixture(autouse=True)
def _constants_on_backend(request, monkeypatch):
    """Swap the module's host constants for arrays of the test's backend."""
    if "xp" not in request.fixturenames:
        return
    xp = request.getfixturevalue("xp")
    monkeypatch.setitem(globals(), "OTHER", xp.asarray(globals()["OTHER"]))


CASES = {
    "reshape": (lambda x: F.reshape(x, (4, 6)), randn(2, 3, 4)),
    "reshape_method_varargs": (lambda x: x.reshape(6, 4), randn(2, 3, 4)),
    "reshape_method_tuple": (lambda x: x.reshape((3, 8)), randn(2, 3, 4)),
    "transpose": (F.transpose, randn(2, 3, 4)),
    "transpose_axes": (lambda x: F.transpose(x, (1, 2, 0)), randn(2, 3, 4)),
    "transpose_negative_axes": (lambda x: F.transpose(x, (-1, 0, -2)), randn(2, 3, 4)),
    "transpose_method": (lambda x: x.transpose(2, 0, 1), randn(2, 3, 4)),
    "T": (lambda x: x.T, randn(3, 4)),
    "broadcast_to": (lambda x: F.broadcast_to(x, (2, 3, 4)), randn(3, 1)),
    "broadcast_to_scalar": (lambda x: F.broadcast_to(x, (3, 2)), np.array(0.5)),
    "sum_to": (lambda x: F.sum_to(x, (3, 1)), randn(2, 3, 4)),
    "sum_to_scalar": (lambda x: F.sum_to(x, ()), randn(2, 3)),
    "expand_dims_0": (lambda x: F.expand_dims(x, 0), randn(3, 4)),
    "expand_dims_1": (lambda x: F.expand_dims(x, 1), randn(3, 4)),
    "expand_dims_negative": (lambda x: F.expand_dims(x, -1), randn(3, 4)),
    "flatten": (F.flatten, randn(2, 3, 4)),
    "squeeze": (F.squeeze, randn(3, 1, 4, 1)),
    "squeeze_axis": (lambda x: F.squeeze(x, -1), randn(3, 1, 4, 1)),
    "concat_first": (lambda x: F.concat([x, OTHER], axis=1), randn(2, 3, 4)),
    "concat_second": (lambda x: F.concatenate((OTHER, x, OTHER), axis=-2), randn(2, 1, 4)),
    "concat_axis0": (lambda x: F.concat([x, x]), randn(2, 3)),
    "stack": (lambda x: F.stack([x, x * 2.0]), randn(3, 4)),
    "stack_last": (lambda x: F.stack([x, F.sin(x), x], axis=-1), randn(3, 4)),
    "split_sections": (lambda x: F.split(x, 3, axis=1), randn(2, 6)),
    "split_indices": (lambda x: F.split(x, [1, 3], axis=-1), randn(2, 5)),
    "split_one_output_used": (lambda x: F.split(x, 2)[1], randn(4, 3)),
    "split_middle_output_unused": (
        lambda x: (lambda parts: parts[0] * parts[2])(F.split(x, 3, axis=0)),
        randn(3, 4),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradients(xp, name):
    f, x = CASES[name]
    check_function(xp, f, x)


@pytest.mark.parametrize("name", list(CASES))
def test_dtypes(xp, name):
    f, x = CASES[name]
    if name.startswith("concat") and name != "concat_axis0":
        pytest.skip("float64 constant; concat_axis0 covers dtypes")
    for dtype in dtypes_for(xp):
        check_dtype(xp, f, x, dtype)


@pytest.mark.parametrize("name", list(CASES))
def test_read_only_numpy_input(name):
    f, x = CASES[name]
    check_read_only(f, x)


def test_forward_values(xp):
    a = randn(2, 3, 4)
    v = Variable(xp.asarray(a))
    np.testing.assert_array_equal(host(F.reshape(v, (4, 6))), a.reshape(4, 6))
    np.testing.assert_array_equal(host(F.transpose(v)), a.T)
    np.testing.assert_array_equal(host(v.T), a.T)
    np.testing.assert_array_equal(host(F.transpose(v, (1, 0, 2))), a.transpose(1, 0, 2))
    np.testing.assert_array_equal(host(F.expand_dims(v, 1)), np.expand_dims(a, 1))
    np.testing.assert_array_equal(host(F.expand_dims(v, -1)), np.expand_dims(a, -1))
    np.testing.assert_array_equal(host(F.flatten(v)), a.reshape(2, -1))
    np.testing.assert_array_equal(host(F.squeeze(F.expand_dims(v, 0))), a)
    np.testing.assert_allclose(host(F.sum_to(v, (3, 1))), a.sum(axis=(0, 2))[:, None])
    np.testing.assert_array_equal(
        host(F.broadcast_to(Variable(xp.asarray(a[:1])), (2, 3, 4))),
        np.broadcast_to(a[:1], (2, 3, 4)),
    )
    b = randn(2, 2, 4)
    np.testing.assert_array_equal(
        host(F.concat([v, xp.asarray(b)], axis=1)), np.concatenate([a, b], axis=1)
    )
    np.testing.assert_array_equal(host(F.stack([v, v], axis=2)), np.stack([a, a], axis=2))
    for got, want in zip(F.split(v, [1, 3], axis=2), np.split(a, [1, 3], axis=2)):
        np.testing.assert_array_equal(host(got), want)
    for got, want in zip(F.split(v, 3, axis=1), np.split(a, 3, axis=1)):
        np.testing.assert_array_equal(host(got), want)


def test_reshape_to_same_shape_is_the_input(xp):
    v = Variable(xp.asarray(randn(2, 3)))
    assert F.reshape(v, (2, 3)) is v
    assert F.broadcast_to(v, (2, 3)) is v
    assert F.sum_to(v, (2, 3)) is v


def test_split_returns_a_list_and_checks_sections(xp):
    v = Variable(xp.asarray(randn(4, 3)))
    parts = F.split(v, 1)
    assert isinstance(parts, list) and len(parts) == 1
    with pytest.raises(ValueError, match="equal sections"):
        F.split(v, 3)
    with pytest.raises(ValueError, match="non-decreasing"):
        F.split(v, [3, 1])


def test_squeeze_rejects_non_unit_axis(xp):
    with pytest.raises(ValueError, match="size 1"):
        F.squeeze(Variable(xp.asarray(randn(3, 2))), 1)


# an out-of-range axis used to be wrapped by `%` (expand_dims(x, 5) on 2-D gave axis 2)
BAD_AXES = {
    "expand_dims": (lambda v: F.expand_dims(v, 5), r"expand_dims: axis=5 .* -3 <= axis < 3"),
    "expand_dims_negative": (lambda v: F.expand_dims(v, -4), r"axis=-4 .* -3 <= axis < 3"),
    "squeeze": (lambda v: F.squeeze(F.reshape(v, (2, 1, 3)), 5), r"squeeze: axis=5 .* 3 dim"),
    "squeeze_tuple": (lambda v: F.squeeze(F.reshape(v, (2, 3, 1)), (2, -4)), r"axis=-4"),
    "transpose": (lambda v: F.transpose(v, (0, 5)), r"transpose: axes=5 .* -2 <= axes < 2"),
    "concat": (lambda v: F.concat([v, v], axis=2), r"concat: axis=2 .* -2 <= axis < 2"),
    "stack": (lambda v: F.stack([v, v], axis=3), r"stack: axis=3 .* -3 <= axis < 3"),
    "split": (lambda v: F.split(v, 1, axis=5), r"split: axis=5 .* -2 <= axis < 2"),
}


@pytest.mark.parametrize("name", list(BAD_AXES))
def test_out_of_range_axes_are_named(xp, name):
    f, message = BAD_AXES[name]
    v = Variable(xp.asarray(randn(2, 3)))
    with pytest.raises(F.AxisError, match=message):
        f(v)


def test_axis_error_is_a_value_and_an_index_error():
    assert issubclass(F.AxisError, ValueError) and issubclass(F.AxisError, IndexError)


@pytest.mark.parametrize("axes", [(0, 0), (1,), (0, 1, 2), (0, -2)])
def test_transpose_axes_must_be_a_permutation(xp, axes):
    with pytest.raises(ValueError, match=r"transpose: axes="):
        F.transpose(Variable(xp.asarray(randn(2, 3))), axes)


def test_squeeze_the_same_axis_twice(xp):
    with pytest.raises(ValueError, match=r"squeeze: axis=\(1, -2\) names the same axis twice"):
        F.squeeze(Variable(xp.asarray(randn(2, 1, 3))), (1, -2))


@pytest.mark.parametrize("shape", [(3, 2), (6,), (2, 1, 3), (1, 6), (4,)])
def test_sum_to_an_incompatible_shape_raises(xp, shape):
    """(2, 3) -> (3, 2) used to be summed over nothing and silently reshaped."""
    with pytest.raises(ValueError, match=r"sum_to: cannot sum an array of shape \(2, 3\)"):
        F.sum_to(Variable(xp.asarray(randn(2, 3))), shape)


@pytest.mark.parametrize("shape", [(1, 3), (3,), (2, 1), (1, 1), ()])
def test_sum_to_compatible_shapes_still_work(xp, shape):
    a = randn(2, 3)
    y = F.sum_to(Variable(xp.asarray(a)), shape)
    lead = 2 - len(shape)
    want = a.sum(axis=tuple(range(lead))) if lead else a
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and want.shape[i] != 1)
    want = want.sum(axis=axes, keepdims=True) if axes else want
    np.testing.assert_allclose(host(y), want.reshape(shape))


@pytest.mark.parametrize("shape", [(4,), (2, 2), (3, 2, 4)])
def test_broadcast_to_an_incompatible_shape_is_named(xp, shape):
    with pytest.raises(
        ValueError, match=r"broadcast_to: cannot broadcast an array of shape \(2, 3\)"
    ):
        F.broadcast_to(Variable(xp.asarray(randn(2, 3))), shape)


def test_flatten_of_a_0d_input_is_named(xp):
    with pytest.raises(ValueError, match=r"flatten: .* 0-d input"):
        F.flatten(Variable(xp.asarray(1.0)))
