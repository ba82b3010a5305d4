"""Bad arguments get an error that names the function, the argument, the value and what is
allowed (issue 22), on every backend."""

from __future__ import annotations

import operator

import numpy as np
import pytest
from fn_checks import host

import agrad.functions as F
from agrad import Variable


def _x(xp, shape=(2, 3)):
    return Variable(xp.asarray(np.arange(float(np.prod(shape))).reshape(shape)))


def test_concat_and_stack_of_nothing(xp):
    with pytest.raises(ValueError, match=r"concat: xs is empty; expected at least one"):
        F.concat([])
    with pytest.raises(ValueError, match=r"stack: xs is empty; expected at least one"):
        F.stack([])


def test_softmax_axis_out_of_range(xp):
    x = _x(xp)
    for f, name in ((F.softmax, "softmax"), (F.log_softmax, "log_softmax")):
        with pytest.raises(F.AxisError, match=rf"{name}: axis=5 is out of range .*-2 <= axis < 2"):
            f(x, axis=5)
        with pytest.raises(
            F.AxisError, match=r"default axis=1 is for a batch of rows: pass axis=0"
        ):
            f(Variable(xp.asarray([1.0, 2.0])))
    np.testing.assert_allclose(
        host(F.softmax(Variable(xp.asarray([0.0, 0.0])), axis=0)), [0.5, 0.5]
    )


def test_reshape_takes_an_int_and_refuses_floats(xp):
    x = _x(xp)
    y = F.reshape(x, 6)
    assert y.shape == (6,)
    assert x.reshape(6).shape == (6,)
    with pytest.raises(
        TypeError, match=r"reshape: shape must be an int or a tuple of ints, not \(2\.0, 3\)"
    ):
        F.reshape(x, (2.0, 3))
    with pytest.raises(TypeError, match=r"reshape: shape must be .* not \(True, 6\)"):
        F.reshape(x, (True, 6))
    with pytest.raises(ValueError, match=r"reshape: shape=\(-2, -3\) has a negative size"):
        F.reshape(x, (-2, -3))
    with pytest.raises(TypeError, match=r"broadcast_to: shape must be"):
        F.broadcast_to(x, (2.0, 3))


def test_leaky_relu_slope_must_be_a_number(xp):
    with pytest.raises(TypeError, match=r"leaky_relu: slope must be a real number, not 'a'"):
        F.leaky_relu(_x(xp), "a")


def test_batch_norm_gamma_of_the_wrong_shape(xp):
    x = _x(xp)
    gamma, beta = xp.ones((2,)), xp.zeros((3,))
    with pytest.raises(ValueError, match=r"batch_norm: gamma must have shape \(3,\).*not \(2,\)"):
        F.batch_norm(x, gamma, beta, xp.zeros((3,)), xp.ones((3,)))
    with pytest.raises(ValueError, match=r"batch_norm: var must have shape \(3,\)"):
        F.batch_norm(x, xp.ones((3,)), beta, xp.zeros((3,)), xp.ones((4,)))


def test_max_and_min_of_nothing(xp):
    empty = Variable(xp.zeros((0,)))
    with pytest.raises(ValueError, match=r"max: the maximum of no elements is undefined"):
        F.max(empty)
    with pytest.raises(ValueError, match=r"min: the minimum of no elements.*axis=\(1,\)"):
        F.min(Variable(xp.zeros((2, 0))), axis=1)
    assert F.max(Variable(xp.zeros((0, 2))), axis=1).shape == (0,)  # no empty axis reduced


def test_bool_axis_is_refused(xp):
    x = _x(xp)
    with pytest.raises(TypeError, match=r"sum: axis must be an int, not True"):
        F.sum(x, axis=True)
    with pytest.raises(TypeError, match=r"max: axis must be an int, not False"):
        F.max(x, axis=False)


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv])
def test_none_operand_is_named(xp, op):
    x = _x(xp)
    with pytest.raises(TypeError, match=r"operand x1 is None; expected a Variable"):
        op(x, None)
    with pytest.raises(TypeError, match=r"operand x[01] is None"):
        op(None, x)


def test_clip_bounds_and_matmul_operands_are_named(xp):
    x = _x(xp)
    with pytest.raises(TypeError, match=r"clip: x_min must be a real number or None, not 'a'"):
        F.clip(x, "a", 3.0)
    with pytest.raises(TypeError, match=r"clip: x_max must be a real number or None, not True"):
        F.clip(x, None, True)
    with pytest.raises(TypeError, match=r"matmul: W is None; expected a Variable or an array"):
        F.matmul(x, None)
