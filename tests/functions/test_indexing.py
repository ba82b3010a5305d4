"""get_item (x[...]) with every index kind, its scatter-add gradient, and embed_id."""

from __future__ import annotations

import numpy as np
import pytest
from fn_checks import check_dtype, check_function, check_read_only, dtypes_for, host, randn

import agrad
import agrad.functions as F
from agrad import Variable


def _int(*values):
    return np.array(values, dtype=np.int64)


# name -> (host index, input shape); arrays in an index move to the test's backend
INDEXES = {
    "int": (1, (3, 4)),
    "negative_int": (-1, (3, 4)),
    "slice": (slice(1, 3), (4, 3)),
    "step_slice": ((slice(None), slice(None, None, 2)), (3, 5)),
    "tuple_int_slice": ((1, slice(0, 2)), (3, 4)),
    "ellipsis": ((Ellipsis, 1), (2, 3, 4)),
    "none": ((None, 0, Ellipsis, slice(1, 3)), (2, 3, 4)),
    "int_array": (_int(0, 2), (3, 4)),
    "repeated_int_array": (_int(0, 1, 1, 1, 2), (3, 4)),
    "negative_int_array": (_int(-1, 0, -1), (3, 4)),
    "2d_int_array": (np.array([[0, 1], [1, 1]]), (3, 2)),
    "int_array_per_axis": ((_int(0, 1, 1), _int(2, 0, 2)), (2, 3)),
    "int_array_after_slice": ((slice(None), _int(3, 1, 3)), (2, 4, 2)),
    "list": ([1, 1, 0], (3, 4)),
    # NumPy's meaning on every backend (issue 22): PyTorch has no negative steps, and PyTorch and
    # Dask take an int among index arrays as a basic index (the array's axis would stay in place)
    "negative_step": (slice(None, None, -1), (3, 4)),
    "negative_step_middle": ((slice(None), slice(3, 0, -2)), (2, 4)),
    "negative_step_with_array": ((_int(1, 0), slice(None, None, -1)), (2, 4)),
    "int_and_array_apart": ((0, slice(0, 3), _int(0, 2, 1, 1)), (2, 4, 3)),
    "array_and_int_apart": ((_int(1, 0, 1), slice(None, None, -2), 1), (2, 4, 3)),
    "int_and_array_adjacent": ((slice(None), 1, _int(2, 0)), (2, 4, 3)),
    "none_int_array_apart": ((None, 1, slice(None), _int(0, 2)), (2, 4, 3)),
    "full_mask": ("mask", (3, 4)),
    "partial_mask": ("row_mask", (3, 4)),
}
# what array-api-strict refuses (the standard has no such index) and agrad cannot rewrite
_STRICT_INTS = "array-api-strict allows integer arrays only with ints (no slices), or alone"
STRICT_UNSUPPORTED = {
    "partial_mask": "array-api-strict allows a boolean mask only as the whole index",
    "int_and_array_apart": _STRICT_INTS,
    "array_and_int_apart": _STRICT_INTS,
    "int_and_array_adjacent": _STRICT_INTS,
    "none_int_array_apart": _STRICT_INTS,
}


def _index(xp, name, x):
    key, _ = INDEXES[name]
    if isinstance(key, str):
        mask = x > 0.0 if key == "mask" else np.array([True, False, True])
        return xp.asarray(mask)
    if isinstance(key, tuple):
        return tuple(xp.asarray(k) if isinstance(k, np.ndarray) else k for k in key)
    return xp.asarray(key) if isinstance(key, np.ndarray) else key


def _host_index(name, x):
    key, _ = INDEXES[name]
    if isinstance(key, str):
        return x > 0.0 if key == "mask" else np.array([True, False, True])
    return key


# what Dask cannot do: index arrays of 2+ dimensions or on several axes ("Don't yet support nd
# fancy indexing"), and masks, whose result has an unknown (nan) shape agrad refuses by name
# (tests/test_backends.py checks that error)
DASK_UNSUPPORTED = {
    "2d_int_array": "Dask indexes with integer arrays of zero or one dimension only",
    "int_array_per_axis": "Dask does not index with integer arrays on several axes at once",
    "full_mask": "Dask cannot know the shape of x[mask] before computing it",
    "partial_mask": "Dask cannot know the shape of x[mask] before computing it",
    "none_int_array_apart": "Dask fails on None before a Dask index array (an AssertionError)",
}


