"""GELU, SiLU, logsumexp, argmax/argmin, one_hot, layer_norm, attention: against PyTorch in
float64 on every backend, first and second derivatives."""

from __future__ import annotations

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Variable

torch = pytest.importorskip("torch", reason="the reference values come from PyTorch")


def host(x):
    if isinstance(x, Variable):
        x = x.data
    return np.asarray(agrad.backends.backend_of(x).to_host(x), dtype=np.float64)


def arrays(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def check(agrad_fn, torch_fn, inputs, rtol=1e-10, atol=1e-12):
    """Value, gradient and second derivative (of sum(grad * w)) against torch."""
    backend = agrad.current_backend()
    xs = [Variable(backend.asarray(a)) for a in inputs]
    ts = [torch.tensor(a, requires_grad=True) for a in inputs]
    y, ty = agrad_fn(*xs), torch_fn(*ts)
    np.testing.assert_allclose(host(y), ty.detach().numpy(), rtol=rtol, atol=atol)
    w = np.random.default_rng(9).standard_normal(tuple(y.shape))
    loss = F.sum(y * backend.asarray(w))
    grads = agrad.grad(loss, xs, create_graph=True)
    tgrads = torch.autograd.grad((ty * torch.tensor(w)).sum(), ts, create_graph=True)
    for g, tg in zip(grads, tgrads):
        np.testing.assert_allclose(host(g), tg.detach().numpy(), rtol=rtol, atol=atol)
    second = agrad.grad(F.sum(grads[0] * grads[0]), xs[0])[0]
    tsecond = torch.autograd.grad((tgrads[0] * tgrads[0]).sum(), ts[0])[0]
    np.testing.assert_allclose(host(second), tsecond.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(xp, approximate):
    check(
        lambda x: F.gelu(x, approximate=approximate),
        lambda x: torch.nn.functional.gelu(x, approximate=approximate),
        arrays((3, 4)),
    )


def test_silu(xp):
    check(F.silu, torch.nn.functional.silu, arrays((3, 4)))


@pytest.mark.parametrize("axis, keepdims", [(None, False), (1, False), (0, True), ((0, 1), False)])
def test_logsumexp(xp, axis, keepdims):
    dims = tuple(range(2)) if axis is None else axis
    check(
        lambda x: F.logsumexp(x, axis=axis, keepdims=keepdims),
        lambda x: torch.logsumexp(x, dim=dims, keepdim=keepdims),
        arrays((3, 4)),
    )


def test_logsumexp_does_not_overflow(xp):
    y = F.logsumexp(agrad.current_backend().asarray([1000.0, 1000.0]))
    assert float(y.data) == pytest.approx(1000.0 + np.log(2.0))


def test_layer_norm(xp):
    check(
        lambda x, w, b: F.layer_norm(x, (4,), w, b, eps=1e-5),
        lambda x, w, b: torch.nn.functional.layer_norm(x, (4,), w, b, eps=1e-5),
        arrays((2, 3, 4), (4,), (4,)),
        rtol=1e-9,
        atol=1e-10,
    )
    with pytest.raises(ValueError, match="trailing shape"):
        F.layer_norm(agrad.current_backend().asarray(np.zeros((2, 3))), (4,))


@pytest.mark.parametrize("mode", ["plain", "causal", "bool mask", "float mask"])
def test_scaled_dot_product_attention(xp, mode):
    rng = np.random.default_rng(3)
    mask = None
    if mode == "bool mask":
        mask = rng.random((4, 5)) > 0.3
        mask[:, 0] = True  # every query sees a key
    elif mode == "float mask":
        mask = rng.standard_normal((4, 5))
    backend = agrad.current_backend()
    amask = None if mask is None else backend.asarray(mask)
    tmask = None if mask is None else torch.tensor(mask)
    causal = mode == "causal"
    keys = 4 if causal else 5
    check(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=amask, is_causal=causal),
        lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=tmask, is_causal=causal
        ),
        arrays((2, 4, 3), (2, keys, 3), (2, keys, 2)),
        rtol=1e-9,
        atol=1e-10,
    )


def test_argmax_argmin(xp):
    (a,) = arrays((3, 4))
    x = agrad.current_backend().asarray(a)
    assert int(F.argmax(x).data) == int(np.argmax(a))
    assert host(F.argmax(x, axis=1)).tolist() == np.argmax(a, axis=1).tolist()
    assert F.argmin(x, axis=0, keepdims=True).shape == (1, 4)
    assert host(F.argmin(x, axis=0)).tolist() == np.argmin(a, axis=0).tolist()
    assert F.argmax(Variable(x)).creator is None
    with pytest.raises(ValueError, match="axis"):
        F.argmax(x, axis=2)


def test_one_hot(xp):
    backend = agrad.current_backend()
    t = backend.asarray([0, 2, 1])
    codes = F.one_hot(t, 3)
    expected = torch.nn.functional.one_hot(torch.tensor([0, 2, 1]), 3).numpy()
    np.testing.assert_array_equal(host(codes), expected)
    assert backend.dtype_name(codes.dtype) == "int64"
    with pytest.raises(TypeError, match="integers"):
        F.one_hot(backend.asarray([0.5]), 3)
    with pytest.raises(ValueError, match=">= 1"):
        F.one_hot(t, 0)
    if not backend.checks_stay_on_device:
        with pytest.raises(ValueError, match="outside"):
            F.one_hot(backend.asarray([3]), 3)


def test_layers(xp):
    backend = agrad.current_backend()
    norm = agrad.layers.LayerNorm(3)
    x = backend.asarray(np.arange(6.0).reshape(2, 3), dtype="float32")
    expected = torch.nn.LayerNorm(3, dtype=torch.float64)(
        torch.tensor(np.arange(6.0).reshape(2, 3))
    ).detach()
    np.testing.assert_allclose(host(norm(x)), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert [name for name, _ in norm.named_parameters()] == ["weight", "bias"]
    embed = agrad.layers.Embedding(10, 4)
    assert isinstance(embed, agrad.layers.EmbedID)
    assert embed(backend.asarray([1, 2, 3])).shape == (3, 4)
