"""``agrad.func``: the transforms against torch.func in float64, composition, modes and errors."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Variable, func
from agrad.cuda import as_numpy

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(
    not HAS_TORCH, reason="PyTorch is not installed (pip install torch==2.13.0 for the CPU build)"
)
LABELS = np.array([2, 0, 1])  # class labels for the (3, 4) logits of the loss cases
TARGETS = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])


def host(v):
    return np.asarray(as_numpy(v))


def _torch():
    import torch

    return torch


@dataclass
class Case:
    """One function written twice, for agrad and for PyTorch, and the shapes of its arguments."""

    name: str
    agrad_fn: Callable
    torch_fn: Callable
    shapes: tuple


def _t(name):
    return lambda *a, **k: getattr(_torch(), name)(*a, **k)


def _tf(name):
    return lambda *a, **k: getattr(_torch().nn.functional, name)(*a, **k)


CASES = [
    # elementwise
    Case("sin", F.sin, _t("sin"), ((3, 4),)),
    Case("exp_cos", lambda x: F.exp(x) * F.cos(x), lambda x: _t("exp")(x) * _t("cos")(x), ((5,),)),
    Case("tanh", F.tanh, _t("tanh"), ((2, 3),)),
    Case("sigmoid", F.sigmoid, _t("sigmoid"), ((2, 3),)),
    Case("log", lambda x: F.log(x * x + 1.0), lambda x: _t("log")(x * x + 1.0), ((4,),)),
    Case("sqrt", lambda x: F.sqrt(x * x + 0.5), lambda x: _t("sqrt")(x * x + 0.5), ((4,),)),
    Case("pow_div", lambda x: x**3 / (1.0 + x * x), lambda x: x**3 / (1.0 + x * x), ((3, 2),)),
    Case(
        "leaky_relu", lambda x: F.leaky_relu(x, 0.1), lambda x: _tf("leaky_relu")(x, 0.1), ((6,),)
    ),
    # reductions
    Case("sum_axis", lambda x: F.sum(x * x, axis=1), lambda x: (x * x).sum(dim=1), ((3, 4),)),
    Case("average", lambda x: F.average(F.sin(x), axis=0), lambda x: x.sin().mean(0), ((3, 4),)),
    Case("max_axis", lambda x: F.max(x, axis=1), lambda x: x.max(dim=1).values, ((3, 4),)),
    Case("sum_all", lambda x: F.sum(F.tanh(x)), lambda x: x.tanh().sum(), ((2, 3),)),
    # broadcasting, several arguments
    Case("broadcast_add", lambda x, y: F.sin(x + y), lambda x, y: (x + y).sin(), ((3, 4), (4,))),
    Case("broadcast_mul", lambda x, y: x * y * x, lambda x, y: x * y * x, ((3, 4), (3, 1))),
    Case(
        "broadcast_div",
        lambda x, y: x / (y * y + 1.0),
        lambda x, y: x / (y * y + 1.0),
        ((2, 3), (1, 3)),
    ),
    # matmul and layers
    Case("matmul", F.matmul, _t("matmul"), ((3, 4), (4, 2))),
    Case("linear", F.linear, lambda x, W, b: x @ W + b, ((3, 4), (4, 2), (2,))),
    Case(
        "mlp",
        lambda x, W1, W2: F.matmul(F.tanh(F.matmul(x, W1)), W2),
        lambda x, W1, W2: (x @ W1).tanh() @ W2,
        ((2, 3), (3, 4), (4, 2)),
    ),
    Case(
        "transpose_reshape",
        lambda x: F.transpose(F.reshape(x * x, (4, 3))),
        lambda x: (x * x).reshape(4, 3).T,
        ((3, 4),),
    ),
    Case("get_item", lambda x: F.sin(x[1:, ::2]), lambda x: x[1:, ::2].sin(), ((3, 4),)),
    # softmax and losses
    Case("softmax", lambda x: F.softmax(x, axis=1), lambda x: x.softmax(dim=1), ((3, 4),)),
    Case(
        "log_softmax", lambda x: F.log_softmax(x, axis=1), lambda x: x.log_softmax(dim=1), ((3, 4),)
    ),
    Case(
        "softmax_cross_entropy",
        lambda x: F.softmax_cross_entropy(x, x.xp.asarray(LABELS)),
        lambda x: _tf("cross_entropy")(x, _torch().tensor(LABELS)),
        ((3, 4),),
    ),
    Case(
        "mean_squared_error",
        F.mean_squared_error,
        lambda x, y: ((x - y) ** 2).sum() / x.shape[0],
        ((3, 4), (3, 4)),
    ),
    Case(
        "sigmoid_cross_entropy",
        lambda x: F.sigmoid_cross_entropy(x, x.xp.asarray(TARGETS)),
        lambda x: (
            _tf("binary_cross_entropy_with_logits")(x, _torch().tensor(TARGETS), reduction="sum")
            / x.shape[0]
        ),
        ((3, 4),),
    ),
]
IDS = [c.name for c in CASES]


def _inputs(case: Case, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1.5, 1.5, size=s) for s in case.shapes]


def _argnums(case: Case):
    n = len(case.shapes)
    return 0 if n == 1 else tuple(range(n))


def _agrad_scalar(case: Case) -> Callable:
    # sin keeps the second derivative of a linear function non-zero
    return lambda *a: F.sum(F.sin(case.agrad_fn(*a)))


def _torch_scalar(case: Case) -> Callable:
    return lambda *a: case.torch_fn(*a).sin().sum()


def _compare(got, want, rtol=1e-10, atol=1e-12) -> None:
    if isinstance(want, (tuple, list)):
        assert isinstance(got, tuple) and len(got) == len(want), (type(got), len(want))
        for g, w in zip(got, want):
            _compare(g, w, rtol, atol)
        return
    want = want.detach().numpy()
    got_host = host(got)
    assert got_host.shape == want.shape, (got_host.shape, want.shape)
    assert got_host.dtype == np.float64
    np.testing.assert_allclose(got_host, want, rtol=rtol, atol=atol)


def _both(xp, case, seed=0):
    torch = _torch()
    arrays = _inputs(case, seed)
    return [xp.asarray(a) for a in arrays], [torch.tensor(a, dtype=torch.float64) for a in arrays]


TRANSFORMS = ["grad", "value_and_grad", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "hvp"]


@needs_torch
# torch.func.jvp scripts a helper on first use; PyTorch's own deprecation, not ours
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(xp, case, transform):
    torch = _torch()
    tf = torch.func
    ours, theirs = _both(xp, case)
    argnums = _argnums(case)
    if transform == "grad":
        got = func.grad(_agrad_scalar(case), argnums)(*ours)
        _compare(got, tf.grad(_torch_scalar(case), argnums)(*theirs))
    elif transform == "value_and_grad":
        value, got = func.value_and_grad(_agrad_scalar(case), argnums)(*ours)
        want, want_value = tf.grad_and_value(_torch_scalar(case), argnums)(*theirs)
        _compare(got, want)
        _compare(value, want_value)
    elif transform == "vjp":
        out, vjp_fn = func.vjp(case.agrad_fn, *ours)
        want_out, torch_vjp = tf.vjp(case.torch_fn, *theirs)
        cotangent = np.random.default_rng(1).standard_normal(tuple(want_out.shape))
        _compare(out, want_out)
        _compare(vjp_fn(xp.asarray(cotangent)), torch_vjp(torch.tensor(cotangent)))
    elif transform == "jvp":
        tangents = _inputs(case, seed=2)
        out, got = func.jvp(case.agrad_fn, tuple(ours), tuple(xp.asarray(t) for t in tangents))
        want_out, want = tf.jvp(case.torch_fn, tuple(theirs), tuple(map(torch.tensor, tangents)))
        _compare(out, want_out)
        _compare(got, want)
    elif transform in ("jacrev", "jacfwd"):
        got = getattr(func, transform)(case.agrad_fn, argnums)(*ours)
        _compare(got, tf.jacrev(case.torch_fn, argnums)(*theirs))
    elif transform == "hessian":
        got = func.hessian(_agrad_scalar(case), argnums)(*ours)
        _compare(got, tf.hessian(_torch_scalar(case), argnums)(*theirs), rtol=1e-9, atol=1e-11)
    else:
        tangents = _inputs(case, seed=3)
        value, got = func.hvp(_agrad_scalar(case), tuple(ours), tuple(map(xp.asarray, tangents)))
        want_value, want = torch.autograd.functional.hvp(
            _torch_scalar(case), tuple(theirs), tuple(map(torch.tensor, tangents))
        )
        _compare(value, want_value)
        _compare(got, want, rtol=1e-9, atol=1e-11)


def test_at_least_twenty_functions_cover_the_kinds():
    assert len(CASES) >= 20
    names = set(IDS)
    assert {"matmul", "softmax", "softmax_cross_entropy", "broadcast_add", "sum_axis"} <= names


# -- modes: arrays in -> arrays out, Variables in -> differentiable Variables out ------------
def test_arrays_in_arrays_out_of_the_same_backend(xp):
    x = xp.asarray([0.5, -1.0])
    g = func.grad(lambda v: F.sum(F.sin(v)))(x)
    assert type(g) is type(x)
    np.testing.assert_allclose(host(g), np.cos([0.5, -1.0]))
    value, g = func.value_and_grad(lambda v: F.sum(v * v))(x)
    assert type(value) is type(x) and type(g) is type(x)
    J = func.jacrev(F.sin)(x)
    assert type(J) is type(x)
    _, hv = func.hvp(lambda v: F.sum(v * v * v), x, xp.asarray([1.0, 0.0]))
    assert type(hv) is type(x)


def test_variables_in_differentiable_variables_out(xp):
    x = Variable(xp.asarray([0.5, -1.0]))
    g = func.grad(lambda v: F.sum(F.sin(v)))(x)
    assert isinstance(g, Variable) and g.creator is not None
    assert x.grad is None  # the transform never accumulates into .grad
    F.sum(g).backward()  # d/dx sum(cos x) = -sin x
    np.testing.assert_allclose(host(x.grad), -np.sin([0.5, -1.0]))


def test_integer_variable_arguments_do_not_make_results_variables(xp):
    labels = Variable(xp.asarray([1, 0]))
    g = func.grad(lambda x, t: F.softmax_cross_entropy(x, t))(xp.ones((2, 3)), labels)
    assert type(g) is type(xp.ones(1))


def test_dtype_is_preserved(xp):
    x = xp.asarray([0.5, -1.0], dtype=xp.float32)
    assert func.grad(lambda v: F.sum(v * v))(x).dtype == xp.float32
    assert func.jacfwd(F.sin)(x).dtype == xp.float32
    assert func.hessian(lambda v: F.sum(v * v * v))(x).dtype == xp.float32


def test_returned_arrays_are_writable_and_unshared(xp):
    if not agrad.current_backend().mutable_arrays:
        pytest.skip("no in-place writes in this library (JAX: immutable arrays, Dask: no buffers)")
    x = xp.asarray([1.0, 2.0])
    ga, gb = func.grad(lambda a, b: F.sum(a + b), argnums=(0, 1))(x, x)
    ga[...] = 7.0
    np.testing.assert_array_equal(host(gb), [1.0, 1.0])


def test_pytree_arguments(xp):
    params = {"w": xp.asarray([1.0, 2.0]), "b": (xp.asarray(0.5),)}

    def loss(p, x):
        return F.sum((p["w"] * x + p["b"][0]) ** 2)

    x = xp.asarray([3.0, -1.0])
    g = func.grad(loss)(params, x)
    assert set(g) == {"w", "b"} and isinstance(g["b"], tuple)
    residual = np.array([1.0, 2.0]) * [3.0, -1.0] + 0.5
    np.testing.assert_allclose(host(g["w"]), 2 * residual * [3.0, -1.0])
    np.testing.assert_allclose(host(g["b"][0]), 2 * residual.sum())


def test_unused_argument_gets_zeros(xp):
    g = func.grad(lambda a, b: F.sum(a * a), argnums=(0, 1))(xp.asarray([1.0]), xp.ones((2, 2)))
    np.testing.assert_array_equal(host(g[1]), np.zeros((2, 2)))
    J = func.jacfwd(lambda a, b: a * 2.0, argnums=1)(xp.asarray([1.0]), xp.ones(3))
    assert J.shape == (1, 3)
    np.testing.assert_array_equal(host(J), np.zeros((1, 3)))


def test_constant_output(xp):
    g = func.grad(lambda v: xp.asarray(3.0))(xp.asarray([1.0, 2.0]))
    np.testing.assert_array_equal(host(g), [0.0, 0.0])


def test_has_aux(xp):
    x = xp.asarray([1.0, 2.0])

    def f(v):
        y = v * v
        return F.sum(y), {"y": y}

    g, aux = func.grad(f, has_aux=True)(x)
    np.testing.assert_allclose(host(g), [2.0, 4.0])
    assert type(aux["y"]) is type(x)  # arrays in: aux comes out as arrays too
    np.testing.assert_allclose(host(aux["y"]), [1.0, 4.0])
    g, (value, aux) = func.grad_and_value(f, has_aux=True)(x)
    assert float(value) == 5.0
    (value, aux), g = func.value_and_grad(f, has_aux=True)(x)
    assert float(value) == 5.0
    _, _, aux = func.vjp(lambda v: (v * 3.0, "tag"), x, has_aux=True)
    assert aux == "tag"
    _, t, aux = func.jvp(lambda v: (v * 3.0, 1), (x,), (x,), has_aux=True)
    np.testing.assert_allclose(host(t), [3.0, 6.0])
    J, aux = func.jacrev(lambda v: (v * 3.0, 2), has_aux=True)(x)
    assert aux == 2 and J.shape == (2, 2)


def test_vjp_fn_can_be_called_again_and_takes_variable_cotangents(xp):
    x = xp.asarray([1.0, 2.0])
    _, vjp_fn = func.vjp(F.sin, x)
    (first,) = vjp_fn(xp.asarray([1.0, 0.0]))
    (second,) = vjp_fn(xp.asarray([0.0, 1.0]))
    np.testing.assert_allclose(host(first) + host(second), np.cos([1.0, 2.0]))
    u = Variable(xp.asarray([2.0, 3.0]))
    (g,) = vjp_fn(u)
    assert isinstance(g, Variable)
    F.sum(g).backward()  # d/du sum(cos(x) * u) = cos(x)
    np.testing.assert_allclose(host(u.grad), np.cos([1.0, 2.0]))


def test_several_outputs(xp):
    x = xp.asarray([1.0, 2.0])
    J = func.jacrev(lambda v: (v * v, F.sum(v)))(x)
    assert isinstance(J, tuple) and J[0].shape == (2, 2) and J[1].shape == (2,)
    np.testing.assert_allclose(host(J[0]), np.diag([2.0, 4.0]))
    Jf = func.jacfwd(lambda v: (v * v, F.sum(v)))(x)
    np.testing.assert_allclose(host(Jf[0]), host(J[0]))
    np.testing.assert_allclose(host(Jf[1]), [1.0, 1.0])
    _, t = func.jvp(lambda v: [v * v, F.sum(v)], (x,), (xp.asarray([1.0, 1.0]),))
    assert isinstance(t, list)
    np.testing.assert_allclose(host(t[0]), [2.0, 4.0])


def test_zero_dimensional_arguments_and_outputs(xp):
    x = xp.asarray(0.5)
    assert func.jacrev(F.sin)(x).shape == ()
    assert func.jacfwd(lambda v: F.stack([v, v * v]))(x).shape == (2,)
    np.testing.assert_allclose(host(func.hessian(lambda v: v**3)(x)), 3.0)


# -- composition and perturbation confusion ----------------------------------------------------
def test_grad_of_grad(xp):
    d3 = func.grad(func.grad(func.grad(lambda v: F.sin(v) * v)))
    x0 = 0.7
    want = -np.cos(x0) * x0 - 3 * np.sin(x0)  # (x sin x)''' = -x cos x - 3 sin x
    np.testing.assert_allclose(host(d3(xp.asarray(x0))), want)


def test_jacfwd_of_jacrev_is_the_hessian(xp):
    def f(v):
        return F.sum(F.exp(v) * v[xp.asarray([2, 0, 1])])  # (torch slices take no negative step)

    x = xp.asarray([0.2, -0.4, 0.9])
    H = func.jacfwd(func.jacrev(f))(x)
    np.testing.assert_allclose(host(H), host(func.jacrev(func.jacrev(f))(x)), rtol=1e-12)
    np.testing.assert_allclose(host(H), host(func.hessian(f)(x)), rtol=1e-12)
    np.testing.assert_allclose(host(H), host(H).T, rtol=1e-12)


def test_inner_transform_differentiates_only_its_own_argument(xp):
    # d/dx [x * d/dy (x * y)] = d/dx [x * x] = 2x; adding the perturbations would give 4x
    def outer(x):
        return x * func.grad(lambda y: x * y)(x)

    np.testing.assert_allclose(host(func.grad(outer)(xp.asarray(3.0))), 6.0)


def test_inner_transform_on_arrays_still_sees_the_closed_over_variable(xp):
    # the inner grad is called with an array; it must stay differentiable in x
    y0 = xp.asarray(2.0)

    def outer(x):
        return func.grad(lambda y: x * y * y)(y0)  # 2 x y0

    np.testing.assert_allclose(host(func.grad(outer)(xp.asarray(1.5))), 4.0)


def test_transform_inside_does_not_touch_outer_grads(xp):
    w = Variable(xp.asarray([1.0, 2.0]))
    g = func.grad(lambda v: F.sum(v * v * w))(xp.asarray([3.0, 4.0]))
    assert w.grad is None
    np.testing.assert_allclose(host(g), 2 * np.array([3.0, 4.0]) * [1.0, 2.0])


def test_closed_over_variable_makes_results_differentiable(xp):
    # torch.func's rule: a result depends on the parameters f closes over; arrays would drop that
    w = Variable(xp.asarray([1.0, 2.0]))
    v = xp.asarray([3.0, 4.0])
    g = func.grad(lambda a: F.sum(a * a * w))(v)
    assert isinstance(g, Variable)
    F.sum(g).backward()  # d/dw sum(2 v w) = 2 v
    np.testing.assert_allclose(host(w.grad), [6.0, 8.0])
    _, hv = func.hvp(lambda a: F.sum(a * a * a * w), v, xp.asarray([1.0, 1.0]))
    assert isinstance(hv, Variable)
    assert isinstance(func.jacfwd(lambda a: a * w)(v), Variable)
    # a closed-over array, or a Variable that needs no gradient, is a constant: arrays out
    for constant in (xp.asarray([1.0, 2.0]), Variable(xp.asarray([1, 2]))):
        g = func.grad(lambda a, c=constant: F.sum(a * F.astype(c, a.dtype)))(v)
        assert type(g) is type(v)


def test_works_under_no_grad(xp):
    with agrad.no_grad():
        g = func.grad(lambda v: F.sum(v * v))(xp.asarray([1.0, 2.0]))
    np.testing.assert_allclose(host(g), [2.0, 4.0])


def test_variable_computed_from_constants_is_differentiated(xp):
    with agrad.no_grad():
        x = F.sin(Variable(xp.asarray([0.5])))
    c = F.sin(xp.asarray([0.5]))  # a Variable whose graph holds no differentiable leaf
    for v in (x, c):
        np.testing.assert_allclose(host(func.grad(lambda a: F.sum(a * a))(v)), 2 * np.sin([0.5]))


def test_hvp_does_not_form_the_hessian_and_matches_it(xp):
    rng = np.random.default_rng(5)
    x, v = rng.standard_normal(6), rng.standard_normal(6)

    def f(a):
        return F.sum(F.tanh(a) * a[xp.asarray([5, 4, 3, 2, 1, 0])]) + F.sum(a * a * a)

    _, hv = func.hvp(f, xp.asarray(x), xp.asarray(v))
    H = host(func.hessian(f)(xp.asarray(x)))
    np.testing.assert_allclose(host(hv), H @ v, rtol=1e-10)


# -- errors -----------------------------------------------------------------------------------
def test_errors_name_the_argument_and_what_is_allowed(xp):
    x = xp.asarray([1.0, 2.0])
    with pytest.raises(ValueError, match=r"0-d \(scalar\).*shape \(2,\).*vjp or jacrev"):
        func.grad(F.sin)(x)
    with pytest.raises(TypeError, match=r"argument 0 has dtype int64; only floating"):
        func.grad(lambda v: F.sum(v))(xp.asarray([1, 2]))
    with pytest.raises(TypeError, match=r"argument 1 must be an array .* not float"):
        func.grad(lambda a, b: F.sum(a), argnums=1)(x, 2.0)
    with pytest.raises(ValueError, match=r"argnums=2 is out of range for a call with 2"):
        func.grad(lambda a, b: F.sum(a), argnums=2)(x, x)
    with pytest.raises(TypeError, match=r"argnums must be an int or a tuple of ints"):
        func.grad(lambda a: F.sum(a), argnums=[0])(x)
    with pytest.raises(ValueError, match=r"names an argument twice"):
        func.grad(lambda a, b: F.sum(a), argnums=(0, -2))(x, x)
    with pytest.raises(TypeError, match=r"has_aux=True\): f must return a pair"):
        func.grad(lambda a: F.sum(a), has_aux=True)(x)
    with pytest.raises(TypeError, match=r"primals must be a tuple"):
        func.jvp(F.sin, x, (x,))
    with pytest.raises(ValueError, match=r"tangents 0 has shape \(3,\), its primal has shape"):
        func.jvp(F.sin, (x,), (xp.ones(3),))
    with pytest.raises(ValueError, match=r"2 cotangents for 1 outputs"):
        func.vjp(F.sin, x)[1]((x, x))
    with pytest.raises(TypeError, match=r"must return Variables or arrays"):
        func.jacrev(lambda v: 3.0)(x)
    with pytest.raises(TypeError, match=r"both be tuples or both single"):
        func.hvp(lambda v: F.sum(v), (x,), x)
