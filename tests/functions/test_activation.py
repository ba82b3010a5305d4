"""Activations on every backend: values, gradients (first and second order), dtypes, edges."""

from __future__ import annotations

import numpy as np
import pytest
from fn_checks import check_double_backward

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.cuda import as_numpy
from agrad.utils import gradient_check


def host(v) -> np.ndarray:
    return np.asarray(as_numpy(v.data if isinstance(v, Variable) else v))


def randn(xp, shape, seed=0, dtype="float64", away_from_zero=False):
    values = np.random.default_rng(seed).standard_normal(shape)
    if away_from_zero:  # keep kinks (relu at 0) out of the central differences
        values = np.where(values >= 0, values + 0.2, values - 0.2)
    return xp.asarray(values, dtype=getattr(xp, dtype))


def grads_of_both_paths(f, x):
    """d sum(f(x) * w)/dx by plain backward() and by backward(create_graph=True)."""
    xp = agrad.backends.backend_of(x).xp
    weights = randn(xp, tuple(f(Variable(x)).shape), seed=13, dtype=str(x.dtype).split(".")[-1])
    grads = []
    for create_graph in (False, True):
        xv = Variable(x)
        F.sum(f(xv) * weights).backward(create_graph=create_graph)
        grads.append(xv.grad)
    return grads


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


ELEMENTWISE = {
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "sigmoid_simple": (F.sigmoid_simple, lambda x: 1 / (1 + np.exp(-x))),
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.2 * x)),
    "leaky_relu_0.05": (
        lambda x: F.leaky_relu(x, slope=0.05),
        lambda x: np.where(x > 0, x, 0.05 * x),
    ),
}
AXIS_FUNCTIONS = {
    "softmax": (F.softmax, np_softmax),
    "softmax_simple": (F.softmax_simple, np_softmax),
    "log_softmax": (F.log_softmax, np_log_softmax),
}
AXES = [0, 1, 2, -1, -2, (1, 2), (0, -1)]


