"""Optimizers: DeZero's defaults and update rules, hooks, and state that follows the parameter."""

from __future__ import annotations

import math

import numpy as np
import pytest

import agrad
import agrad.functions as F
import agrad.layers as L
from agrad import Parameter, Variable, optimizers
from agrad.cuda import as_numpy

P0 = np.array([1.0, -2.0, 3.0], dtype=np.float32)
G0 = np.array([0.5, 0.25, -1.0], dtype=np.float32)


def _param(xp, value=P0, grad=G0):
    # copies: updates write into param.data in place, as DeZero's do
    p = Parameter(xp.asarray(value.copy()))
    p.grad = Variable(xp.asarray(grad.copy()))
    return p


def test_defaults():
    assert optimizers.SGD().lr == 0.01
    m = optimizers.MomentumSGD()
    assert (m.lr, m.momentum) == (0.01, 0.9)
    a = optimizers.AdaGrad()
    assert (a.lr, a.eps) == (0.001, 1e-8)
    d = optimizers.AdaDelta()
    assert (d.rho, d.eps) == (0.95, 1e-6)
    adam = optimizers.Adam()
    assert (adam.alpha, adam.beta1, adam.beta2, adam.eps, adam.t) == (0.001, 0.9, 0.999, 1e-8, 0)
    model = L.Linear(2)
    assert optimizers.SGD().setup(model).target is model


def test_sgd_and_momentum_steps(xp):
    p = _param(xp)
    optimizers.SGD(0.1).setup([p]).update()
    np.testing.assert_allclose(as_numpy(p), P0 - 0.1 * G0, rtol=1e-6)
    assert p.dtype == xp.float32

    p = _param(xp)
    opt = optimizers.MomentumSGD(0.1, 0.5).setup([p])
    opt.update()
    opt.update()
    v1 = -0.1 * G0
    v2 = 0.5 * v1 - 0.1 * G0
    np.testing.assert_allclose(as_numpy(p), P0 + v1 + v2, rtol=1e-6)


def test_adagrad_adadelta_adam_steps(xp):
    p = _param(xp)
    optimizers.AdaGrad(0.1).setup([p]).update()
    np.testing.assert_allclose(as_numpy(p), P0 - 0.1 * G0 / (np.abs(G0) + 1e-8), rtol=1e-5)

    p = _param(xp)
    optimizers.AdaDelta().setup([p]).update()
    msg = 0.05 * G0 * G0
    dx = np.sqrt(1e-6 / (msg + 1e-6)) * G0
    np.testing.assert_allclose(as_numpy(p), P0 - dx, rtol=1e-5)

    p = _param(xp)
    adam = optimizers.Adam(alpha=0.01).setup([p])
    adam.update()
    adam.update()
    assert adam.t == 2
    assert adam.lr == pytest.approx(0.01 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2))
    m = v = np.zeros(3)
    value = P0.astype(np.float64)
    for t in (1, 2):
        m = m + 0.1 * (G0 - m)
        v = v + 0.001 * (G0 * G0 - v)
        lr = 0.01 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        value = value - lr * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(as_numpy(p), value, rtol=1e-5)
    assert p.dtype == xp.float32


def test_parameters_without_gradients_are_left_alone(xp):
    a, b = _param(xp), _param(xp)
    b.grad = None
    optimizers.Adam().setup([a, b]).update()
    np.testing.assert_array_equal(as_numpy(b), P0)


def test_weight_decay_and_clip_grad(xp):
    p = _param(xp)
    opt = optimizers.SGD(1.0).setup([p])
    opt.add_hook(optimizers.WeightDecay(0.1))
    opt.update()
    np.testing.assert_allclose(as_numpy(p), P0 - (G0 + 0.1 * P0), rtol=1e-6)

    p, q = _param(xp, grad=G0 * 10), _param(xp, grad=G0 * 10)
    opt = optimizers.SGD(1.0).setup([p, q])
    opt.add_hook(optimizers.ClipGrad(1.0))
    opt.update()
    clipped = as_numpy(p.grad)
    total = math.sqrt(2 * float(np.sum((G0 * 10) ** 2)))
    np.testing.assert_allclose(clipped, G0 * 10 / (total + 1e-6), rtol=1e-5)
    assert np.sqrt(2 * np.sum(clipped**2)) == pytest.approx(1.0, rel=1e-4)

    small = _param(xp)
    opt = optimizers.SGD(1.0).setup([small])
    opt.add_hook(optimizers.ClipGrad(100.0))
    opt.update()
    np.testing.assert_allclose(as_numpy(small.grad), G0)  # under the limit: unchanged


def test_hooks_do_not_write_into_shared_gradient_arrays(xp):
    # x + y hands the same gradient array to both leaves
    x, y = Parameter(xp.asarray([1.0, 2.0])), Parameter(xp.asarray([3.0, 4.0]))
    F.sum(x + y).backward()
    opt = optimizers.SGD(1.0).setup([x, y])
    opt.add_hook(optimizers.WeightDecay(1.0))
    opt.update()
    np.testing.assert_allclose(as_numpy(x), [1.0 - 2.0, 2.0 - 3.0])
    np.testing.assert_allclose(as_numpy(y), [3.0 - 4.0, 4.0 - 5.0])


