"""A custom vjp that reads what its function did not retain gets an error naming it (issue 22).

A vjp receives a ``VariableNode`` (shape and dtype only) for an input and None for an output
that the function did not retain; computing with it used to fail with ``unsupported operand
type(s) for *: 'float' and 'VariableNode'``, naming neither the function nor the fix.
"""

from __future__ import annotations

import numpy as np
import pytest

from agrad import Function, Variable
from agrad.cuda import as_numpy


def host(v):
    return np.asarray(as_numpy(v.data if isinstance(v, Variable) else v))


class ScaleByW(Function):
    """x * w, whose vjp reads w (input 1) but retains only x (input 0)."""

    retain_inputs, retain_outputs = (0,), ()

    def forward(self, x, w):
        return x * w

    def vjp(self, d, xs, ys, gys):
        return gys[0] * xs[1], gys[0] * xs[0]


class SinNothingKept(Function):
    """sin, whose vjp calls an op (not an operator) on an input it did not retain."""

    retain_inputs, retain_outputs = (), ()

    def forward(self, x):
        return self.xp.sin(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * d.cos(xs[0])


class ExpOutputNotKept(Function):
    """exp, whose vjp reads its output without retaining it."""

    retain_inputs, retain_outputs = (), ()

    def forward(self, x):
        return self.xp.exp(x)

    def vjp(self, d, xs, ys, gys):
        return gys[0] * ys[0]


@pytest.mark.parametrize("create_graph", [False, True])
def test_operator_on_an_input_not_retained_names_it(xp, create_graph):
    x = Variable(xp.asarray([1.0, 2.0]))
    w = Variable(xp.asarray([3.0, 4.0]))
    y = ScaleByW()(x, w)
    with pytest.raises(TypeError, match=r"ScaleByW\.vjp read input 1, which ScaleByW did not") as e:
        y.backward(create_graph=create_graph)
    assert "retain_inputs = (0, 1)" in str(e.value)


@pytest.mark.parametrize("create_graph", [False, True])
def test_an_op_on_an_input_not_retained_names_it(xp, create_graph):
    x = Variable(xp.asarray([1.0, 2.0]))
    with pytest.raises(
        TypeError, match=r"SinNothingKept\.vjp read input 0.*retain_inputs = \(0,\)"
    ):
        SinNothingKept()(x).backward(create_graph=create_graph)


@pytest.mark.parametrize("create_graph", [False, True])
def test_an_output_not_retained_is_named(xp, create_graph):
    x = Variable(xp.asarray([1.0, 2.0]))
    with pytest.raises(
        TypeError, match=r"ExpOutputNotKept\.vjp got None for output 0.*retain_outputs"
    ):
        ExpOutputNotKept()(x).backward(create_graph=create_graph)


def test_declaring_what_the_vjp_reads_fixes_it(xp):
    class Fixed(ScaleByW):
        retain_inputs = (0, 1)

    x = Variable(xp.asarray([1.0, 2.0]))
    w = Variable(xp.asarray([3.0, 4.0]))
    Fixed()(x, w).backward()
    np.testing.assert_allclose(host(x.grad), [3.0, 4.0])
    np.testing.assert_allclose(host(w.grad), [1.0, 2.0])


def test_a_vjp_error_of_another_kind_passes_through(xp):
    class Broken(SinNothingKept):
        def vjp(self, d, xs, ys, gys):
            raise ValueError("something else")

    with pytest.raises(ValueError, match="something else"):
        Broken()(Variable(xp.asarray([1.0]))).backward()
