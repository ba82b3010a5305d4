"""An output that is also an input: its own seed adds to the gradient flowing into it (issue 22).

``grad([x, x * 3], [x])`` is ``1 + 3``: the seed of the output ``x`` and the gradient through
``x * 3`` both reach ``x``. ``func.jvp`` meets the same case whenever ``f`` passes an argument
through (``p + sin(q)`` has ``d/dp = identity``), since its double-vjp takes the gradient of the
recorded vjp with respect to the dummy cotangent that the vjp returns unchanged.
"""

from __future__ import annotations

import numpy as np

import agrad
import agrad.functions as F
from agrad import Variable, func
from agrad.backends import backend_of
from agrad.cuda import as_numpy


def host(v):
    return np.asarray(as_numpy(v.data if isinstance(v, Variable) else v))


def is_backend_array(value):
    """An array of the test's backend, not a NumPy scalar from ``0-d + 0-d``."""
    return backend_of(value, None) is agrad.current_backend()


def test_output_that_is_an_input_adds_its_seed(xp):
    x = Variable(xp.asarray(2.0))
    (gx,) = agrad.grad([x, x * 3.0], [x])
    assert host(gx) == 4.0
    assert is_backend_array(gx.data)


def test_the_same_leaf_twice_among_the_outputs(xp):
    x = Variable(xp.asarray(2.0))
    (gx,) = agrad.grad([x, x], [x])
    assert host(gx) == 2.0
    assert is_backend_array(gx.data)


def test_weighted_outputs_and_two_positions(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    g1, g2 = agrad.grad(
        [x, x * x], [x, x], grad_outputs=[xp.asarray([10.0, 20.0]), xp.asarray([1.0, 1.0])]
    )
    np.testing.assert_allclose(host(g1), [12.0, 24.0])
    np.testing.assert_allclose(host(g2), [12.0, 24.0])
    assert g1.data is not g2.data


def test_non_leaf_output_that_is_an_input(xp):
    x = Variable(xp.asarray(2.0))
    h = x * 3.0
    gh, gx = agrad.grad([h, h * 2.0], [h, x])
    assert host(gh) == 3.0
    assert host(gx) == 9.0


def test_create_graph_keeps_the_seed_differentiable(xp):
    x = Variable(xp.asarray(2.0))
    (gx,) = agrad.grad([x, x * x], [x], create_graph=True)
    assert host(gx) == 5.0
    (ggx,) = agrad.grad(gx, [x])
    assert host(ggx) == 2.0


def test_jvp_of_a_function_passing_an_argument_through(xp):
    a, b, t = xp.asarray([1.0, 2.0]), xp.asarray([0.5, -0.3]), xp.asarray([1.0, 1.0])
    _, out = func.jvp(lambda p, q: p + F.sin(q), (a, b), (t, t))
    np.testing.assert_allclose(host(out), 1.0 + np.cos([0.5, -0.3]))


def test_jvp_of_the_identity_is_the_tangent_as_an_array(xp):
    _, out = func.jvp(lambda p: p, (xp.asarray(2.0),), (xp.asarray(3.0),))
    assert host(out) == 3.0
    assert is_backend_array(out)
    _, (o1, o2) = func.jvp(lambda p: (p, p * 2.0), (xp.asarray(2.0),), (xp.asarray(3.0),))
    assert (host(o1), host(o2)) == (3.0, 6.0)


def test_vjp_jacobians_and_hvp_with_identity_terms(xp):
    _, vjp_fn = func.vjp(lambda p: (p, p * 2.0), xp.asarray(2.0))
    (g,) = vjp_fn((xp.asarray(1.0), xp.asarray(1.0)))
    assert host(g) == 3.0
    x = xp.asarray([1.0, 2.0])
    expected = np.diag(1.0 + np.cos([1.0, 2.0]))
    np.testing.assert_allclose(host(func.jacrev(lambda p: p + F.sin(p))(x)), expected)
    np.testing.assert_allclose(host(func.jacfwd(lambda p: p + F.sin(p))(x)), expected)
    _, hv = func.hvp(lambda p: F.sum(p * p) + F.sum(p), x, xp.asarray([1.0, 1.0]))
    np.testing.assert_allclose(host(hv), [2.0, 2.0])
    np.testing.assert_allclose(host(func.hessian(lambda p: F.sum(p * p))(x)), 2.0 * np.eye(2))
