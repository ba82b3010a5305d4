"""Core v2: the graph keeps only what backward reads, and backward releases it.

Every test runs on each backend of the ``xp`` fixture. Arrays are followed with weak references
(NumPy, CuPy and array-api-strict arrays all allow them): an array the graph no longer holds dies
as soon as nothing else refers to it.
"""

from __future__ import annotations

import ast
import gc
import inspect
import weakref

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Function, Parameter, Variable, ops
from agrad.core import _kept
from agrad.cuda import as_numpy
from agrad.models import MLP


def host(v):
    return as_numpy(v.data if isinstance(v, Variable) else v)


def randn(xp, shape, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


# -- what a function keeps -----------------------------------------------------------------
def test_sigmoid_keeps_its_output_not_its_input(xp):
    x = Variable(randn(xp, (3, 4)))
    y = F.sigmoid(x * 2.0)
    f = y.creator
    assert f._saved_inputs == ()
    assert _kept(f._saved_outputs)[0] is y.data


def test_add_and_sum_keep_nothing_but_shapes(xp):
    a, b = Variable(randn(xp, (3, 4))), Variable(randn(xp, (4,)))
    y = a + b
    s = F.sum(y, axis=0)
    for f in (y.creator, s.creator):
        assert f._saved_inputs == () and f._saved_outputs == ()
    s.backward()
    assert host(b.grad).tolist() == [3.0] * 4  # the shapes were enough to unbroadcast


def test_linear_keeps_its_input_and_weight_not_the_bias(xp):
    x, W, b = (
        Variable(randn(xp, shape, seed)) for seed, shape in enumerate([(5, 3), (3, 2), (2,)])
    )
    y = F.linear(x, W, b)
    saved = y.creator._saved_inputs
    assert saved[0] is x.data and saved[1] is W.data and saved[2] is None
    assert y.creator._saved_outputs == ()


def test_an_intermediate_nobody_holds_is_freed_during_forward(xp):
    # sigmoid reads only its output: the pre-activation dies as soon as the forward moves on
    x = Variable(randn(xp, (50, 50)))
    pre = x * 3.0
    pre_data = weakref.ref(pre.data)
    y = F.sigmoid(pre)
    del pre
    gc.collect()
    assert pre_data() is None
    y.backward()  # and the gradient is still right
    s = 1 / (1 + np.exp(-3 * host(x)))
    np.testing.assert_allclose(host(x.grad), 3 * s * (1 - s), rtol=1e-9)


def test_backward_releases_every_array_it_used(xp):
    model = MLP((8, 8, 3), activation=F.sigmoid)
    x = randn(xp, (16, 5))
    t = xp.asarray(np.arange(16) % 3)
    loss = F.softmax_cross_entropy(model(x), t)
    kept = []
    pending, seen = [loss.creator], set()
    while pending:  # every array any function of the graph kept
        f = pending.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        for group in (_kept(f._saved_inputs), _kept(f._saved_outputs)):
            kept += [weakref.ref(a) for a in group or () if a is not None]
        pending += [n.creator for n in f.input_nodes if n is not None and n.creator is not None]
    held = {id(p.data) for p in model.params()} | {id(x), id(t)}
    assert kept
    loss.backward()
    gc.collect()
    alive = [r() for r in kept if r() is not None and id(r()) not in held]
    assert alive == [], f"{len(alive)} arrays outlived backward()"


def test_values_the_user_holds_keep_their_data(xp):
    x = Variable(randn(xp, (4,)))
    h = F.tanh(x)
    y = F.sum(F.exp(h))
    expected = np.tanh(host(x))
    y.backward()
    np.testing.assert_allclose(host(h), expected)  # h's data is the user's: never released
    np.testing.assert_allclose(host(y), np.exp(expected).sum())


# -- a second backward ---------------------------------------------------------------------
def test_second_backward_through_a_released_graph_raises_and_names_retain_graph(xp):
    x = Variable(randn(xp, (3,)))
    y = F.sum(F.tanh(x))
    y.backward()
    with pytest.raises(RuntimeError, match=r"Tanh a second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_keeps_the_arrays_and_a_second_backward_accumulates(xp):
    x = Variable(randn(xp, (3,)))
    y = F.sum(F.tanh(x) * F.exp(x))
    y.backward(retain_graph=True)
    first = host(x.grad).copy()
    y.backward()
    np.testing.assert_allclose(host(x.grad), 2 * first, rtol=1e-12)
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()  # the second one released it


def test_a_graph_of_functions_that_keep_nothing_can_be_walked_twice(xp):
    # as in PyTorch: nothing was released, so nothing can be wrong
    x = Variable(randn(xp, (3,)))
    y = F.sum(x * 2.0 + x)
    y.backward()
    y.backward()
    assert host(x.grad).tolist() == [6.0] * 3


def test_create_graph_implies_retain_graph_and_double_backward_works(xp):
    x = Variable(xp.asarray(2.0))
    y = x**3
    y.backward(create_graph=True)
    gx = x.grad
    assert float(host(gx)) == 12.0
    x.cleargrad()
    gx.backward()
    assert float(host(x.grad)) == 12.0  # d(3x^2)/dx at 2
    x.cleargrad()
    y.backward()  # the first graph was kept by create_graph
    assert float(host(x.grad)) == 12.0


def test_create_graph_after_a_release_raises(xp):
    x = Variable(xp.asarray(2.0))
    y = F.sin(x) * x
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward(create_graph=True)


def test_double_backward_through_intermediates_nobody_holds(xp):
    # the retained arrays are turned back into Variables on the original nodes, so the second
    # derivative reaches x through intermediates whose Variables are gone
    x = Variable(randn(xp, (4,)))
    y = F.sum(F.sin(x * 2.0))
    (gx,) = agrad.grad(y, x, create_graph=True)
    F.sum(gx).backward()
    np.testing.assert_allclose(host(x.grad), -4 * np.sin(2 * host(x)), rtol=1e-12)


# -- DeZero-style functions and truncated backprop ------------------------------------------
class DeZeroSquareExp(Function):
    """exp(x^2) written as in the book: backward reads self.inputs and self.outputs."""

    def forward(self, x):
        return self.xp.exp(x * x)

    def backward(self, gy):
        x = self.inputs[0]
        y = self.outputs[0]()  # a weak reference, as in DeZero
        return gy * y * 2 * x


def test_dezero_style_function_keeps_what_it_may_read(xp):
    x = Variable(randn(xp, (3,)) * 0.5)
    y = F.sum(DeZeroSquareExp()(x * 1.0))  # its input and output are held by nobody
    gc.collect()
    y.backward()
    v = host(x)
    np.testing.assert_allclose(host(x.grad), 2 * v * np.exp(v * v), rtol=1e-12)


def test_dezero_style_function_twice_differentiable(xp):
    x = Variable(xp.asarray(0.5))
    y = DeZeroSquareExp()(x)
    (gx,) = agrad.grad(y, x, create_graph=True)
    gx.backward()
    expected = (2 + 4 * 0.25) * np.exp(0.25)  # d/dx 2x e^{x^2}
    np.testing.assert_allclose(float(host(x.grad)), expected, rtol=1e-12)


def test_truncated_bptt_on_released_graphs(xp):
    # the book's loop: backward, then unchain_backward, then keep adding to the same loss
    w = Parameter(xp.asarray(0.7))
    h = Variable(xp.asarray(0.1))
    loss = 0
    windows = []
    for step in range(6):
        h = F.tanh(h * w + float(step) * 0.1)
        loss = loss + h * h
        if step % 3 == 2:
            w.cleargrad()
            loss.backward()
            loss.unchain_backward()
            windows.append(float(host(w.grad)))
    # the second window starts from the first's last h as a constant: recompute it so
    h_value = 0.1
    for step in range(3):
        h_value = np.tanh(h_value * 0.7 + step * 0.1)
    w2 = Parameter(xp.asarray(0.7))
    h2 = Variable(xp.asarray(h_value))
    total = 0
    for step in range(3, 6):
        h2 = F.tanh(h2 * w2 + float(step) * 0.1)
        total = total + h2 * h2
    total.backward()
    np.testing.assert_allclose(windows[1], float(host(w2.grad)), rtol=1e-12)


def test_unchain_backward_cuts_a_released_graph(xp):
    x = Variable(randn(xp, (3,)))
    h = F.exp(F.sin(x))
    t = h * 2.0
    y = F.sum(t)
    y.backward()
    y.unchain_backward()
    assert h.creator is None and t.creator is None and y.creator is not None  # as DeZero
    x.cleargrad()
    y.backward()  # stops at t, which keeps its data and now takes the gradient
    assert x.grad is None and h.grad is None and host(t.grad).tolist() == [1.0] * 3
    np.testing.assert_allclose(host(t), 2 * np.exp(np.sin(host(x))))


# -- gradients the user can reach ----------------------------------------------------------
def test_leaf_gradients_are_writable_and_not_shared(xp):
    a, b = Variable(randn(xp, (3,))), Variable(randn(xp, (3,)))
    F.sum(a + b).backward()  # both get the broadcast seed through Sum and Add
    assert a.grad.data is not b.grad.data
    a.grad.data *= 0.5  # a user's own clipping
    assert host(a.grad).tolist() == [0.5] * 3 and host(b.grad).tolist() == [1.0] * 3


def test_retained_intermediate_gradients_are_writable(xp):
    x = Variable(randn(xp, (3,)))
    h = x * 1.0
    F.sum(h).backward(retain_grad=True)
    h.grad.data *= 2.0
    assert host(x.grad).tolist() == [1.0] * 3


def test_integer_leaves_get_floating_gradients_and_boolean_outputs_refuse_backward(xp):
    # DeZero's book differentiates integer Variables (steps 37-40): see test_engine_integers.py
    n = Variable(xp.asarray([1, 2, 3]))
    x = Variable(xp.asarray([1.0, 2.0, 3.0]))
    y = F.sum(x * F.astype(n, x.dtype))
    y.backward()
    assert host(n.grad).tolist() == [1.0, 2.0, 3.0] and host(x.grad).tolist() == [1.0, 2.0, 3.0]
    assert n.grad.dtype == x.dtype
    with pytest.raises(TypeError, match="only floating-point and integer outputs"):
        Variable(xp.asarray([True, False])).backward()


def test_gradients_take_their_variables_dtype(xp):
    W = Parameter(xp.asarray(np.ones((3, 2)), dtype=xp.float32))
    x = xp.asarray(np.ones((4, 3)))  # float64 data, a float32 weight
    F.sum(F.matmul(x, W)).backward()
    assert W.grad.dtype == xp.float32


def test_hand_set_output_gradient_is_checked(xp):
    x = Variable(randn(xp, (3,)))
    y = x * 2.0
    y.grad = Variable(xp.ones((2,), dtype=xp.float64))
    with pytest.raises(ValueError, match=r"shape \(2,\).*shape \(3,\)"):
        y.backward()
    y.grad = Variable(np.ones(3)) if agrad.current_backend().name != "numpy" else None
    if y.grad is not None:
        with pytest.raises(TypeError, match=r"different|lives on"):
            y.backward()
    y.grad = Variable(xp.asarray([1.0, 2.0, 3.0]))
    y.backward()
    assert host(x.grad).tolist() == [2.0, 4.0, 6.0]


def test_hand_set_gradient_from_another_backend_is_named():
    strict = agrad.get_backend("array_api_strict")
    if not strict.available:
        pytest.skip(f"needs array-api-strict ({strict.probe()[1]})")
    x = Variable(np.ones(3))
    y = x * 2.0
    y.grad = Variable(strict.asarray([1.0, 1.0, 1.0]))
    with pytest.raises(TypeError, match=r"'numpy'.*'array_api_strict'"):
        y.backward()


# -- what users reach for first --------------------------------------------------------------
def test_python_numbers_from_one_element_variables(xp):
    v = Variable(xp.asarray([2.5]))
    assert v.item() == 2.5 and float(v) == 2.5 and int(v) == 2
    assert format(v, ".3f") == "2.500" and f"{Variable(xp.asarray(1.0)):.1f}" == "1.0"
    with pytest.raises(ValueError, match="exactly one element"):
        Variable(xp.asarray([1.0, 2.0])).item()


def test_len_of_a_0d_variable_says_why(xp):
    with pytest.raises(TypeError, match="0-d"):
        len(Variable(xp.asarray(1.0)))
    assert len(Variable(xp.ones((4, 2)))) == 4


def test_rpow_is_differentiable(xp):
    x = Variable(xp.asarray([0.0, 1.0, 2.0]))
    y = 2**x
    F.sum(y).backward()
    np.testing.assert_allclose(host(y), [1.0, 2.0, 4.0])
    np.testing.assert_allclose(host(x.grad), np.log(2) * np.array([1.0, 2.0, 4.0]), rtol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        (-2.0) ** x


def test_the_hint_for_lists_works(xp):
    with pytest.raises(TypeError, match=r"agrad\.as_array"):
        Variable([1.0, 2.0])
    v = Variable(agrad.as_array([1.0, 2.0]))
    assert host(v).tolist() == [1.0, 2.0]


# -- the vjp contract ----------------------------------------------------------------------
def _names_used_on_d() -> dict[str, list[str]]:
    """``d.<name>`` attributes read by every vjp of agrad.functions: name -> where."""
    used: dict[str, list[str]] = {}
    for cls in _function_classes():
        vjp = cls.__dict__.get("vjp")
        if vjp is None:
            continue
        tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(vjp)))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "d"
            ):
                used.setdefault(node.attr, []).append(cls.__name__)
    return used