def all_functions():
    """Every activation as a one-argument function of a (2, 3, 2) input."""
    cases = dict(ELEMENTWISE)
    for name, (f, _) in AXIS_FUNCTIONS.items():
        cases[name] = (lambda x, f=f: f(x, axis=-1), None)
    return cases


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_forward_matches_numpy(xp, name):
    f, reference = ELEMENTWISE[name]
    x = randn(xp, (3, 4))
    y = f(x)
    assert isinstance(y, Variable)
    np.testing.assert_allclose(host(y), reference(host(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(AXIS_FUNCTIONS))
@pytest.mark.parametrize("axis", AXES)
def test_axis_forward_matches_numpy(xp, name, axis):
    f, reference = AXIS_FUNCTIONS[name]
    x = randn(xp, (2, 3, 2))
    np.testing.assert_allclose(host(f(x, axis=axis)), reference(host(x), axis), rtol=1e-12)


@pytest.mark.parametrize("name", list(AXIS_FUNCTIONS))
def test_default_axis_is_1(xp, name):
    f, reference = AXIS_FUNCTIONS[name]
    x = randn(xp, (2, 3, 2))
    np.testing.assert_allclose(host(f(x)), reference(host(x), 1), rtol=1e-12)


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_backward_matches_numerical(xp, name):
    f, _ = ELEMENTWISE[name]
    gradient_check(f, randn(xp, (2, 3), away_from_zero=True))


@pytest.mark.parametrize("name", list(AXIS_FUNCTIONS))
@pytest.mark.parametrize("axis", AXES)
def test_axis_backward_matches_numerical(xp, name, axis):
    f, _ = AXIS_FUNCTIONS[name]
    x = randn(xp, (2, 3, 2))
    weights = randn(xp, (2, 3, 2), seed=5)  # a plain sum of a softmax has zero gradient
    gradient_check(lambda v: f(v, axis=axis) * weights, x)


SMOOTH = [name for name in all_functions() if "relu" not in name]


@pytest.mark.parametrize("name", SMOOTH)
def test_double_backward(xp, name):
    f, _ = all_functions()[name]
    check_double_backward(f, randn(xp, (2, 3, 2)))


@pytest.mark.parametrize("f", [F.relu, F.leaky_relu])
def test_piecewise_linear_gradient_is_constant(xp, f):
    """The second derivative of relu/leaky_relu is 0: the gradient does not depend on x."""
    x = Variable(randn(xp, (2, 3), away_from_zero=True))
    F.sum(f(x) * f(x)).backward(create_graph=True)
    gx = x.grad
    x.cleargrad()
    F.sum(gx).backward()
    expected = 2 * np.where(host(x) > 0, 1.0, 0.0 if f is F.relu else 0.04)
    np.testing.assert_allclose(host(x.grad), expected, rtol=1e-12)


@pytest.mark.parametrize("name", list(AXIS_FUNCTIONS))
@pytest.mark.parametrize("axis", [0, (1, 2)])
def test_double_backward_other_axes(xp, name, axis):
    f, _ = AXIS_FUNCTIONS[name]
    check_double_backward(lambda v: f(v, axis=axis), randn(xp, (2, 3, 2)))


def test_sigmoid_third_derivative(xp):
    """s''' = s(1-s)(1 - 6s(1-s)) at a few points, by differentiating three times."""
    x = Variable(xp.asarray([-1.5, 0.0, 0.7]))
    y = F.sigmoid(x)
    for _ in range(3):
        x.cleargrad()
        F.sum(y).backward(create_graph=True)
        y = x.grad
    s = 1 / (1 + np.exp(-host(x)))
    np.testing.assert_allclose(host(y), s * (1 - s) * (1 - 6 * s * (1 - s)), rtol=1e-12)


@pytest.mark.parametrize("name", list(all_functions()))
def test_fast_path_equals_graph_path(xp, name):
    f, _ = all_functions()[name]
    fast, graph = grads_of_both_paths(f, randn(xp, (2, 3, 2), away_from_zero=True))
    np.testing.assert_allclose(host(fast), host(graph), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("name", list(all_functions()))
def test_dtype_is_kept(xp, name, dtype):
    if not hasattr(xp, dtype):
        pytest.skip(f"this backend has no {dtype}")
    f, _ = all_functions()[name]
    x = Variable(randn(xp, (2, 3, 2), dtype=dtype))
    y = f(x)
    assert y.dtype == getattr(xp, dtype)
    F.sum(y).backward()
    assert x.grad.dtype == getattr(xp, dtype)
    assert np.isfinite(host(y)).all() and np.isfinite(host(x.grad)).all()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["sigmoid", "softmax", "log_softmax"])
def test_finite_for_huge_logits(xp, name, dtype):
    f = {"sigmoid": F.sigmoid, "softmax": F.softmax, "log_softmax": F.log_softmax}[name]
    logits = xp.asarray(
        [[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0]], dtype=getattr(xp, dtype)
    )
    x = Variable(logits)
    y = f(x)
    weights = xp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=getattr(xp, dtype))
    F.sum(y * weights).backward()
    assert np.isfinite(host(y)).all()
    assert np.isfinite(host(x.grad)).all()


def test_huge_logit_values(xp):
    x = xp.asarray([[1000.0, -1000.0]])
    np.testing.assert_array_equal(host(F.sigmoid(x)), [[1.0, 0.0]])
    np.testing.assert_array_equal(host(F.softmax(x)), [[1.0, 0.0]])
    np.testing.assert_array_equal(host(F.log_softmax(x)), [[0.0, -2000.0]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sigmoid_is_accurate_over_its_whole_range(xp, dtype):
    """Each backend's form (NumPy's exp form, PyTorch's and JAX's own, the tanh form elsewhere)
    is within an absolute 1e-7 of the float64 value and keeps the dtype, without a warning."""
    values = np.concatenate([np.linspace(-40.0, 40.0, 801), [-1e4, -90.0, 90.0, 1e4]])
    y = F.sigmoid(xp.asarray(values, dtype=getattr(xp, dtype)))
    assert y.dtype == getattr(xp, dtype)
    expected = np.exp(-np.logaddexp(0.0, -values))
    np.testing.assert_allclose(host(y), expected, rtol=1e-6, atol=1e-7)


def test_sigmoid_of_integers_and_booleans_is_floating(xp):
    if agrad.current_backend().name == "array_api_strict":
        pytest.skip("the standard mixes no integer array with a float (x * 0.5 raises)")
    y = host(F.sigmoid(xp.asarray([0, 2])))
    np.testing.assert_allclose(y, [0.5, 1 / (1 + np.exp(-2.0))], rtol=1e-6)
    y = host(F.sigmoid(xp.asarray([False, True])))
    np.testing.assert_allclose(y, [0.5, 1 / (1 + np.exp(-1.0))], rtol=1e-6)


@pytest.mark.parametrize("name", list(all_functions()))
def test_inputs_are_not_written(xp, name):
    f, _ = all_functions()[name]
    x = randn(xp, (2, 3, 2))
    before = host(x).copy()
    xv = Variable(x)
    F.sum(f(xv)).backward()
    np.testing.assert_array_equal(host(x), before)


@pytest.mark.parametrize("name", list(all_functions()))
def test_read_only_numpy_input(name):
    f, _ = all_functions()[name]
    data = np.random.default_rng(0).standard_normal((2, 3, 2))
    data.flags.writeable = False
    xv = Variable(data)
    F.sum(f(xv)).backward()
    assert xv.grad.shape == (2, 3, 2)


def test_array_twins_match_functions(xp):
    """d.sigmoid / d.softmax on the fast path compute what F.sigmoid / F.softmax compute."""
    ops = agrad.ops.array_ops(agrad.current_backend())
    x = randn(xp, (2, 3, 2))
    np.testing.assert_allclose(host(ops.sigmoid(x)), host(F.sigmoid(x)), rtol=1e-15)
    for axis in (1, -1, (0, 2)):
        np.testing.assert_allclose(
            host(ops.softmax(x, axis=axis)), host(F.softmax(x, axis=axis)), rtol=1e-15
        )


def test_dezero_class_names_are_public():
    for name in ("Sigmoid", "ReLU", "LeakyReLU", "Softmax", "LogSoftmax"):
        assert issubclass(getattr(F, name), agrad.Function)
    y = F.Sigmoid()(np.zeros((1,)))
    assert host(y)[0] == 0.5


def test_relu_propagates_nan(xp):
    y = host(F.relu(xp.asarray([float("nan"), -1.0, 2.0])))
    assert np.isnan(y[0]) and y[1] == 0.0 and y[2] == 2.0
