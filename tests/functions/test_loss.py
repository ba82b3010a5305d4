"""Losses and accuracy on every backend: integer labels on the same backend, DeZero's values."""

from __future__ import annotations

import math

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


def randn(xp, shape, seed=0, dtype="float64"):
    values = np.random.default_rng(seed).standard_normal(shape)
    return xp.asarray(values, dtype=getattr(xp, dtype))


def labels(xp, values, dtype="int64"):
    return xp.asarray(values, dtype=getattr(xp, dtype))


def np_log_softmax(x):
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


LABELS = [0, 3, 1, 3]
BINARY = [[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]]


def loss_cases(xp, label_dtype="int64"):
    """Each loss as a function of a (4, 3) or (4, 4) float input, and that input's shape."""
    t = labels(xp, LABELS, label_dtype)
    binary = labels(xp, BINARY, label_dtype)
    target = randn(xp, (4, 3), seed=3)
    return {
        "mean_squared_error": (lambda x: F.mean_squared_error(x, target), (4, 3)),
        "mean_squared_error_target": (lambda x: F.mean_squared_error(target, x), (4, 3)),
        "mean_squared_error_simple": (lambda x: F.mean_squared_error_simple(x, target), (4, 3)),
        "softmax_cross_entropy": (lambda x: F.softmax_cross_entropy(x, t), (4, 4)),
        "softmax_cross_entropy_simple": (lambda x: F.softmax_cross_entropy_simple(x, t), (4, 4)),
        "sigmoid_cross_entropy": (lambda x: F.sigmoid_cross_entropy(x, binary), (4, 3)),
        "binary_cross_entropy": (
            lambda x: F.binary_cross_entropy(F.sigmoid(x), binary),
            (4, 3),
        ),
    }


NAMES = list(loss_cases(np))


def reference(name, x, target):
    """The loss on the host with plain NumPy, written from the definitions."""
    t = np.asarray(LABELS)
    binary = np.asarray(BINARY, dtype=float)
    n = x.shape[0]
    if name.startswith("mean_squared_error"):
        return ((x - target) ** 2).sum() / n
    if name.startswith("softmax_cross_entropy"):
        return -np_log_softmax(x)[np.arange(n), t].sum() / n
    p = 1 / (1 + np.exp(-x))
    if name == "binary_cross_entropy":
        p = np.clip(p, 1e-15, 0.999)
    return -(binary * np.log(p) + (1 - binary) * np.log(1 - p)).sum() / n


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_numpy(xp, name):
    f, shape = loss_cases(xp)[name]
    x = randn(xp, shape)
    y = f(x)
    assert isinstance(y, Variable) and y.shape == ()
    np.testing.assert_allclose(
        host(y), reference(name, host(x), host(randn(np, (4, 3), seed=3))), rtol=1e-12
    )


@pytest.mark.parametrize("label_dtype", ["int32", "int64", "uint8"])
@pytest.mark.parametrize("name", NAMES)
def test_backward_matches_numerical(xp, name, label_dtype):
    f, shape = loss_cases(xp, label_dtype)[name]
    gradient_check(f, randn(xp, shape))


@pytest.mark.parametrize("name", NAMES)
def test_double_backward(xp, name):
    f, shape = loss_cases(xp)[name]
    check_double_backward(f, randn(xp, shape))


