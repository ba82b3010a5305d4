"""F.einsum against PyTorch in float64 on every backend.

Each function's values, gradients and second derivatives (a Hessian-vector product of
``sum(f(x) * w)``) are compared with ``torch``'s, built on host NumPy copies of the same inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import agrad.functions as F
from agrad import Variable
from agrad.cuda import as_numpy

torch = pytest.importorskip("torch")


def host(v) -> np.ndarray:
    return np.asarray(as_numpy(v.data if isinstance(v, Variable) else v))


def draw(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def torch_reference(f, inputs, weights, directions, second=True):
    """f's value, d sum(f * w)/dx and the derivative of sum(grad * direction), by torch."""
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs]
    y = f(*ts)
    loss = (y * torch.tensor(weights)).sum()
    grads = torch.autograd.grad(loss, ts, create_graph=second)
    seconds = None
    if second:
        inner = sum((g * torch.tensor(v)).sum() for g, v in zip(grads, directions))
        if not inner.requires_grad:  # f is linear: its gradient does not depend on x
            return y.detach().numpy(), [g.detach().numpy() for g in grads], [0 * a for a in inputs]
        seconds = torch.autograd.grad(inner, ts, allow_unused=True)
        seconds = [
            np.zeros_like(a) if s is None else s.detach().numpy() for a, s in zip(inputs, seconds)
        ]
    return y.detach().numpy(), [g.detach().numpy() for g in grads], seconds


def agrad_run(xp, f, inputs, weights, directions, second=True):
    vs = [Variable(xp.asarray(a, dtype=xp.float64)) for a in inputs]
    y = f(*vs)
    F.sum(y * xp.asarray(weights, dtype=xp.float64)).backward(create_graph=second)
    grads = [v.grad for v in vs]
    seconds = None
    if second:
        for v in vs:
            v.cleargrad()
        inner = None
        for g, dv in zip(grads, directions):
            term = F.sum(g * xp.asarray(dv, dtype=xp.float64))
            inner = term if inner is None else inner + term
        inner.backward()
        seconds = [
            np.zeros(a.shape) if v.grad is None else host(v.grad) for a, v in zip(inputs, vs)
        ]
    return host(y), [host(g) for g in grads], seconds


def check_against_torch(xp, f, tf, inputs, second=True, rtol=1e-10, atol=1e-12):
    """Values, gradients and (with ``second``) second derivatives of f equal torch's tf's."""
    probe = tf(*[torch.tensor(a, dtype=torch.float64) for a in inputs])
    weights = draw(*probe.shape, seed=7)
    directions = [draw(*a.shape, seed=8 + i) for i, a in enumerate(inputs)]
    ty, tgrads, tseconds = torch_reference(tf, inputs, weights, directions, second)
    ay, agrads, aseconds = agrad_run(xp, f, inputs, weights, directions, second)
    np.testing.assert_allclose(ay, ty, rtol=rtol, atol=atol)
    for a, t in zip(agrads, tgrads):
        np.testing.assert_allclose(a, t, rtol=rtol, atol=atol)
    if second:
        for a, t in zip(aseconds, tseconds):
            np.testing.assert_allclose(a, t, rtol=rtol, atol=atol)


# einsum

EINSUM_CASES = {
    "ij,jk->ik": [(2, 3), (3, 4)],
    "bij,bjk->bik": [(2, 2, 3), (2, 3, 2)],
    "i,i->": [(4,), (4,)],
    "i,j->ij": [(3,), (2,)],
    "ij->j": [(3, 4)],
    "ij->ji": [(3, 4)],
    "ij,jk": [(2, 3), (3, 4)],
    "ijk,ik->j": [(2, 3, 4), (2, 4)],
    "ij,jk,kl->il": [(2, 3), (3, 2), (2, 2)],
    "bhqd,bhkd->bhqk": [(1, 2, 3, 4), (1, 2, 2, 4)],
}


@pytest.mark.parametrize("subscripts", list(EINSUM_CASES))
def test_einsum_matches_torch(xp, subscripts):
    inputs = [draw(*shape, seed=20 + i) for i, shape in enumerate(EINSUM_CASES[subscripts])]
    check_against_torch(
        xp,
        lambda *vs: F.einsum(subscripts, *vs),
        lambda *ts: torch.einsum(subscripts, *ts),
        inputs,
        rtol=1e-10,
        atol=1e-12,
    )


def test_einsum_keeps_float32(xp):
    a = Variable(xp.asarray(draw(2, 3), dtype=xp.float32))
    y = F.einsum("ij->i", a)
    F.sum(y).backward()
    assert y.dtype == xp.float32 and a.grad.dtype == xp.float32


@pytest.mark.parametrize(
    ("subscripts", "shapes", "message"),
    [
        ("...ij->ij", [(2, 3)], r"uses '\.\.\.', which agrad's einsum does not support"),
        ("ii->i", [(2, 2)], r"repeats an index within the operand 'ii'"),
        ("ij,jk->ik", [(2, 3)], r"names 2 operands, but 1 were given"),
        ("ij->ii", [(2, 3)], r"repeats an index in the output"),
        ("ij->k", [(2, 3)], r"has output index 'k' that no operand has"),
        ("ijk->i", [(2, 3)], r"operand 'ijk' of subscripts='ijk->i' names 3 axes, but the array"),
    ],
)
def test_einsum_refuses_what_it_does_not_support(xp, subscripts, shapes, message):
    with pytest.raises(ValueError, match=message):
        F.einsum(subscripts, *[xp.asarray(draw(*s)) for s in shapes])
