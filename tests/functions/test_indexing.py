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
    "full_mask": ("mask", (3, 4)),
    "partial_mask": ("row_mask", (3, 4)),
}
# what array-api-strict refuses (the standard has no such index) and agrad cannot rewrite
STRICT_UNSUPPORTED = {"partial_mask"}


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
}


def _skip_unsupported(name):
    backend = agrad.current_backend().name
    if backend == "array_api_strict" and name in STRICT_UNSUPPORTED:
        pytest.skip("array-api-strict allows a boolean mask only as the whole index")
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