@pytest.mark.parametrize("name", NAMES)
def test_fast_path_equals_graph_path(xp, name):
    f, shape = loss_cases(xp)[name]
    x = randn(xp, shape)
    grads = []
    for create_graph in (False, True):
        xv = Variable(x)
        (f(xv) * 1.5).backward(create_graph=create_graph)
        grads.append(host(xv.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_dtype_is_kept(xp, name, dtype):
    if not hasattr(xp, dtype):
        pytest.skip(f"this backend has no {dtype}")
    f, shape = loss_cases(xp)[name]
    if name.startswith("mean_squared_error"):  # the target must share the dtype
        target = randn(xp, shape, seed=3, dtype=dtype)
        f = lambda x: F.mean_squared_error(x, target)  # noqa: E731
    x = Variable(randn(xp, shape, dtype=dtype))
    y = f(x)
    assert y.dtype == getattr(xp, dtype)
    y.backward()
    assert x.grad.dtype == getattr(xp, dtype)
    assert np.isfinite(host(y)) and np.isfinite(host(x.grad)).all()


def test_mean_squared_error_divides_by_first_dimension(xp):
    x0 = xp.asarray([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    x1 = xp.zeros((2, 3))
    assert float(host(F.mean_squared_error(x0, x1))) == 91.0 / 2
    assert float(host(F.mean_squared_error_simple(x0, x1))) == 91.0 / 2


def test_mean_squared_error_gradient_for_both_inputs(xp):
    x0 = Variable(randn(xp, (3, 2), seed=1))
    x1 = Variable(randn(xp, (3, 2), seed=2))
    F.mean_squared_error(x0, x1).backward()
    diff = host(x0) - host(x1)
    np.testing.assert_allclose(host(x0.grad), diff * 2 / 3, rtol=1e-12)
    np.testing.assert_allclose(host(x1.grad), -diff * 2 / 3, rtol=1e-12)


def test_mean_squared_error_broadcast_target(xp):
    target = randn(xp, (1, 3), seed=4)
    gradient_check(lambda x: F.mean_squared_error(x, target), randn(xp, (4, 3)))
    gradient_check(lambda t: F.mean_squared_error(randn(xp, (4, 3)), t), target)


def test_softmax_cross_entropy_labels_as_variable_and_column(xp):
    x = randn(xp, (4, 4))
    expected = host(F.softmax_cross_entropy(x, labels(xp, LABELS)))
    as_variable = F.softmax_cross_entropy(x, Variable(labels(xp, LABELS)))
    as_column = F.softmax_cross_entropy(x, labels(xp, [[v] for v in LABELS]))
    np.testing.assert_allclose(host(as_variable), expected, rtol=1e-15)
    np.testing.assert_allclose(host(as_column), expected, rtol=1e-15)


def test_softmax_cross_entropy_gradient_is_softmax_minus_one_hot(xp):
    x = Variable(randn(xp, (4, 4)))
    F.softmax_cross_entropy(x, labels(xp, LABELS)).backward()
    p = np.exp(np_log_softmax(host(x)))
    np.testing.assert_allclose(host(x.grad), (p - np.eye(4)[LABELS]) / 4, rtol=1e-12)


def test_float_labels_are_rejected(xp):
    with pytest.raises(TypeError, match="integer"):
        F.softmax_cross_entropy(randn(xp, (2, 3)), xp.asarray([0.0, 1.0]))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "name", ["softmax_cross_entropy", "softmax_cross_entropy_simple", "sigmoid_cross_entropy"]
)
def test_finite_for_huge_logits(xp, name, dtype):
    x = Variable(xp.asarray([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=getattr(xp, dtype)))
    if name == "sigmoid_cross_entropy":
        y = F.sigmoid_cross_entropy(x, labels(xp, [[1, 1], [0, 1]]))
    else:
        y = getattr(F, name)(x, labels(xp, [1, 1]))
    y.backward()
    assert np.isfinite(host(y)) and np.isfinite(host(x.grad)).all()


def test_softmax_cross_entropy_at_huge_logits_is_exact(xp):
    x = xp.asarray([[1000.0, -1000.0], [-1000.0, 1000.0]])
    assert float(host(F.softmax_cross_entropy(x, labels(xp, [1, 1])))) == 1000.0


def test_zero_probabilities_are_clipped_like_dezero(xp):
    floor = -math.log(1e-15)
    x = xp.asarray([[1000.0, -1000.0]])
    y = F.softmax_cross_entropy_simple(x, labels(xp, [1]))
    np.testing.assert_allclose(host(y), floor, rtol=1e-12)
    # log sigmoid(-1000) is clipped at log(1e-15) as DeZero clips p
    y = F.sigmoid_cross_entropy(xp.asarray([[-1000.0]]), labels(xp, [[1]]))
    np.testing.assert_allclose(host(y), floor, rtol=1e-12)
    # binary_cross_entropy clips p to [1e-15, 0.999]
    p = xp.asarray([[0.0, 1.0]])
    y = F.binary_cross_entropy(p, labels(xp, [[1, 0]]))
    np.testing.assert_allclose(host(y), floor - math.log(1 - 0.999), rtol=1e-12)


def test_clipped_probabilities_get_no_gradient(xp):
    x = Variable(xp.asarray([[-1000.0, 0.5]]))
    F.sigmoid_cross_entropy(x, labels(xp, [[1, 1]])).backward()
    assert host(x.grad)[0, 0] == 0.0
    p = Variable(xp.asarray([[0.0, 1.0, 0.5]]))
    F.binary_cross_entropy(p, labels(xp, [[1, 0, 1]])).backward()
    np.testing.assert_allclose(host(p.grad), [[0.0, 0.0, -2.0]], rtol=1e-12)


def test_binary_cross_entropy_with_float_targets_and_flat_labels(xp):
    p = F.sigmoid(randn(xp, (4, 1)))
    flat = F.binary_cross_entropy(p, labels(xp, [1, 0, 0, 1]))
    column = F.binary_cross_entropy(p, xp.asarray([[1.0], [0.0], [0.0], [1.0]]))
    np.testing.assert_allclose(host(flat), host(column), rtol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_inputs_are_not_written(xp, name):
    f, shape = loss_cases(xp)[name]
    x = randn(xp, shape)
    before = host(x).copy()
    f(Variable(x)).backward()
    np.testing.assert_array_equal(host(x), before)


@pytest.mark.parametrize("name", NAMES)
def test_read_only_numpy_inputs(name):
    f, shape = loss_cases(np)[name]
    data = np.random.default_rng(0).standard_normal(shape)
    data.flags.writeable = False
    xv = Variable(data)
    f(xv).backward()
    assert xv.grad.shape == shape


def test_read_only_numpy_labels():
    t = np.asarray(LABELS)
    t.flags.writeable = False
    x = Variable(np.random.default_rng(0).standard_normal((4, 4)))
    F.softmax_cross_entropy(x, t).backward()
    F.softmax_cross_entropy_simple(x, t).backward()


def test_accuracy(xp):
    y = xp.asarray([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.0, 1.0, 0.0]])
    acc = F.accuracy(Variable(y), labels(xp, [1, 0, 0, 1]))
    assert isinstance(acc, Variable) and acc.shape == ()
    assert acc.dtype == xp.float64  # NumPy's mean of a bool array, as in DeZero
    assert float(host(acc)) == 0.75
    assert acc.creator is None
    assert float(host(F.accuracy(y, Variable(labels(xp, [[1], [0], [2], [1]]))))) == 1.0


def test_accuracy_float32_logits_and_int32_labels(xp):
    y = xp.asarray([[0.1, 0.9], [0.8, 0.1], [0.2, 0.3]], dtype=xp.float32)
    acc = F.accuracy(y, labels(xp, [1, 1, 1], "int32"))
    assert float(host(acc)) == pytest.approx(2 / 3, rel=1e-15)


def test_dezero_class_names_are_public():
    for name in ("MeanSquaredError", "SoftmaxCrossEntropy"):
        assert issubclass(getattr(F, name), agrad.Function)
    y = F.SoftmaxCrossEntropy()(np.zeros((2, 2)), np.asarray([0, 1]))
    assert float(host(y)) == pytest.approx(math.log(2), rel=1e-15)


LABEL_LOSSES = ["softmax_cross_entropy", "softmax_cross_entropy_simple"]


@pytest.mark.parametrize("name", LABEL_LOSSES)
@pytest.mark.parametrize("label_dtype", ["uint8", "int8", "int16", "int32", "int64"])
def test_narrow_label_dtypes_with_many_classes(xp, name, label_dtype):
    """The one-hot of the gradient is built in int64: uint8 labels with 300 classes used to put
    gradient on class 257 as well as on class 1 (arange(300) wraps in uint8)."""
    classes = 300
    values = [1, 120, 0] if label_dtype in ("int8", "uint8") else [1, 257, 299]
    x = Variable(randn(xp, (3, classes)))
    getattr(F, name)(x, labels(xp, values, label_dtype)).backward()
    p = np.exp(np_log_softmax(host(x)))
    expected = (p - np.eye(classes)[values]) / 3
    np.testing.assert_allclose(host(x.grad), expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", LABEL_LOSSES)
@pytest.mark.parametrize("bad", [-1, 3, 300])
def test_labels_out_of_range_are_named(xp, name, bad):
    t = labels(xp, [0, bad, 1], "int64")
    if agrad.current_backend().checks_stay_on_device:  # Dask: no compute mid-graph
        assert np.isnan(host(getattr(F, name)(randn(xp, (3, 3)), t)))
        return
    with pytest.raises(ValueError, match=rf"t\[1\] = {bad} is out of range.*0 <= t < 3"):
        getattr(F, name)(randn(xp, (3, 3)), t)


@pytest.mark.parametrize("name", LABEL_LOSSES)
@pytest.mark.parametrize("bad", [-1, 3])
def test_labels_out_of_range_on_a_device_make_loss_and_gradient_nan(xp, name, bad, monkeypatch):
    # on a GPU a check would wait for the device every step: the result is NaN instead
    monkeypatch.setattr(agrad.current_backend(), "gpu", True)
    x = Variable(randn(xp, (3, 3)))
    loss = getattr(F, name)(x, labels(xp, [0, bad, 1], "int64"))
    loss.backward()
    assert np.isnan(host(loss)) and np.isnan(host(x.grad)).all()
    x.cleargrad()
    good = getattr(F, name)(x, labels(xp, [0, 2, 1], "int64"))
    good.backward()
    on_device = host(good), host(x.grad)
    monkeypatch.undo()  # the same labels checked on the host: the same loss and gradient
    x.cleargrad()
    checked = getattr(F, name)(x, labels(xp, [0, 2, 1], "int64"))
    checked.backward()
    np.testing.assert_array_equal(on_device[0], host(checked))
    np.testing.assert_array_equal(on_device[1], host(x.grad))


@pytest.mark.parametrize("name", LABEL_LOSSES)
def test_labels_out_of_range_in_a_narrow_dtype(xp, name):
    t = labels(xp, [200, 1], "uint8")
    if agrad.current_backend().checks_stay_on_device:
        assert np.isnan(host(getattr(F, name)(randn(xp, (2, 3)), t)))
        return
    with pytest.raises(ValueError, match=r"t\[0\] = 200 is out of range"):
        getattr(F, name)(randn(xp, (2, 3)), t)


@pytest.mark.parametrize("name", LABEL_LOSSES)
@pytest.mark.parametrize("values", [[0, 1], [0, 1, 2, 1, 0], [[0, 1, 2]], 1])
def test_labels_of_the_wrong_length_are_named(xp, name, values):
    t = labels(xp, values)
    with pytest.raises(ValueError, match=r"one label per row of x: x has 3 rows"):
        getattr(F, name)(randn(xp, (3, 3)), t)


@pytest.mark.parametrize("name", LABEL_LOSSES)
def test_logits_must_be_a_matrix(xp, name):
    with pytest.raises(ValueError, match=r"logits x must have shape \(N, C\), got shape \(3,\)"):
        getattr(F, name)(randn(xp, (3,)), labels(xp, [0, 1, 2]))


def test_sigmoid_cross_entropy_targets_of_the_wrong_size(xp):
    with pytest.raises(ValueError, match=r"one entry per logit: x has shape \(4, 3\)"):
        F.sigmoid_cross_entropy(randn(xp, (4, 3)), labels(xp, [1, 0, 1]))


@pytest.mark.parametrize("name", ["mean_squared_error", "mean_squared_error_simple"])
@pytest.mark.parametrize(("s0", "s1"), [((3, 1), (3,)), ((3,), (3, 1)), ((3, 1), (1, 3))])
def test_mean_squared_error_warns_when_broadcasting_grows(xp, name, s0, s1):
    with pytest.warns(UserWarning, match=r"broadcast to \(3, 3\)"):
        getattr(F, name)(randn(xp, s0), randn(xp, s1, seed=1))


@pytest.mark.parametrize("name", ["mean_squared_error", "mean_squared_error_simple"])
def test_mean_squared_error_broadcasting_to_one_shape_does_not_warn(xp, name):
    f = getattr(F, name)
    f(randn(xp, (4, 3)), randn(xp, (1, 3)))  # warnings are errors in the tests
    f(randn(xp, (4, 3)), randn(xp, (3,)))
    if name == "mean_squared_error":
        f(randn(xp, (4, 3)), 0.5)


def test_accuracy_with_mixed_backends_gets_agrad_error(xp):
    other = np if agrad.current_backend().name != "numpy" else agrad.get_backend("array_api_strict")
    other_xp = other if other is np else other.xp
    y = xp.asarray([[0.1, 0.9], [0.8, 0.1]])
    t = other_xp.asarray([1, 0])
    with pytest.raises(TypeError, match=r"accuracy: y and t live on different backends"):
        F.accuracy(y, t)
    with pytest.raises(TypeError, match=r"different backends"):
        F.accuracy(Variable(t if other is np else other_xp.asarray([[0.1, 0.9]])), labels(xp, [1]))


def test_accuracy_labels_of_the_wrong_length(xp):
    y = xp.asarray([[0.1, 0.9], [0.8, 0.1]])
    with pytest.raises(ValueError, match=r"one label per row of y: y has 2 rows"):
        F.accuracy(y, labels(xp, [1, 0, 1]))


@pytest.mark.parametrize("name", LABEL_LOSSES)
def test_labels_on_another_backend_get_agrad_error(xp, name):
    if agrad.current_backend().name == "numpy":
        t = agrad.get_backend("array_api_strict").xp.asarray([0, 1])
    else:
        t = np.asarray([0, 1])
    with pytest.raises(TypeError, match="different backends"):
        getattr(F, name)(randn(xp, (2, 3)), t)


def test_binary_cross_entropy_targets_of_the_wrong_size(xp):
    p = F.sigmoid(randn(xp, (3, 2)))
    with pytest.raises(ValueError, match=r"binary_cross_entropy: .* p has shape \(3, 2\)"):
        F.binary_cross_entropy(p, labels(xp, [1, 0, 1]))