def _skip_unsupported(name):
    backend = agrad.current_backend().name
    if backend == "array_api_strict" and name in STRICT_UNSUPPORTED:
        pytest.skip(STRICT_UNSUPPORTED[name])
    if backend == "dask" and name in DASK_UNSUPPORTED:
        pytest.skip(DASK_UNSUPPORTED[name])


@pytest.mark.parametrize("name", list(INDEXES))
def test_forward_matches_numpy(xp, name):
    _skip_unsupported(name)
    x = randn(*INDEXES[name][1])
    y = Variable(xp.asarray(x))[_index(xp, name, x)]
    np.testing.assert_array_equal(host(y), x[_host_index(name, x)])


@pytest.mark.parametrize("name", list(INDEXES))
def test_gradients(xp, name):
    _skip_unsupported(name)
    x = randn(*INDEXES[name][1])
    key = _index(xp, name, x)
    check_function(xp, lambda v: F.get_item(v, key), x)


@pytest.mark.parametrize("name", list(INDEXES))
def test_gradient_scatters_with_repeats(xp, name):
    _skip_unsupported(name)
    x = randn(*INDEXES[name][1])
    v = Variable(xp.asarray(x))
    y = v[_index(xp, name, x)]
    weights = randn(*y.shape)
    F.sum(y * xp.asarray(weights)).backward()
    want = np.zeros_like(x)
    np.add.at(want, _host_index(name, x), weights)
    np.testing.assert_allclose(host(v.grad), want)


def test_repeated_indices_add_up(xp):
    v = Variable(xp.asarray([1.0, 2.0, 3.0]))
    F.sum(v[xp.asarray([0, 0, 2, 0])]).backward()
    np.testing.assert_array_equal(host(v.grad), [3.0, 0.0, 1.0])


@pytest.mark.parametrize("name", ["slice", "repeated_int_array", "int_array_per_axis"])
def test_dtypes(xp, name):
    _skip_unsupported(name)
    x = randn(*INDEXES[name][1])
    key = _index(xp, name, x)
    for dtype in dtypes_for(xp):
        check_dtype(xp, lambda v: F.get_item(v, key), x, dtype)


@pytest.mark.parametrize("name", list(INDEXES))
def test_read_only_numpy_input(name):
    x = randn(*INDEXES[name][1])
    key = _host_index(name, x)
    check_read_only(lambda v: F.get_item(v, key), x)


def test_host_index_array_on_another_backend(xp):
    # DeZero code indexes with NumPy arrays whatever the backend
    x = randn(3, 4)
    v = Variable(xp.asarray(x))
    y = v[np.array([2, 0])]
    np.testing.assert_array_equal(host(y), x[[2, 0]])


def test_unsupported_index_names_the_rule(xp):
    name = agrad.current_backend().name
    if name != "array_api_strict":
        pytest.skip(f"{name} takes this index; only array-api-strict holds to the standard's rule")
    v = Variable(xp.asarray(randn(3, 4, 2)))
    with pytest.raises(IndexError, match="Array API standard allows"):
        v[xp.asarray([0, 1]), :, xp.asarray([0, 1])]


def test_get_item_grad_is_public_and_differentiable(xp):
    gy = Variable(xp.asarray(randn(2, 4)))
    gx = F.get_item_grad(gy, xp.asarray([1, 1]), (3, 4))
    np.testing.assert_allclose(host(gx)[1], host(gy).sum(axis=0))
    assert isinstance(gx.creator, F.GetItemGrad)
    check_function(xp, lambda g: F.get_item_grad(g, (slice(0, 2),), (3, 4)), randn(2, 4))


EMBED_IDS = np.array([[0, 2, 2], [3, 0, 1]])


@pytest.mark.parametrize("ids", [EMBED_IDS, np.array([1, 1, 3]), np.array(2)])
def test_embed_id(xp, ids):
    if ids.ndim > 1:
        _skip_unsupported("2d_int_array")
    W = randn(4, 3)
    y = F.embed_id(xp.asarray(ids), Variable(xp.asarray(W)))
    np.testing.assert_array_equal(host(y), W[ids])
    assert isinstance(y.creator, F.EmbedID)
    check_function(xp, lambda w: F.embed_id(xp.asarray(ids), w), W)


