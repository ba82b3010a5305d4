"""The DeZero core on every backend: Variable, Function, backward, accumulation, cleargrad."""

from __future__ import annotations

import gc
import sys
import threading
import weakref

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Function, Parameter, Variable
from agrad.cuda import as_numpy


def scalar(v) -> float:
    return float(as_numpy(v.data if isinstance(v, Variable) else v))


def test_seed_scenario(xp):
    x = Variable(xp.asarray(3.0))
    y = F.add(x, x)
    y.backward()
    assert scalar(x.grad) == 2.0
    x.cleargrad()
    y = F.add(F.add(x, x), x)
    y.backward()
    assert scalar(x.grad) == 3.0


def test_grad_accumulates_without_cleargrad(xp):
    x = Variable(xp.asarray(3.0))
    F.add(x, x).backward()
    F.add(F.add(x, x), x).backward()
    assert scalar(x.grad) == 5.0


def test_seed_printout_matches_dezero(xp):
    x = Variable(xp.asarray(3.0))
    F.add(x, x).backward()
    assert repr(x.grad) == "variable(2.0)"


def test_grad_is_a_variable_on_the_same_backend(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    (x * x).sum().backward()
    assert isinstance(x.grad, Variable)
    assert agrad.backends.backend_of(x.grad.data) is agrad.current_backend()
    np.testing.assert_allclose(as_numpy(x.grad), [2.0, 4.0])


def test_diamond_graph(xp):
    x = Variable(xp.asarray(2.0))
    a = x**2
    y = a**2 + a**2
    y.backward()
    assert scalar(y) == 32.0
    assert scalar(x.grad) == 64.0


def test_generation_order_runs_each_function_once(xp):
    calls = []

    class Spy(Function):
        def forward(self, x):
            return x

        def backward(self, gy):
            calls.append(self)
            return gy

    x = Variable(xp.asarray(1.0))
    a = Spy()(x)
    y = Spy()(a) + Spy()(a)  # a's creator must wait for both branches
    y.backward()
    assert len(calls) == 3
    assert calls[-1] is a.creator
    assert scalar(x.grad) == 2.0


def test_deep_chain_has_no_recursion_limit(xp):
    # Dask's cost grows with the square of a chain's length (each new array merges the graph
    # so far); 1,100 steps still pass Python's recursion limit, as a recursive backward would not.
    # Freeing a 100,000-deep graph (below) is the same Python objects on every backend: NumPy's
    # fast operations check it, the others a 10,000-deep chain (15 s on JAX at 100,000)
    backend = agrad.current_backend()
    depth = 1_100 if backend.lazy else 100_000 if backend.name == "numpy" else 10_000
    assert depth > sys.getrecursionlimit()
    x = Variable(xp.asarray(0.5))
    y = x
    for _ in range(depth):
        y = y * 1.0
    y.backward()
    assert scalar(x.grad) == 1.0
    del y  # freeing a 100,000-deep graph must not overflow the C stack either
    gc.collect()


def test_retain_grad(xp):
    x = Variable(xp.asarray(2.0))
    a = x * x
    y = a * 3.0
    y.backward()
    assert y.grad is None and a.grad is None  # DeZero clears every non-leaf grad, the root's too
    x.cleargrad()
    y = (x * x) * 3.0
    a = y.creator.inputs[0]
    y.backward(retain_grad=True)
    assert scalar(y.grad) == 1.0
    assert scalar(a.grad) == 3.0
    assert scalar(x.grad) == 12.0


def test_custom_seed_gradient(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    y = x * 3.0
    y.grad = Variable(xp.asarray([10.0, 100.0]))
    y.backward()
    np.testing.assert_allclose(as_numpy(x.grad), [30.0, 300.0])


def test_backward_on_a_leaf_sets_ones(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    x.backward()
    np.testing.assert_allclose(as_numpy(x.grad), [1.0, 1.0])


def test_no_grad_records_nothing(xp):
    x = Variable(xp.asarray(2.0))
    with agrad.no_grad():
        y = x * x
    assert y.creator is None and y.generation == 0
    y = x * x
    assert y.creator is not None


def test_no_grad_is_thread_local(xp):
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def other_thread():
        inside.wait()
        y = Variable(xp.asarray(1.0)) * 2.0
        seen["creator"] = y.creator
        seen["flag"] = agrad.Config.enable_backprop
        release.set()

    worker = threading.Thread(target=other_thread)
    worker.start()
    with agrad.no_grad():
        inside.set()
        release.wait(5)
        assert agrad.Config.enable_backprop is False
    worker.join(5)
    assert seen["flag"] is True and seen["creator"] is not None


def test_using_config_restores_and_rejects_unknown_names():
    assert agrad.Config.train is True
    with agrad.test_mode():
        assert agrad.Config.train is False
    assert agrad.Config.train is True
    with (
        pytest.raises(AttributeError, match="known: enable_backprop, train"),
        agrad.using_config("trian", False),
    ):
        pass


def test_create_graph_second_derivative(xp):
    x = Variable(xp.asarray(2.0))
    y = x**4 - 2 * x**2
    y.backward(create_graph=True)
    assert scalar(x.grad) == 24.0
    gx = x.grad
    x.cleargrad()
    gx.backward()
    assert scalar(x.grad) == 44.0


def test_without_create_graph_the_gradient_has_no_graph(xp):
    x = Variable(xp.asarray(2.0))
    (x**3).backward()
    assert x.grad.creator is None


def test_newton_method_converges(xp):
    x = Variable(xp.asarray(2.0))
    for _ in range(10):
        y = x**4 - 2 * x**2
        x.cleargrad()
        y.backward(create_graph=True)
        gx = x.grad
        x.cleargrad()
        gx.backward()
        x.data = x.data - gx.data / x.grad.data
    assert abs(scalar(x) - 1.0) < 1e-10


def test_accumulation_never_writes_into_a_shared_gradient(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    y = x + x
    y.grad = Variable(xp.asarray([1.0, 1.0]))
    seed = y.grad.data
    y.backward(retain_grad=True)
    np.testing.assert_allclose(as_numpy(seed), [1.0, 1.0])
    np.testing.assert_allclose(as_numpy(x.grad), [2.0, 2.0])


def test_gradient_from_previous_backward_is_not_mutated(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    (x * 2.0).backward()
    first = x.grad
    first_data = as_numpy(first).copy()
    (x * 3.0).backward()
    np.testing.assert_allclose(as_numpy(first), first_data)
    np.testing.assert_allclose(as_numpy(x.grad), [5.0, 5.0])


def test_unchain_backward_keeps_the_roots_creator(xp):
    x = Variable(xp.asarray(1.0))
    a = x * 2.0
    b = a * 3.0
    y = b * 4.0
    y.unchain_backward()
    assert y.creator is not None
    assert a.creator is None and b.creator is None
    y.backward()
    assert x.grad is None
    assert scalar(b.grad) == 4.0  # b is a leaf now


class _StateAndOutput(Function):
    """h = 2 x and y = 3 h as one node: y is computed from h, as in an RNN step."""

    intermediate_outputs = (0,)

    def forward(self, x):
        h = x * 2.0
        return h, h * 3.0

    def vjp(self, d, xs, ys, gys):
        gh, gy = gys
        total = 0.0
        if gh is not None:
            total = total + gh * 2.0
        if gy is not None:
            total = total + gy * 6.0
        return total


def test_unchain_backward_cuts_the_intermediate_outputs_of_the_functions_it_passes(xp):
    x = Variable(xp.asarray(1.0))
    h, y = _StateAndOutput()(x * 1.0)
    (y * 4.0).unchain_backward()
    assert h.creator is None  # as if `y = 3 h` had been a node of its own
    assert y.creator is None  # (an input of the loss's creator: cut as always)
    # a function without intermediates leaves its other outputs alone
    a, b = F.split(Variable(xp.asarray([1.0, 2.0])) * 1.0, 2)
    (b * 2.0).unchain_backward()
    assert b.creator is None and a.creator is not None


def test_unchain(xp):
    y = Variable(xp.asarray(1.0)) * 2.0
    y.unchain()
    assert y.creator is None


def test_operators_with_scalars_and_arrays_on_either_side(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    a = xp.asarray([2.0, 2.0])
    cases = {
        "x+1": (x + 1, [2, 3]),
        "1+x": (1 + x, [2, 3]),
        "x-1": (x - 1, [0, 1]),
        "1-x": (1 - x, [0, -1]),
        "x*2": (x * 2, [2, 4]),
        "2*x": (2 * x, [2, 4]),
        "x/2": (x / 2, [0.5, 1]),
        "2/x": (2 / x, [2, 1]),
        "-x": (-x, [-1, -2]),
        "x**3": (x**3, [1, 8]),
        "x+a": (x + a, [3, 4]),
        "x*a": (x * a, [2, 4]),
        "x-a": (x - a, [-1, 0]),
        "x/a": (x / a, [0.5, 1]),
    }
    for name, (y, expected) in cases.items():
        assert isinstance(y, Variable), name
        np.testing.assert_allclose(as_numpy(y), expected, err_msg=name)


def test_numpy_array_on_the_left_gives_a_variable():
    x = Variable(np.array([1.0, 2.0]))
    for y in (np.array(2.0) * x, np.array(2.0) + x, np.array(2.0) - x, np.array(2.0) / x):
        assert isinstance(y, Variable)
    y = np.array([3.0, 4.0]) * x
    y.backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 4.0])


def test_arithmetic_gradients(xp):
    a = Variable(xp.asarray([1.0, 2.0]))
    b = Variable(xp.asarray([3.0, 5.0]))
    y = (a * b - a / b + b**2) / a
    y.backward()
    a0, b0 = np.array([1.0, 2.0]), np.array([3.0, 5.0])
    np.testing.assert_allclose(as_numpy(a.grad), -(b0**2) / a0**2)
    np.testing.assert_allclose(as_numpy(b.grad), 1 + 1 / b0**2 + 2 * b0 / a0)


def test_broadcast_gradients_sum_back(xp):
    a = Variable(xp.asarray([[1.0], [2.0], [3.0]]))
    b = Variable(xp.asarray([[10.0, 20.0, 30.0, 40.0]]))
    y = a * b + a - b
    y.backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (1, 4)
    np.testing.assert_allclose(as_numpy(a.grad), [[104.0], [104.0], [104.0]])
    np.testing.assert_allclose(as_numpy(b.grad), [[3.0, 3.0, 3.0, 3.0]])


def test_scalar_variable_with_matrix(xp):
    s = Variable(xp.asarray(2.0))
    m = Variable(xp.ones((2, 3)))
    (s * m).backward()
    assert scalar(s.grad) == 6.0
    np.testing.assert_allclose(as_numpy(m.grad), np.full((2, 3), 2.0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtypes_are_preserved(xp, dtype):
    x = Variable(xp.asarray([1.0, 2.0], dtype=getattr(xp, dtype)))
    y = F.sin(x * 2.0 + 1) / 3 - x**2
    assert y.dtype == getattr(xp, dtype)
    y.backward()
    assert x.grad.dtype == getattr(xp, dtype)


def test_variable_properties(xp):
    x = Variable(xp.ones((2, 3)), name="x")
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.dtype == xp.float64 and x.name == "x"
    assert x.grad is None and x.creator is None and x.generation == 0
    assert x.T.shape == (3, 2)
    assert x.reshape(3, 2).shape == (3, 2)
    assert x.reshape((6,)).shape == (6,)
    assert x.transpose().shape == (3, 2)
    assert x.transpose(1, 0).shape == (3, 2)
    assert scalar(x.sum()) == 6.0


def test_repr_matches_dezero():
    assert repr(Variable(None)) == "variable(None)"
    assert repr(Variable(np.ones((2, 3), dtype=int))) == "variable([[1 1 1]\n          [1 1 1]])"


@pytest.mark.parametrize(
    "bad", [1.0, 3, [1.0, 2.0], "abc", object(), np.float64(1.0)], ids=lambda b: type(b).__name__
)
def test_variable_rejects_non_arrays(bad):
    with pytest.raises(TypeError, match=r"is not supported|must be an array"):
        Variable(bad)


def test_bad_input_type_names_the_function():
    with pytest.raises(TypeError, match=r"Sin: unsupported input type builtins\.list"):
        F.sin([1.0, 2.0])


def test_mixed_backends_raise_a_type_error_naming_both():
    strict = agrad.get_backend("array_api_strict")
    if not strict.available:
        pytest.skip("needs array_api_strict installed to have a second backend")
    a = Variable(np.asarray([1.0]))
    b = Variable(strict.xp.asarray([1.0]))
    with pytest.raises(TypeError, match=r"Add: .*'numpy' and 'array_api_strict'"):
        a + b


def test_python_scalars_are_accepted_by_functions(xp):
    y = F.add(Variable(xp.asarray(1.0, dtype=xp.float32)), 2.0)
    assert y.dtype == xp.float32 and scalar(y) == 3.0


def test_function_returns_list_for_several_outputs(xp):
    class Split2(Function):
        def forward(self, x):
            return x * 1.0, x * 2.0

        def backward(self, g1, g2):
            return g1 + g2 * 2.0

    x = Variable(xp.asarray(3.0))
    outputs = Split2()(x)
    assert isinstance(outputs, list) and len(outputs) == 2
    (outputs[0] + outputs[1]).backward()
    assert scalar(x.grad) == 3.0


def test_reductions_give_arrays_not_scalars(xp):
    class Total(Function):
        def forward(self, x):
            return self.xp.sum(x)

        def backward(self, gy):
            return F.broadcast_to(gy, self.inputs[0].shape)

    y = Total()(Variable(xp.ones(3)))
    assert agrad.backends.is_array(y.data)


def test_dezero_style_function_subclass(xp):
    class Square(Function):
        def forward(self, x):
            return x**2

        def backward(self, gy):
            x = self.inputs[0].data
            return gy * (2 * x)  # Variable first: array-api-strict arrays reject a Variable operand

    x = Variable(xp.asarray(3.0))
    Square()(x).backward()
    assert scalar(x.grad) == 6.0
    x.cleargrad()
    y = Square()(x)
    y.backward(create_graph=True)
    assert scalar(x.grad) == 6.0


def test_bad_gradient_shape_is_an_error(xp):
    class Broken(Function):
        def forward(self, x):
            return x

        def backward(self, gy):
            return F.sum(gy)

    x = Variable(xp.ones(3))
    with pytest.raises(RuntimeError, match="gradient of shape"):
        Broken()(x).backward()


def test_function_holds_outputs_weakly(xp):
    x = Variable(xp.asarray(1.0))
    y = F.sin(x)
    f = y.creator
    assert isinstance(f.outputs[0], weakref.ref)
    assert f.inputs[0] is x
    ref = weakref.ref(y)
    del y
    assert ref() is None


def test_graph_memory_is_freed(xp):
    x = Variable(xp.ones(131_072))  # 1 MB of float64
    x_ref = weakref.ref(x.data)
    refs = []
    for _ in range(200):
        y = F.sin(x) * 2.0 + x
        y.backward()
        x.cleargrad()
        refs.append(weakref.ref(y.creator))
        del y
    gc.collect()
    assert sum(r() is not None for r in refs) == 0
    assert x_ref() is not None


def test_parameter_is_a_variable(xp):
    p = Parameter(xp.ones(2))
    assert isinstance(p, Variable)
    (p * 2.0).sum().backward()
    np.testing.assert_allclose(as_numpy(p.grad), [2.0, 2.0])


def test_as_array_and_as_variable():
    assert agrad.as_array(1.5).shape == ()
    a = np.ones(2)
    assert agrad.as_array(a) is a
    v = agrad.as_variable(a)
    assert isinstance(v, Variable) and v.data is a
    assert agrad.as_variable(v) is v


def test_pow_rejects_variable_exponent(xp):
    x = Variable(xp.asarray(2.0))
    with pytest.raises(TypeError, match="exponent must be a Python number"):
        x ** Variable(xp.asarray(2.0))


def test_recursion_limit_untouched():
    assert sys.getrecursionlimit() <= 100_000


class _OneGradientForTwoInputs(agrad.Function):
    def forward(self, x0, x1):
        return x0 + x1

    def vjp(self, d, xs, ys, gys):
        return gys[0]  # one array where two gradients are due


class _ThreeGradientsForTwoInputs(_OneGradientForTwoInputs):
    def vjp(self, d, xs, ys, gys):
        return gys[0], gys[0], gys[0]


class _GradientsAsAList(_OneGradientForTwoInputs):
    def vjp(self, d, xs, ys, gys):
        return [gys[0], gys[0] * 2]


@pytest.mark.parametrize(
    ("function", "count"), [(_OneGradientForTwoInputs, 1), (_ThreeGradientsForTwoInputs, 3)]
)
def test_a_vjp_returning_the_wrong_number_of_gradients_is_an_error(xp, function, count):
    a, b = agrad.Variable(xp.asarray([1.0])), agrad.Variable(xp.asarray([2.0]))
    y = function()(a, b)
    with pytest.raises(RuntimeError, match=f"returned {count} gradients for 2 inputs"):
        y.backward()


def test_a_vjp_may_return_its_gradients_as_a_list(xp):
    a, b = agrad.Variable(xp.asarray([1.0])), agrad.Variable(xp.asarray([2.0]))
    _GradientsAsAList()(a, b).backward()
    assert float(a.grad.data[0]) == 1.0 and float(b.grad.data[0]) == 2.0