def test_freeze_param_actually_freezes(xp):
    model = agrad.models.MLP((3, 2))
    x = xp.ones((4, 2), dtype=xp.float32)
    F.sum(model(x)).backward()
    frozen_before = as_numpy(model.l0.W).copy()
    other_before = as_numpy(model.l1.W).copy()
    opt = optimizers.MomentumSGD(0.5).setup(model)
    opt.add_hook(optimizers.FreezeParam(model.l0))
    opt.update()  # DeZero raises AttributeError here
    np.testing.assert_array_equal(as_numpy(model.l0.W), frozen_before)
    assert not np.allclose(as_numpy(model.l1.W), other_before)
    assert model.l0.W not in opt.vs


def test_state_follows_the_parameter_to_another_backend(xp):
    here = agrad.current_backend().name
    other = "array_api_strict" if here != "array_api_strict" else "numpy"
    if not agrad.get_backend(other).available:
        pytest.skip(f"{other} not usable")
    p = _param(xp)
    opt = optimizers.Adam(alpha=0.01).setup([p])
    opt.update()
    assert opt.ms[p].__class__ is p.data.__class__
    p.to(other)
    p.grad = Variable(agrad.get_backend(other).asarray(G0))
    opt.update()  # DeZero would mix the old NumPy state with the moved parameter
    assert agrad.backends.backend_of(opt.ms[p]).name == other
    assert agrad.backends.backend_of(opt.vs[p]).name == other
    assert p.backend.name == other


def test_updates_write_in_place_and_fall_back_for_read_only_arrays(xp):
    p = _param(xp)
    data = p.data
    optimizers.SGD(0.1).setup([p]).update()
    backend = agrad.current_backend()
    # in place where the library has in-place operators and the array allows writes (the
    # read-only NumPy variant's arrays do not; JAX's never do)
    in_place = backend.mutable_arrays and backend.is_writable(data)
    assert (p.data is data) == in_place
    np.testing.assert_allclose(as_numpy(p), P0 - 0.1 * G0, rtol=1e-6)

    read_only = backend.xp.broadcast_to(backend.xp.asarray(1.0, dtype=xp.float32), (3,))
    p = Parameter(read_only)
    p.grad = Variable(xp.asarray(G0.copy()))
    optimizers.MomentumSGD(0.1).setup([p]).update()
    assert p.data is not read_only and p.dtype == xp.float32
    np.testing.assert_allclose(as_numpy(p), 1.0 - 0.1 * G0, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sgd_on_a_large_parameter_equals_the_two_step_update_bit_for_bit(xp, dtype):
    # 700 x 530 is over NumPy's blocked threshold in both dtypes and not a whole number of blocks
    rng = np.random.default_rng(3)
    value = rng.standard_normal((700, 530)).astype(dtype)
    grad = rng.standard_normal((700, 530)).astype(dtype)
    expected = value.copy()
    expected -= 0.1 * grad
    p = _param(xp, value, grad)
    optimizers.SGD(0.1).setup([p]).update()
    np.testing.assert_array_equal(as_numpy(p), expected)
    assert p.dtype == getattr(xp, dtype)

    velocity = 0.5 * (-0.1 * grad)
    velocity -= 0.1 * grad
    p = _param(xp, value, grad)
    opt = optimizers.MomentumSGD(0.1, 0.5).setup([p])
    opt.update()
    opt.update()
    np.testing.assert_array_equal(as_numpy(p), (value - 0.1 * grad) + velocity)


def test_update_without_setup_says_so():
    with pytest.raises(RuntimeError, match="setup"):
        optimizers.SGD().update()


OPTIMIZERS = ["SGD", "MomentumSGD", "AdaGrad", "AdaDelta", "Adam"]


class _TwoParams(L.Layer):
    def __init__(self, xp, int_dtype):
        super().__init__()
        self.w = Parameter(xp.asarray([1.0, 2.0]), name="w")
        self.counts = Parameter(xp.asarray([3, 4], dtype=getattr(xp, int_dtype)), name="counts")


@pytest.mark.parametrize("int_dtype", ["int32", "int64", "uint8"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_setup_refuses_integer_parameters_by_name(xp, name, int_dtype):
    """An integer parameter used to be silently truncated by each update."""
    model = _TwoParams(xp, int_dtype)
    with pytest.raises(TypeError, match=rf"{name}: parameter 'counts' has dtype .*{int_dtype}"):
        getattr(optimizers, name)().setup(model)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_update_refuses_a_parameter_that_became_integer(xp, name):
    """Checked again at each update (a lazily created or reloaded parameter), before any change."""
    w = Parameter(xp.asarray([1.0, 2.0]), name="w")
    count = Parameter(None, name="count")
    optimizer = getattr(optimizers, name)().setup([w, count])
    count.data = xp.asarray([3, 4])
    for p in (w, count):
        p.grad = Variable(xp.asarray([1, 1], dtype=p.dtype))
    state = getattr(optimizer, "t", None)
    with pytest.raises(TypeError, match=rf"{name}: parameter 'count' has dtype"):
        optimizer.update()
    np.testing.assert_array_equal(as_numpy(w.data), [1.0, 2.0])  # nothing was updated
    np.testing.assert_array_equal(as_numpy(count.data), [3, 4])
    assert getattr(optimizer, "t", None) == state


def test_floating_parameters_of_every_precision_are_accepted(xp):
    for dtype in ("float32", "float64"):
        p = Parameter(xp.asarray([1.0, 2.0], dtype=getattr(xp, dtype)))
        p.grad = Variable(xp.asarray([1.0, 1.0], dtype=getattr(xp, dtype)))
        optimizers.SGD(lr=0.5).setup(p).update()
        np.testing.assert_allclose(as_numpy(p.data), [0.5, 1.5])