def test_embed_id_dtypes_and_variable_ids(xp):
    _skip_unsupported("2d_int_array")  # EMBED_IDS is 2-D
    ids = Variable(xp.asarray(EMBED_IDS))
    for dtype in dtypes_for(xp):
        check_dtype(xp, lambda w: F.embed_id(ids, w), randn(4, 2), dtype)


def test_embed_id_read_only():
    check_read_only(lambda w: F.embed_id(EMBED_IDS, w), randn(4, 3))


def test_strict_refuses_ints_among_arrays_and_slices_by_name(xp):
    if agrad.current_backend().name != "array_api_strict":
        pytest.skip("only array-api-strict refuses this index (the standard's rule)")
    v = Variable(xp.asarray(randn(2, 4, 3)))
    with pytest.raises(IndexError, match="Array API standard allows"):
        v[0, 0:3, xp.asarray([0, 2, 1, 1])]


# -- indices out of range (issue 22) --------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        [0, 5],
        np.array([0, 5]),
        np.array([-3]),
        5,
        -3,
        (0, 7),
        (slice(None), [1, 3]),
        (1, np.array([3])),
    ],
    ids=[
        "list",
        "host_array",
        "host_negative",
        "int",
        "negative_int",
        "int_pair",
        "list_axis1",
        "int_and_array",
    ],
)
def test_out_of_range_index_raises_on_every_backend(xp, key):
    v = Variable(xp.asarray(randn(2, 3)))
    with pytest.raises(IndexError, match=r"out of (range|bounds)"):
        v[key]


def test_out_of_range_index_error_names_index_axis_and_size(xp):
    v = Variable(xp.asarray(randn(2, 3)))
    with pytest.raises(
        IndexError, match=r"index 7 is out of (range|bounds) for (axis|dimension) 1"
    ):
        v[0, 7]


def _rows_picked(x, y):
    """For each row of y, the row of x (distinct rows) it equals."""
    return [int(np.flatnonzero((x == row).all(axis=1))[0]) for row in y]


def test_device_index_array_out_of_range_forward_and_gradient_agree(xp):
    # an index array on the device is not read (no host sync): the library either raises or
    # applies its own rule (JAX clamps, Dask wraps), and the gradient goes where the forward read
    x = randn(2, 3)
    v = Variable(xp.asarray(x))
    try:
        y = v[xp.asarray(np.array([0, 5, -1]))]
        F.sum(y).backward()
    except IndexError:
        return
    picked = _rows_picked(x, host(y))
    expected = np.zeros_like(x)
    for row in picked:
        expected[row] += 1.0
    np.testing.assert_array_equal(host(v.grad), expected)


@pytest.mark.parametrize("ids", [[7], [0, -1], np.array([3]), np.array([[0], [-2]]), 9])
def test_embed_id_out_of_range_or_negative_raises(xp, ids):
    W = Variable(xp.asarray(randn(3, 2)))
    with pytest.raises(IndexError, match=r"embed_id: id -?\d+ is out of range for W with 3 rows"):
        F.embed_id(ids, W)


def test_embed_id_refuses_non_integer_ids(xp):
    W = Variable(xp.asarray(randn(3, 2)))
    with pytest.raises(TypeError, match=r"embed_id: ids must be integers, not float"):
        F.embed_id([0.0, 1.0], W)
    with pytest.raises(TypeError, match=r"embed_id: ids must be integers"):
        F.embed_id(xp.asarray([0.5]), W)


def test_embed_id_device_ids_out_of_range_forward_and_gradient_agree(xp):
    W = randn(3, 2)
    v = Variable(xp.asarray(W))
    try:
        y = F.embed_id(xp.asarray(np.array([1, 7])), v)
        F.sum(y).backward()
    except IndexError:
        return
    expected = np.zeros_like(W)
    for row in _rows_picked(W, host(y)):
        expected[row] += 1.0
    np.testing.assert_array_equal(host(v.grad), expected)
