"""The core's fast paths give what the general paths give.

``backward()`` runs every vjp on plain arrays (one-output and chain shortcuts included);
``backward(create_graph=True)`` runs the same rules on Variables through ``agrad.functions``.
Both must produce the same gradients on any graph shape. Also: gradients of raw-array inputs,
the number-type cache, and the one-Variable shortcut of ``Function.__call__``.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Function, Variable
from agrad.core import _is_number
from agrad.cuda import as_numpy


def _chain(x):
    # the benchmark's chain: the leaf is added back every fourth op, so its gradient accumulates
    y = x
    for _ in range(5):
        y = F.exp(F.sin(y)) * 0.5 + x
    return y


def _diamond(x):
    # several functions wait at once, at equal and at different generations
    a = F.sin(x)
    b = F.cos(x)
    c = a * b
    d = F.tanh(a) + F.exp(b * 0.1) - c
    return d * a + b / (1.0 + c * c)


def _split_and_rejoin(x):
    # a two-output function (split) whose outputs are used unequally; one output unused
    first, second, third = F.split(x * 2.0, 3)
    del third
    return F.concat([F.sin(first) * second, second], axis=0) * 3.0


def _shared_leaf_two_roots(x):
    y = x * x
    return y * F.sin(y) + y


GRAPHS = [_chain, _diamond, _split_and_rejoin, _shared_leaf_two_roots]


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.__name__.strip("_"))
def test_array_path_matches_graph_path(xp, graph):
    data = np.linspace(-1.0, 1.0, 6)
    fast = Variable(xp.asarray(data))
    graph(fast).backward()
    general = Variable(xp.asarray(data))
    graph(general).backward(create_graph=True)
    assert fast.grad is not None and general.grad is not None
    np.testing.assert_allclose(as_numpy(fast.grad.data), as_numpy(general.grad.data), rtol=1e-12)


@pytest.mark.parametrize("graph", GRAPHS, ids=lambda g: g.__name__.strip("_"))
def test_retain_grad_matches_graph_path(xp, graph):
    data = np.linspace(-1.0, 1.0, 6)
    grads = []
    for create_graph in (False, True):
        x = Variable(xp.asarray(data))
        y = graph(x)
        y.backward(retain_grad=True, create_graph=create_graph)
        grads.append((as_numpy(x.grad.data), as_numpy(y.grad.data)))
    for fast, general in zip(*grads):
        np.testing.assert_allclose(fast, general, rtol=1e-12)


def test_chain_gradient_is_exact(xp):
    # deep enough to go through the no-heap shortcut many times; Dask computes a graph by
    # recursing through it, which meets Python's recursion limit at about 250 chained tanh
    # with their gradients (pure Dask too), so it gets 200
    depth = 200 if agrad.current_backend().lazy else 1_000
    x = Variable(xp.asarray([0.3]))
    y = x
    for _ in range(depth):
        y = F.tanh(y)
    y.backward()
    # reference: the chain rule by hand
    value, grad = 0.3, 1.0
    values = []
    for _ in range(depth):
        value = np.tanh(value)
        values.append(value)
    for v in reversed(values):
        grad *= 1 - v * v
    np.testing.assert_allclose(as_numpy(x.grad.data), [grad], rtol=1e-12)


@pytest.mark.parametrize("shape", [(), (1,), (1, 1), (2,), (3, 2)])
def test_gradients_used_many_times_sum_exactly_whatever_their_size(xp, shape):
    # a sum of one element is added out of place each time, a larger one in place into the
    # array the pass made for it: both into a leaf's gradient and into an intermediate's
    x = Variable(xp.asarray(np.full(shape, 0.5)))
    h = x * 2.0
    y = x * 1.0
    for _ in range(20):
        y = y + x * 1.0 + h
    F.sum(y).backward()
    np.testing.assert_array_equal(as_numpy(x.grad.data), np.full(shape, 21.0 + 40.0))


class _Twice(Function):
    """A DeZero-style Function (``backward`` on Variables), mixed into a vjp-based graph."""

    def forward(self, x):
        return x * 2.0

    def backward(self, gy):
        return gy * 2.0


def test_dezero_style_function_in_a_fast_graph(xp):
    data = np.array([0.5, -1.5])
    results = []
    for create_graph in (False, True):
        x = Variable(xp.asarray(data))
        y = F.sin(_Twice()(F.exp(x))) * x
        y.backward(create_graph=create_graph)
        results.append(as_numpy(x.grad.data))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)


def test_raw_array_inputs_get_no_gradient(xp):
    x = xp.asarray([[1.0, 2.0]])
    W = Variable(xp.asarray([[1.0], [3.0]]))
    y = F.matmul(x, W)
    func = y.creator
    assert not func.needs_input_grad(0) and func.needs_input_grad(1)
    y.backward()
    assert func.inputs[0].grad is None  # nobody holds the wrapper Variable
    np.testing.assert_allclose(as_numpy(W.grad.data), [[1.0], [2.0]])


def test_variable_inputs_need_gradients(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    y = x * x
    assert y.creator.needs_input_grad(0) and y.creator.needs_input_grad(1)


class _SkipsRawInput(Function):
    """x0 * x1 whose vjp leaves out the gradient a caller cannot read."""

    def forward(self, x0, x1):
        return x0 * x1

    def vjp(self, d, xs, ys, gys):
        gx0 = gys[0] * xs[1] if self.needs_input_grad(0) else None
        gx1 = gys[0] * xs[0] if self.needs_input_grad(1) else None
        return gx0, gx1


@pytest.mark.parametrize("create_graph", [False, True])
def test_vjp_may_skip_raw_inputs(xp, create_graph):
    w = Variable(xp.asarray([3.0, 4.0]))
    y = _SkipsRawInput()(xp.asarray([1.0, 2.0]), w)
    y.backward(create_graph=create_graph)
    np.testing.assert_allclose(as_numpy(w.grad.data), [1.0, 2.0])


def test_number_cache_follows_abc_registration():
    class Amount:
        pass

    assert not _is_number(Amount())
    numbers.Number.register(Amount)  # changes abc's cache token, which empties the cache
    assert _is_number(Amount())
    assert _is_number(1.5) and _is_number(np.float32(2.0)) and not _is_number("1")


def test_no_grad_outputs_have_no_creator(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    with agrad.no_grad():
        y = F.sin(x)
        z = x + x
    assert y.creator is None and y.generation == 0
    assert z.creator is None and z.generation == 0
    w = F.sin(x)
    assert w.creator is not None and w.generation == 1 and w.creator.generation == 0


def test_each_function_class_runs_its_own_copy_of_call_unless_it_has_its_own():
    # copies of Function.__call__ keep CPython's per-code-object specializations monomorphic
    # (benchmarks/README.md); a class with a __call__ of its own, and its subclasses, keep it
    tanh_call, exp_call = vars(F.Tanh)["__call__"], vars(F.Exp)["__call__"]
    assert tanh_call is not exp_call
    assert tanh_call.__code__ is not Function.__call__.__code__
    assert tanh_call.__code__.co_code == Function.__call__.__code__.co_code
    assert tanh_call.__qualname__ == "Tanh.__call__"
    assert inspect.signature(tanh_call) == inspect.signature(Function.__call__)

    calls = []

    class Counted(Function):
        def __call__(self, *inputs):
            calls.append(type(self).__name__)
            return super().__call__(*inputs)

        def forward(self, x):
            return x * 2

        def vjp(self, d, xs, ys, gys):
            return gys[0] * 2

    class CountedToo(Counted):
        pass

    class Plain(Function):
        def forward(self, x):
            return x + 1

    assert vars(Counted)["__call__"] is Counted.__call__
    assert "__call__" not in vars(CountedToo)
    assert "__call__" in vars(Plain)
    x = Variable(np.array([1.0, 2.0]))
    y = CountedToo()(Counted()(x))
    y.backward()
    assert calls == ["Counted", "CountedToo"]
    np.testing.assert_array_equal(x.grad.data, [4.0, 4.0])
    np.testing.assert_array_equal(Plain()(x).data, [2.0, 3.0])


@pytest.mark.parametrize("container", [tuple, list])
def test_a_vjp_may_return_its_gradients_as_a_list_or_a_tuple(xp, container):
    # the backward loop takes a lone array as one input's gradient and a list or tuple as one
    # gradient per input; a one-input vjp may also wrap its gradient in either
    class Scale(Function):
        retain_inputs = retain_outputs = ()

        def forward(self, x0, x1):
            return x0 * 3 + x1

        def vjp(self, d, xs, ys, gys):
            return container([gys[0] * 3, gys[0]])

    class Twice(Function):
        retain_inputs = retain_outputs = ()

        def forward(self, x):
            return x * 2

        def vjp(self, d, xs, ys, gys):
            return container([gys[0] * 2])

    a = Variable(xp.asarray([1.0, 2.0]))
    b = Variable(xp.asarray([5.0, 6.0]))
    Twice()(Scale()(a, b)).backward()
    assert as_numpy(a.grad.data).tolist() == [6.0, 6.0]
    assert as_numpy(b.grad.data).tolist() == [2.0, 2.0]


def test_a_dezero_style_rule_wins_over_an_inherited_vjp_and_raises_its_own_errors(xp):
    # the backward loop calls every function's vjp; a class that overrides DeZero's backward
    # gets a vjp that runs it, also below a vjp-based base and in its own subclasses
    class DoubledExp(F.Exp):
        def backward(self, gy):
            (y,) = [o() for o in self.outputs]
            return 2 * gy * y

    class StillDoubled(DoubledExp):
        pass

    class Broken(Function):
        def forward(self, x):
            return x * 1

        def backward(self, gy):
            raise LookupError("from the user's backward")

    assert not StillDoubled._vjp_based and F.Exp._vjp_based
    for cls in (DoubledExp, StillDoubled):
        x = Variable(xp.asarray([0.0, 1.0]))
        cls()(x).backward()
        np.testing.assert_allclose(as_numpy(x.grad.data), 2 * np.exp([0.0, 1.0]))
        x.cleargrad()
        y = cls()(x)
        y.backward(create_graph=True)  # graph mode: the same rule on Variables
        np.testing.assert_allclose(as_numpy(x.grad.data), 2 * np.exp([0.0, 1.0]))
    with pytest.raises(LookupError, match="from the user's backward"):
        Broken()(Variable(xp.asarray([1.0]))).backward()
    with pytest.raises(NotImplementedError, match="backward is not implemented"):

        class NoRule(Function):
            def forward(self, x):
                return x * 1

        NoRule()(Variable(xp.asarray([1.0]))).backward()
