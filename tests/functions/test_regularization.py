"""dropout and batch_norm on every backend: train/test mode, seeded masks, running statistics."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from fn_checks import check_double_backward

import agrad
import agrad.functions as F
from agrad import Parameter, Variable
from agrad.cuda import as_numpy
from agrad.utils import gradient_check


def host(v) -> np.ndarray:
    return np.asarray(as_numpy(v.data if isinstance(v, Variable) else v))


def randn(xp, shape, seed=0, dtype="float64"):
    values = np.random.default_rng(seed).standard_normal(shape)
    return xp.asarray(values, dtype=getattr(xp, dtype))


def both_path_grads(f, inputs, weights):
    """Gradients of sum(f(*inputs) * weights) for every input, by backward() and create_graph."""
    results = []
    for create_graph in (False, True):
        variables = [Variable(a) for a in inputs]
        F.sum(f(*variables) * weights).backward(create_graph=create_graph)
        results.append([host(v.grad) for v in variables])
    return results


# -- dropout ----------------------------------------------------------------------------------


def seeded_dropout(x, ratio=0.5):
    agrad.seed(7)  # the same mask on every call, so central differences see one function
    return F.dropout(x, ratio)


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.9])
def test_dropout_mask_comes_from_the_seeded_backend(xp, ratio):
    x = randn(xp, (4, 5))
    agrad.seed(3)
    keep = host(agrad.current_backend().random((4, 5))) > ratio
    agrad.seed(3)
    y = F.dropout(x, ratio)
    # allclose: XLA may scale by 1 / (1 - ratio) instead of dividing (one rounding apart)
    np.testing.assert_allclose(host(y), host(x) * keep / (1.0 - ratio), rtol=1e-15, atol=0)


def test_dropout_is_repeatable_after_seed(xp):
    x = randn(xp, (6, 7))
    agrad.seed(42)
    first = host(F.dropout(x))
    agrad.seed(42)
    second = host(F.dropout(x))
    third = host(F.dropout(x))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(second, third)
    assert 0 < (first == 0).sum() < first.size


def test_dropout_follows_test_mode(xp):
    x = Variable(randn(xp, (3, 4)))
    with agrad.test_mode():
        assert F.dropout(x) is x
        y = F.dropout(x.data, 0.9)
        np.testing.assert_array_equal(host(y), host(x))
    assert agrad.Config.train
    agrad.Config.train = False
    try:
        assert F.dropout(x) is x
    finally:
        agrad.Config.train = True
    assert (host(F.dropout(x, 0.99)) == 0).any()


def test_dropout_backward(xp):
    gradient_check(seeded_dropout, randn(xp, (3, 4)))
    gradient_check(lambda x: seeded_dropout(x, 0.2), randn(xp, (2, 3, 2)))


def test_dropout_gradient_is_the_scaled_mask(xp):
    x = Variable(randn(xp, (3, 4)))
    y = seeded_dropout(x, 0.25)
    y.backward()
    kept = host(y) != 0
    np.testing.assert_allclose(host(x.grad), kept / 0.75, rtol=1e-15)


def test_dropout_fast_path_equals_graph_path(xp):
    fast, graph = both_path_grads(seeded_dropout, [randn(xp, (3, 4))], randn(xp, (3, 4), 5))
    np.testing.assert_array_equal(fast[0], graph[0])


def test_dropout_double_backward_through_the_gradient(xp):
    """Dropout is linear: the gradient of sum(dropout(x)**2) is differentiable once more."""
    check_double_backward(lambda x: seeded_dropout(x) ** 2, randn(xp, (3, 4)))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_dropout_keeps_dtype(xp, dtype):
    if not hasattr(xp, dtype):
        pytest.skip(f"this backend has no {dtype}")
    x = Variable(randn(xp, (3, 4), dtype=dtype))
    y = F.dropout(x, 0.3)
    assert y.dtype == getattr(xp, dtype)
    F.sum(y).backward()
    assert x.grad.dtype == getattr(xp, dtype)


def test_dropout_does_not_write_its_input(xp):
    x = randn(xp, (3, 4))
    before = host(x).copy()
    xv = Variable(x)
    F.sum(F.dropout(xv)).backward()
    np.testing.assert_array_equal(host(x), before)
    data = np.ones((3, 4))
    data.flags.writeable = False
    F.sum(F.dropout(Variable(data))).backward()


# -- batch_norm -------------------------------------------------------------------------------

EPS = 2e-5


def channel_layout(ndim):
    return ((0,), (1, -1)) if ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))


def reference_batch_norm(x, gamma, beta, mean, var, train, decay=0.9, eps=EPS):
    """Host NumPy: output and the new running statistics, from the definitions."""
    axes, shape = channel_layout(x.ndim)
    if train:
        m = x.size // gamma.size
        batch_mean, batch_var = x.mean(axis=axes), x.var(axis=axes)
        norm_mean, norm_var = batch_mean, batch_var
        mean = decay * mean + (1 - decay) * batch_mean
        var = decay * var + (1 - decay) * batch_var * m / max(m - 1, 1)
    else:
        norm_mean, norm_var = mean, var
    x_hat = (x - norm_mean.reshape(shape)) / np.sqrt(norm_var.reshape(shape) + eps)
    return gamma.reshape(shape) * x_hat + beta.reshape(shape), mean, var


SHAPES = {"2d": (5, 3), "4d": (2, 3, 2, 2)}


def bn_inputs(xp, shape, dtype="float64"):
    channels = shape[1]
    x = randn(xp, shape, seed=1, dtype=dtype) * 2 + 0.5
    gamma = randn(xp, (channels,), seed=2, dtype=dtype) + 1.5
    beta = randn(xp, (channels,), seed=3, dtype=dtype)
    mean = randn(xp, (channels,), seed=4, dtype=dtype) * 0.1
    var = xp.abs(randn(xp, (channels,), seed=5, dtype=dtype)) + 0.5
    if xp is not np:
        mean, var = updatable(mean), updatable(var)
    return x, gamma, beta, mean, var


def updatable(a):
    """Running statistics batch_norm can update: the array itself (DeZero's in-place contract)
    where the backend's arrays are mutable, a Variable (rebound instead) where they are not."""
    if isinstance(a, Variable):
        return a
    backend = agrad.current_backend()
    if backend.mutable_arrays:
        return backend.xp.asarray(a, copy=True)  # the caller's own writable buffer
    return Variable(a)


def _raw(a):
    return a.data if isinstance(a, Variable) else a


def copy(xp, a):
    return xp.asarray(host(a).copy())


@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("layout", list(SHAPES))
def test_batch_norm_forward_and_running_stats(xp, layout, train):
    x, gamma, beta, mean, var = bn_inputs(xp, SHAPES[layout])
    mean, var = updatable(mean), updatable(var)
    expected, new_mean, new_var = reference_batch_norm(
        *(host(a) for a in (x, gamma, beta, mean, var)), train=train
    )
    with agrad.using_config("train", train):
        y = F.batch_norm(x, gamma, beta, mean, var)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(mean), new_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(host(var), new_var, rtol=1e-12)


def test_batch_norm_train_output_is_normalised(xp):
    x, _, _, mean, var = bn_inputs(xp, (6, 3))
    mean, var = updatable(mean), updatable(var)
    y = host(F.batch_norm(x, xp.ones((3,)), xp.zeros((3,)), mean, var))
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), 1, rtol=1e-4)


