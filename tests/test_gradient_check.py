"""``gradient_check`` itself: it passes right gradients and fails wrong ones, per element and
along random directions, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Function
from agrad.utils import gradient_check


class SquareOffByOne(Function):
    """x**2 whose backward is wrong at one element (the last) only."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        (x,) = self.inputs
        wrong = np.zeros(x.shape)
        wrong.reshape(-1)[-1] = 0.5
        return 2 * x * gy + agrad.current_backend().asarray(wrong)


class SquareHalfGradient(Function):
    """x**2 whose backward is half the right one everywhere."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        (x,) = self.inputs
        return x * gy


X = np.linspace(-1.5, 1.2, 24).reshape(4, 6)


@pytest.mark.parametrize("directions", [None, 1, 3, "auto"])
def test_right_gradients_pass(xp, directions):
    x = xp.asarray(X)
    assert gradient_check(lambda v: F.sum(F.tanh(v) * v, axis=1), x, directions=directions)
    assert gradient_check(lambda v: F.matmul(v, F.transpose(v)), x, directions=directions)


@pytest.mark.parametrize("directions", [None, 1, 3, "auto"])
@pytest.mark.parametrize("wrong", [SquareOffByOne, SquareHalfGradient])
def test_wrong_gradients_fail(xp, directions, wrong):
    with pytest.raises(AssertionError, match="backprop and numerical gradients differ"):
        gradient_check(lambda v: wrong()(v), xp.asarray(X), directions=directions)


def test_per_element_failure_names_the_element(xp):
    with pytest.raises(AssertionError, match=r"worst at index \(3, 5\)"):
        gradient_check(lambda v: SquareOffByOne()(v), xp.asarray(X), directions=None)


def test_direction_failure_says_how_to_find_the_element(xp):
    with pytest.raises(AssertionError, match=r"direction 1 of 2.*directions=None"):
        gradient_check(lambda v: SquareHalfGradient()(v), xp.asarray(X), directions=2)


def test_directions_must_be_positive(xp):
    with pytest.raises(ValueError, match="directions must be None, 'auto' or >= 1, got 0"):
        gradient_check(F.tanh, xp.asarray(X), directions=0)


def test_a_slow_dispatch_backend_checks_along_directions_by_default(xp):
    calls = []

    def counted(v):
        calls.append(None)
        return F.tanh(v)

    gradient_check(counted, xp.asarray(X))
    evaluations = len(calls) - 1  # the first call is the one differentiated by backward
    assert evaluations == (6 if agrad.current_backend().slow_dispatch else 2 * X.size)


def test_the_backends_that_dispatch_slowly_are_jax_and_dask():
    slow = {name for name in agrad.known_backends() if agrad.get_backend(name).slow_dispatch}
    assert slow == {"jax", "dask"}
