"""``agrad.grad``: gradients of chosen outputs with respect to chosen Variables; no ``.grad``."""

from __future__ import annotations

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.cuda import as_numpy


def host(v):
    return np.asarray(as_numpy(v))


def test_matches_backward_and_leaves_grad_untouched(xp):
    x = Variable(xp.asarray([0.5, -1.0, 2.0]))
    w = Variable(xp.asarray([1.5, 2.0, -0.5]))
    gx, gw = agrad.grad(F.sum(F.sin(x) * w), [x, w])
    assert x.grad is None and w.grad is None
    np.testing.assert_allclose(host(gx), np.cos([0.5, -1.0, 2.0]) * [1.5, 2.0, -0.5])
    np.testing.assert_allclose(host(gw), np.sin([0.5, -1.0, 2.0]))


def test_existing_grad_is_neither_read_nor_changed(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    x.grad = Variable(xp.asarray([100.0, 100.0]))
    (gx,) = agrad.grad(F.sum(x * x), x)
    np.testing.assert_allclose(host(gx), [2.0, 4.0])
    np.testing.assert_allclose(host(x.grad), [100.0, 100.0])


def test_single_input_still_gives_a_tuple(xp):
    x = Variable(xp.asarray(3.0))
    result = agrad.grad(x * x, x)
    assert isinstance(result, tuple) and len(result) == 1
    assert host(result[0]) == 6.0


def test_non_leaf_input_gets_the_gradient_flowing_into_it(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    h = x * 3.0
    y = F.sum(h * h)
    gh, gx = agrad.grad(y, [h, x])
    np.testing.assert_allclose(host(gh), 2 * 3.0 * np.array([1.0, 2.0]))
    np.testing.assert_allclose(host(gx), 18.0 * np.array([1.0, 2.0]))
    assert h.grad is None and x.grad is None


def test_unused_input_gets_none_or_zeros_with_materialize_grads(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    unused = Variable(xp.asarray([[1.0], [2.0]], dtype=xp.float32))
    y = F.sum(x * x)
    assert agrad.grad(y, [x, unused], retain_graph=True)[1] is None
    _, gu = agrad.grad(y, [x, unused], materialize_grads=True)
    assert gu.shape == (2, 1) and gu.dtype == xp.float32
    np.testing.assert_array_equal(host(gu), np.zeros((2, 1)))


def test_output_that_is_the_input(xp):
    if not agrad.current_backend().mutable_arrays:
        pytest.skip("no in-place writes in this library (JAX: immutable arrays, Dask: no buffers)")
    x = Variable(xp.asarray([1.0, 2.0]))
    (gx,) = agrad.grad(x, x)
    np.testing.assert_array_equal(host(gx), [1.0, 1.0])
    gx.data[...] = 5.0  # a writable array of its own, not a read-only broadcast of the seed
    (again,) = agrad.grad(x, x)
    np.testing.assert_array_equal(host(again), [1.0, 1.0])


def test_results_do_not_share_arrays(xp):
    if not agrad.current_backend().mutable_arrays:
        pytest.skip("no in-place writes in this library (JAX: immutable arrays, Dask: no buffers)")
    a = Variable(xp.asarray([1.0, 2.0]))
    b = Variable(xp.asarray([3.0, 4.0]))
    ga, gb = agrad.grad(a + b, [a, b], grad_outputs=xp.asarray([1.0, 1.0]))
    ga.data[...] = 7.0
    np.testing.assert_array_equal(host(gb), [1.0, 1.0])


def test_repeated_input_gets_the_same_gradient_twice(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    g1, g2 = agrad.grad(F.sum(x * x), [x, x])
    np.testing.assert_array_equal(host(g1), host(g2))


def test_several_outputs_add_up_weighted_by_grad_outputs(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    y1, y2 = x * x, F.sin(x)
    (gx,) = agrad.grad(
        [y1, y2], x, grad_outputs=[xp.asarray([1.0, 0.5]), Variable(xp.asarray([2.0, 0.0]))]
    )
    want = 2 * np.array([1.0, 2.0]) * [1.0, 0.5] + np.cos([1.0, 2.0]) * [2.0, 0.0]
    np.testing.assert_allclose(host(gx), want)


def test_create_graph_gives_differentiable_results(xp):
    x = Variable(xp.asarray([0.3, 1.1]))
    (gx,) = agrad.grad(F.sum(x * x * x), x, create_graph=True)
    assert gx.creator is not None
    (ggx,) = agrad.grad(F.sum(gx), x)
    np.testing.assert_allclose(host(ggx), 6 * np.array([0.3, 1.1]))
    assert x.grad is None


def test_create_graph_differentiates_through_grad_outputs(xp):
    # the double-vjp trick: J^T u is linear in u, so d<J^T u, t>/du = J t
    x = Variable(xp.asarray([0.3, 1.1, -0.7]))
    u = Variable(xp.zeros(3))
    (g,) = agrad.grad(F.sin(x) * x, x, grad_outputs=u, create_graph=True)
    (jt,) = agrad.grad(g, u, grad_outputs=xp.asarray([1.0, 2.0, 3.0]))
    x0 = np.array([0.3, 1.1, -0.7])
    np.testing.assert_allclose(host(jt), (np.cos(x0) * x0 + np.sin(x0)) * [1.0, 2.0, 3.0])


def test_second_grad_through_a_released_graph_raises_unless_retained(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    y = F.sum(F.exp(x))
    agrad.grad(y, x, retain_graph=True)
    agrad.grad(y, x)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        agrad.grad(y, x)


def test_integer_leaf_gets_a_floating_gradient(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    i = Variable(xp.asarray([3, 4]))
    gx, gi = agrad.grad(F.sum(x * F.astype(i, x.dtype)), [x, i])
    np.testing.assert_array_equal(host(gx), [3.0, 4.0])
    np.testing.assert_array_equal(host(gi), [1.0, 2.0])
    assert gi.dtype == x.dtype


def test_dtype_is_preserved(xp):
    x = Variable(xp.asarray([1.0, 2.0], dtype=xp.float32))
    (gx,) = agrad.grad(F.sum(x * 2.0), x)
    assert gx.dtype == xp.float32
    (gx,) = agrad.grad(F.sum(x * 2.0), x, create_graph=True)
    assert gx.dtype == xp.float32


def test_grad_does_not_call_post_accumulate_hooks(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    called = []
    handle = x.register_post_accumulate_grad_hook(called.append)
    try:
        agrad.grad(F.sum(x * x), x)
        assert called == []
        F.sum(x * x).backward()
        assert called == [x]
    finally:
        handle.remove()


def test_bad_arguments_are_named(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    y = x * x
    with pytest.raises(TypeError, match="inputs must be Variables"):
        agrad.grad(y, xp.asarray([1.0, 2.0]))
    with pytest.raises(TypeError, match="outputs must be Variables"):
        agrad.grad(3.0, x)
    with pytest.raises(ValueError, match="2 grad_outputs for 1 outputs"):
        agrad.grad(y, x, grad_outputs=[xp.ones(2), xp.ones(2)])
    with pytest.raises(ValueError, match=r"shape \(3,\).*shape \(2,\)"):
        agrad.grad(y, x, grad_outputs=xp.ones(3))


def test_pruned_function_keeps_no_gradient_for_the_next_call(xp):
    # grad(y, w) does not run Sin (it leads to no target); a gradient left on it was once
    # added into the next grad() through it: cos(x) + w instead of cos(x)
    x = Variable(xp.asarray([0.5, 1.0]))
    w = Variable(xp.asarray([2.0, 3.0]))
    h = F.sin(x)
    agrad.grad(F.sum(h * w), w, retain_graph=True)
    (gx,) = agrad.grad(F.sum(h), x)
    np.testing.assert_allclose(host(gx), np.cos([0.5, 1.0]))