def test_batch_norm_decay_and_eps(xp):
    x, gamma, beta, mean, var = bn_inputs(xp, (4, 3))
    mean, var = updatable(mean), updatable(var)
    expected, _, new_var = reference_batch_norm(
        *(host(a) for a in (x, gamma, beta, mean, var)), train=True, decay=0.5, eps=0.1
    )
    y = F.batch_norm(x, gamma, beta, mean, var, decay=0.5, eps=0.1)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12)
    np.testing.assert_allclose(host(var), new_var, rtol=1e-12)


def test_batch_norm_running_stats_as_parameters_are_rebound(xp):
    x, gamma, beta, mean, var = bn_inputs(xp, (4, 3))
    _, new_mean, new_var = reference_batch_norm(
        *(host(a) for a in (x, gamma, beta, mean, var)), train=True
    )
    mean, var = _raw(mean), _raw(var)
    mean_param, var_param = Parameter(mean), Variable(var)
    original_mean = host(mean).copy()
    F.batch_norm(x, gamma, beta, mean_param, var_param)
    np.testing.assert_allclose(host(mean_param), new_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(host(var_param), new_var, rtol=1e-12)
    np.testing.assert_array_equal(host(mean), original_mean)  # the old array is left alone
    with agrad.test_mode():
        expected, _, _ = reference_batch_norm(
            *(host(a) for a in (x, gamma, beta, mean_param, var_param)), train=False
        )
        y = F.batch_norm(x, gamma, beta, mean_param, var_param)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12)


