"""Integer Variables are differentiated, as in DeZero's book (steps 37-40; issue 22).

Their gradients come in the backend's default floating dtype: never integer, never truncated,
also on array-api-strict, which refuses ``int * float`` (a vjp that mixes them runs again with
its integer inputs made floating point).
A floating Variable's gradient keeps its dtype (float32 stays float32). Booleans (masks,
comparisons) get no gradient, and optimizers still refuse integer parameters
(tests/nn/test_nn_optimizers.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.cuda import as_numpy


def host(v):
    return np.asarray(as_numpy(v.data if isinstance(v, Variable) else v))


def default_float(xp):
    """The namespace's default floating dtype (the tests make PyTorch's float64)."""
    return xp.asarray(0.5).dtype


def ints(xp, values):
    return Variable(xp.asarray(values, dtype=xp.int64))


def test_step37_sum_of_a_sum_of_integer_variables(xp):
    x = ints(xp, [[1, 2, 3], [4, 5, 6]])
    c = ints(xp, [[10, 20, 30], [40, 50, 60]])
    t = x + c
    y = F.sum(t)
    y.backward(retain_grad=True)
    assert host(y) == 231
    for v in (y, t, x, c):
        assert v.grad.dtype == default_float(xp)
        np.testing.assert_array_equal(host(v.grad), np.ones(v.shape))


def test_step38_reshape_and_transpose(xp):
    x = ints(xp, [[0, 1, 2], [3, 4, 5]])
    F.reshape(x, (6,)).backward()
    np.testing.assert_array_equal(host(x.grad), np.ones((2, 3)))
    x = ints(xp, [[1, 2, 3], [4, 5, 6]])
    F.transpose(x).backward()
    assert x.grad.shape == (2, 3) and x.grad.dtype == default_float(xp)


def test_step39_sum_along_an_axis(xp):
    x = ints(xp, [[1, 2, 3], [4, 5, 6]])
    y = F.sum(x, axis=0)
    y.backward()
    np.testing.assert_array_equal(host(y), [5, 7, 9])
    np.testing.assert_array_equal(host(x.grad), np.ones((2, 3)))


def test_step40_broadcast_add(xp):
    x0 = ints(xp, [1, 2, 3])
    x1 = ints(xp, [10])
    (x0 + x1).backward()
    np.testing.assert_array_equal(host(x1.grad), [3.0])
    assert x1.grad.dtype == default_float(xp)


def test_fractional_gradients_are_not_truncated(xp):
    x = ints(xp, [1, 2, 3])
    # x * 3 is an integer intermediate receiving 0.5 (array-api-strict refuses int * float:
    # the cast makes the product floating point first)
    F.sum(F.astype(x * 3, default_float(xp)) * 0.5).backward()
    np.testing.assert_allclose(host(x.grad), [1.5, 1.5, 1.5])
    x.cleargrad()
    F.sum(x * x).backward()
    np.testing.assert_allclose(host(x.grad), [2.0, 4.0, 6.0])


def test_float32_stays_float32_next_to_integers(xp):
    w = Variable(xp.asarray([0.5, 0.25], dtype=xp.float32))
    x = ints(xp, [3, 4])
    F.sum(w * F.astype(x, xp.float32)).backward()
    assert w.grad.dtype == xp.float32
    assert x.grad.dtype == default_float(xp)
    np.testing.assert_allclose(host(w.grad), [3.0, 4.0])
    np.testing.assert_allclose(host(x.grad), [0.5, 0.25])


def test_grad_and_higher_derivatives_of_integer_variables(xp):
    x = ints(xp, [1, 2])
    (gx,) = agrad.grad(F.sum(x**3), [x], create_graph=True)
    assert gx.dtype == default_float(xp)
    np.testing.assert_allclose(host(gx), [3.0, 12.0])
    (ggx,) = agrad.grad(F.sum(gx), [x])
    np.testing.assert_allclose(host(ggx), [6.0, 12.0])


def test_labels_as_integer_variables_get_no_gradient_from_the_loss(xp):
    logits = Variable(xp.asarray([[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]]))
    labels = ints(xp, [1, 2])
    F.softmax_cross_entropy(logits, labels).backward()
    assert logits.grad is not None
    assert labels.grad is None


def test_booleans_get_no_gradient(xp):
    mask = Variable(xp.asarray([True, False]))
    w = Variable(xp.asarray([1.0, 2.0]))
    F.sum(w * F.astype(mask, w.dtype)).backward()
    assert mask.grad is None
    np.testing.assert_array_equal(host(w.grad), [1.0, 0.0])
    with pytest.raises(TypeError, match="floating-point and integer outputs"):
        mask.backward()


def test_the_default_float_follows_torch_default_dtype():
    torch = pytest.importorskip("torch")
    backend = agrad.get_backend("torch")
    before = torch.get_default_dtype()
    try:
        with agrad.using_backend(backend, fallback=False):
            for default in (torch.float32, torch.float64):
                torch.set_default_dtype(default)
                x = ints(backend.xp, [1, 2])
                F.sum(x * 2).backward()
                assert x.grad.dtype == default
    finally:
        torch.set_default_dtype(before)
