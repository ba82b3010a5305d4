"""One ``Function`` instance called several times: every call is a node of its own (issue 22).

A function records its inputs, outputs and the arrays its gradient reads on itself; a second
call on the same instance used to overwrite what the first call's gradient needs, without an
error. Now a call on an instance that is already a node of a graph runs on a fresh copy.
"""

from __future__ import annotations

import numpy as np

import agrad
import agrad.functions as F
from agrad import Function, Variable
from agrad.cuda import as_numpy


def host(v):
    return np.asarray(as_numpy(v.data if isinstance(v, Variable) else v))


class Square(Function):
    """DeZero's style: backward reads ``self.inputs``."""

    def forward(self, x):
        return x**2

    def backward(self, gy):
        (x,) = self.inputs
        return 2 * x * gy


class Scale(Function):
    """Keeps an array set in ``forward`` for its vjp (``retain_attributes``)."""

    retain_inputs, retain_outputs, retain_attributes = (), (), ("factor",)

    def forward(self, x):
        self.factor = x * 0 + x.shape[0]
        return x * self.factor

    def vjp(self, d, xs, ys, gys):
        return gys[0] * self.factor


def test_one_exp_instance_on_two_inputs(xp):
    a = Variable(xp.asarray([1.0, 2.0]))
    b = Variable(xp.asarray([0.5]))
    e = F.Exp()
    (F.sum(e(a)) + F.sum(e(b))).backward()
    assert a.grad is not None and b.grad is not None
    np.testing.assert_allclose(host(a.grad), np.exp([1.0, 2.0]))
    np.testing.assert_allclose(host(b.grad), np.exp([0.5]))


def test_one_dezero_style_instance_twice_in_a_chain(xp):
    x = Variable(xp.asarray(3.0))
    sq = Square()
    y = sq(sq(x))
    y.backward()
    assert host(y) == 81.0
    assert host(x.grad) == 4 * 3.0**3


def test_settings_of_the_instance_are_kept(xp):
    x = Variable(xp.asarray(2.0))
    cube = F.Pow(3)
    y = cube(cube(x))  # x ** 9
    y.backward()
    assert host(y) == 2.0**9
    assert host(x.grad) == 9 * 2.0**8


def test_reuse_after_a_backward_released_the_first_call(xp):
    x = Variable(xp.asarray(2.0))
    sq = Square()
    sq(x).backward()
    assert host(x.grad) == 4.0
    x.cleargrad()
    sq(x * 3.0).backward()  # the new node is not the released one
    assert host(x.grad) == 36.0


def test_a_call_without_recording_leaves_the_recorded_one_intact(xp):
    a = Variable(xp.asarray([1.0, 1.0]))
    f = Scale()
    y = f(a)
    with agrad.no_grad():
        f(xp.asarray([1.0, 1.0, 1.0]))  # would set factor to 3
    F.sum(y).backward()
    np.testing.assert_allclose(host(a.grad), [2.0, 2.0])


def test_second_derivative_through_a_reused_instance(xp):
    x = Variable(xp.asarray(2.0))
    sq = F.Pow(2)
    y = sq(sq(x))  # x ** 4
    (gx,) = agrad.grad(y, x, create_graph=True)
    (ggx,) = agrad.grad(gx, x)
    assert host(gx) == 4 * 2.0**3
    assert host(ggx) == 12 * 2.0**2


def test_the_first_call_stays_on_the_instance(xp):
    x = Variable(xp.asarray(2.0))
    e = F.Exp()
    y1, y2 = e(x), e(x)
    assert y1.creator is e
    assert y2.creator is not e and type(y2.creator) is F.Exp