def test_batch_norm_read_only_running_stats_raise():
    x, gamma, beta, mean, var = bn_inputs(np, (4, 3))
    mean.flags.writeable = False
    with pytest.raises(TypeError, match="running statistics"):
        F.batch_norm(x, gamma, beta, mean, var)
    with agrad.test_mode():  # test mode only reads them
        F.batch_norm(x, gamma, beta, mean, var)


def test_batch_norm_read_only_inputs():
    arrays = bn_inputs(np, (2, 3, 2, 2))
    for a in arrays[:3]:
        a.flags.writeable = False
    x, gamma, beta = (Variable(a) for a in arrays[:3])
    F.sum(F.batch_norm(x, gamma, beta, *arrays[3:]) ** 2).backward()
    assert x.grad.shape == (2, 3, 2, 2) and gamma.grad.shape == (3,)


@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("layout", list(SHAPES))
def test_batch_norm_inputs_are_not_written(xp, layout, train):
    x, gamma, beta, mean, var = bn_inputs(xp, SHAPES[layout])
    before = [host(a).copy() for a in (x, gamma, beta)]
    with agrad.using_config("train", train):
        variables = [Variable(a) for a in (x, gamma, beta)]
        F.sum(F.batch_norm(*variables, mean, var) ** 2).backward()
    for a, b in zip((x, gamma, beta), before):
        np.testing.assert_array_equal(host(a), b)


def bn_of(which, arrays, power=1):
    """batch_norm (to ``power``) as a function of one of x/gamma/beta, the others held fixed."""
    x, gamma, beta, mean, var = arrays
    xp = agrad.backends.backend_of(x).xp
    weights = randn(xp, tuple(x.shape), seed=9)  # a plain sum has zero gradient in x

    def f(v):
        inputs = {"x": x, "gamma": gamma, "beta": beta}
        inputs[which] = v
        y = F.batch_norm(inputs["x"], inputs["gamma"], inputs["beta"], mean, var)
        return (y**power if power != 1 else y) * weights

    return f, {"x": x, "gamma": gamma, "beta": beta}[which]