def _function_classes() -> list[type]:
    found, pending = [], [Function]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("agrad.functions"):
                found.append(sub)
            pending.append(sub)
    return found


def test_every_name_a_vjp_calls_exists_in_both_vocabularies():
    used = _names_used_on_d()
    assert len(used) > 10  # the scan sees the vjps
    array_ops = ops.array_ops(agrad.get_backend("numpy"))
    missing = {
        name: where
        for name, where in used.items()
        if not hasattr(F, name) or not callable(getattr(array_ops, name, None))
    }
    assert not missing, f"d.<name> without both versions: {missing}"
    for name in used:
        if name in ops.ArrayOps._DIRECT:
            continue
        twin = ops._TWINS.get(name) or getattr(ops.ArrayOps, name)
        array_params = list(inspect.signature(twin).parameters)[1:]  # after `xp` / `self`
        function_params = list(inspect.signature(getattr(F, name)).parameters)
        assert function_params[: len(array_params)] == array_params, name


def test_every_function_declares_what_its_vjp_reads():
    undeclared = [
        cls.__name__
        for cls in _function_classes()
        if cls._vjp_based and (cls.retain_inputs is None or cls.retain_outputs is None)
    ]
    assert undeclared == []


def test_one_kept_array_serves_inputs_and_higher_order_gradients(xp):
    # sin keeps its one input and exp its one output, each alone (no 1-tuple): the DeZero
    # attributes and create_graph must rebuild them from that, the Variables being gone
    x = Variable(randn(xp, (3,)))
    y = F.exp(F.sin(x * 1.0))
    sin = y.creator.input_nodes[0].creator
    np.testing.assert_array_equal(host(sin.inputs[0]), host(x))
    y.backward(create_graph=True)
    gx = x.grad
    np.testing.assert_allclose(host(gx), np.cos(host(x)) * np.exp(np.sin(host(x))), rtol=1e-12)
    x.cleargrad()
    F.sum(gx).backward()  # d/dx of cos(x) exp(sin x)
    expected = (np.cos(host(x)) ** 2 - np.sin(host(x))) * np.exp(np.sin(host(x)))
    np.testing.assert_allclose(host(x.grad), expected, rtol=1e-12)