@pytest.mark.parametrize("which", ["x", "gamma", "beta"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("layout", list(SHAPES))
def test_batch_norm_backward(xp, layout, train, which):
    f, value = bn_of(which, bn_inputs(xp, SHAPES[layout]))
    with agrad.using_config("train", train):
        gradient_check(f, value)


@pytest.mark.parametrize("which", ["x", "gamma"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("layout", list(SHAPES))
def test_batch_norm_double_backward(xp, layout, train, which):
    # squared: batch_norm alone is linear in gamma (and in x in test mode), which would leave
    # nothing to check; the square makes the gradient flow back through BatchNorm's vjp
    f, value = bn_of(which, bn_inputs(xp, SHAPES[layout]), power=2)
    with agrad.using_config("train", train):
        check_double_backward(f, value)


@pytest.mark.parametrize("layout", list(SHAPES))
def test_batch_norm_mixed_second_derivative(xp, layout):
    """d/dgamma of the x-gradient (built with create_graph=True), against central differences."""
    x, gamma, beta, mean, var = bn_inputs(xp, SHAPES[layout])
    weights = randn(xp, SHAPES[layout], seed=9)
    direction = randn(xp, SHAPES[layout], seed=10)

    def x_gradient_along_direction(gamma_v):
        xv = Variable(x)
        F.sum(F.batch_norm(xv, gamma_v, beta, mean, var) * weights).backward(create_graph=True)
        gamma_v.cleargrad()
        return F.sum(xv.grad * direction)

    gradient_check(x_gradient_along_direction, gamma)


def test_batch_norm_backward_uses_the_mode_of_its_forward(xp):
    """A test-mode forward keeps its running statistics for backward even if they change later."""
    x, gamma, beta, mean, var = bn_inputs(xp, (4, 3))
    var_at_forward = host(var).copy()
    xv = Variable(x)
    with agrad.test_mode():
        y = F.batch_norm(xv, gamma, beta, mean, var)
    F.batch_norm(x * 3, gamma, beta, mean, var)  # training call: updates mean/var in place
    y.backward()
    assert not np.allclose(host(var), var_at_forward)
    scale = host(gamma) / np.sqrt(var_at_forward + EPS)
    np.testing.assert_allclose(host(xv.grad), np.broadcast_to(scale, (4, 3)), rtol=1e-12)


@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("layout", list(SHAPES))
def test_batch_norm_fast_path_equals_graph_path(xp, layout, train):
    x, gamma, beta, mean, var = bn_inputs(xp, SHAPES[layout])
    weights = randn(xp, SHAPES[layout], seed=9)
    with agrad.using_config("train", train):
        fast, graph = both_path_grads(
            lambda *v: F.batch_norm(*v, mean, var), [x, gamma, beta], weights
        )
    for a, b in zip(fast, graph):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "test"])
@pytest.mark.parametrize("layout", list(SHAPES))
def test_batch_norm_keeps_dtype(xp, layout, train, dtype):
    if not hasattr(xp, dtype):
        pytest.skip(f"this backend has no {dtype}")
    x, gamma, beta, mean, var = bn_inputs(xp, SHAPES[layout], dtype=dtype)
    variables = [Variable(a) for a in (x, gamma, beta)]
    with agrad.using_config("train", train):
        y = F.batch_norm(*variables, mean, var)
    assert y.dtype == getattr(xp, dtype)
    assert mean.dtype == getattr(xp, dtype) and var.dtype == getattr(xp, dtype)
    F.sum(y * y).backward()
    for v in variables:
        assert v.grad.dtype == getattr(xp, dtype)
        assert np.isfinite(host(v.grad)).all()


def test_batch_norm_float64_running_stats_with_float32_input(xp):
    x, gamma, beta, _, _ = bn_inputs(xp, (4, 3), dtype="float32")
    mean, var = updatable(xp.zeros((3,))), updatable(xp.ones((3,)))
    y = F.batch_norm(x, gamma, beta, mean, var)
    assert y.dtype == xp.float32 and mean.dtype == xp.float64


def test_batch_norm_rejects_other_ranks(xp):
    x = randn(xp, (2, 3, 4))
    with pytest.raises(ValueError, match="2-D"):
        F.batch_norm(x, xp.ones((3,)), xp.zeros((3,)), xp.zeros((3,)), xp.ones((3,)))


def test_batch_norm_single_row_uses_no_bessel_correction(xp):
    x = xp.asarray([[1.0, 2.0]])
    mean, var = updatable(xp.zeros((2,))), updatable(xp.ones((2,)))
    F.batch_norm(x, xp.ones((2,)), xp.zeros((2,)), mean, var)
    np.testing.assert_allclose(host(var), [0.9, 0.9], rtol=1e-15)


def test_dezero_names():
    assert F.batch_nrom is F.batch_norm
    assert issubclass(F.BatchNorm, agrad.Function)
    assert issubclass(F.Dropout, agrad.Function)


@pytest.mark.parametrize("ratio", [1.5, -0.5, float("nan"), float("inf")])
def test_dropout_ratio_outside_zero_one_is_named(xp, ratio):
    x = randn(xp, (3, 4))
    for mode in (contextlib.nullcontext, agrad.test_mode):  # checked in test mode too
        with mode(), pytest.raises(ValueError, match=r"dropout_ratio=.* 0 <= dropout_ratio <= 1"):
            F.dropout(x, ratio)


@pytest.mark.parametrize("ratio", ["0.5", None, True])
def test_dropout_ratio_must_be_a_number(xp, ratio):
    with pytest.raises(TypeError, match=r"dropout_ratio must be a number"):
        F.dropout(randn(xp, (3, 4)), ratio)


def test_dropout_ratio_one_gives_zeros_and_zero_gradient(xp):
    """As PyTorch; it used to give NaN (0 / 0)."""
    x = Variable(randn(xp, (3, 4)))
    y = F.dropout(x, 1.0)
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(host(y), np.zeros((3, 4)))
    F.sum(y).backward()
    np.testing.assert_array_equal(host(x.grad), np.zeros((3, 4)))
    x.cleargrad()
    F.sum(F.dropout(x, 1.0) * x).backward(create_graph=True)
    np.testing.assert_array_equal(host(x.grad), np.zeros((3, 4)))
