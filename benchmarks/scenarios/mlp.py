"""One SGD training step of an MLP 784-1000-1000-10, batch 100, float32 end to end.

Forward, softmax cross-entropy, backward and the parameter update, with sigmoid and with ReLU.
agrad runs DeZero's code as a user writes it: ``models.MLP``, ``F.softmax_cross_entropy`` and
``optimizers.SGD``; every library starts from the same weights. On a GPU (``--device cuda``) the
batch of 1000 is measured too.
"""

from __future__ import annotations

import itertools

from common import DEVICE, LIBRARIES, Case, Measured, rng, timed, to_numpy

DEVICES = ("cpu", "cuda", "cuda-emulated")
TOLERANCE = {"rtol": 2e-4, "atol": 1e-7}
SIZES = (784, 1000, 1000, 10)
BATCH = 100
LR = 0.1


def cases(quick: bool) -> list[Case]:
    batches = (BATCH,) if DEVICE.name == "cpu" else (BATCH, 1000)
    return [
        Case(
            f"mlp {activation} 784-1000-1000-10 float32"
            + (f" batch {batch}" if batch != BATCH else ""),
            "ms/step",
            {"activation": activation, "batch": batch},
        )
        for batch in batches
        for activation in ("sigmoid", "relu")
    ]


def shared_data(sizes=SIZES, batch=BATCH, seed=0):
    """Inputs, integer labels and initial (W, b) per layer, float32, from one seeded generator."""
    import numpy as np

    r = rng(seed)
    x = r.uniform(0.0, 1.0, size=(batch, sizes[0])).astype(np.float32)
    t = r.randint(0, sizes[-1], size=batch).astype(np.int64)
    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        W = (r.standard_normal((n_in, n_out)) * np.sqrt(1.0 / n_in)).astype(np.float32)
        b = (r.standard_normal(n_out) * 0.1).astype(np.float32)
        params.append((W, b))
    return x, t, params


def run(library: str, case: Case, quick: bool) -> Measured:
    x, t, params = shared_data(batch=case.params["batch"])
    step, collect = BUILDERS[library](x, t, params, case.params["activation"])
    return timed(step, collect, quick, 1e3)


def agrad_mlp(x, t, params, activation):
    """(step, collect) for agrad: the book's MLP, loss and SGD."""
    import agrad
    import agrad.functions as F
    from agrad.models import MLP
    from agrad.optimizers import SGD

    model = MLP([W.shape[1] for W, _ in params], activation=getattr(F, activation))
    for layer, (W, b) in zip(model.layers, params):
        layer.W.data, layer.b.data = DEVICE.to_agrad(W), DEVICE.to_agrad(b)
    x, t = DEVICE.to_agrad(x), DEVICE.to_agrad(t)
    optimizer = SGD(LR).setup(model)
    last = {}

    def step():
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        last["loss"] = loss

    def collect():
        out = {"loss": to_numpy(last["loss"])}
        for i, layer in enumerate(model.layers):
            out[f"gW{i}"], out[f"gb{i}"] = to_numpy(layer.W.grad), to_numpy(layer.b.grad)
        return out

    assert agrad.Variable  # the module is used through F, MLP and SGD
    return step, collect


def numpy_mlp(x, t, params, activation):
    """(step, collect) for the same step written by hand in NumPy (CuPy on a GPU)."""
    np = DEVICE.xp

    params = [(DEVICE.to_device(W), DEVICE.to_device(b)) for W, b in params]
    x, t = DEVICE.to_device(x), DEVICE.to_device(t)
    n = x.shape[0]
    rows = np.arange(n)
    last = {}

    if activation == "sigmoid":

        def act(h):
            return 1 / (1 + np.exp(-h))

        def act_grad(g, h, a):
            return g * a * (1 - a)

    else:

        def act(h):
            return np.maximum(h, 0)

        def act_grad(g, h, a):
            return g * (h > 0)

    def step():
        hs, acts = [], [x]
        a = x
        for W, b in params[:-1]:
            h = a @ W + b
            a = act(h)
            hs.append(h)
            acts.append(a)
        W, b = params[-1]
        z = a @ W + b
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        loss = -(shifted[rows, t] - np.log(total[:, 0])).mean()
        g = e / total
        g[rows, t] -= 1
        g /= n
        grads = []
        for i in range(len(params) - 1, -1, -1):
            W, b = params[i]
            grads.append((acts[i].T @ g, g.sum(axis=0)))
            if i > 0:
                g = act_grad(g @ W.T, hs[i - 1], acts[i])
        grads.reverse()
        for (W, b), (gW, gb) in zip(params, grads):
            W -= LR * gW
            b -= LR * gb
        last["loss"], last["grads"] = loss, grads

    def collect():
        out = {"loss": to_numpy(last["loss"])}
        for i, (gW, gb) in enumerate(last["grads"]):
            out[f"gW{i}"], out[f"gb{i}"] = to_numpy(gW), to_numpy(gb)
        return out

    return step, collect


def torch_mlp(x, t, params, activation):
    """(step, collect) for PyTorch on the CPU (CUDA on a GPU)."""
    import torch

    x, t = DEVICE.torch_tensor(x), DEVICE.torch_tensor(t)
    params = [
        (DEVICE.torch_tensor(W, requires_grad=True), DEVICE.torch_tensor(b, requires_grad=True))
        for W, b in params
    ]
    act = torch.sigmoid if activation == "sigmoid" else torch.relu
    last = {}

    def step():
        a = x
        for W, b in params[:-1]:
            a = act(torch.addmm(b, a, W))
        W, b = params[-1]
        loss = torch.nn.functional.cross_entropy(torch.addmm(b, a, W), t)
        for W, b in params:
            W.grad = b.grad = None
        loss.backward()
        with torch.no_grad():
            for W, b in params:
                W -= LR * W.grad
                b -= LR * b.grad
        last["loss"] = loss

    def collect():
        out = {"loss": to_numpy(last["loss"])}
        for i, (W, b) in enumerate(params):
            out[f"gW{i}"], out[f"gb{i}"] = to_numpy(W.grad), to_numpy(b.grad)
        return out

    return step, collect


BUILDERS = {"agrad": agrad_mlp, "numpy": numpy_mlp, "torch": torch_mlp}
assert set(BUILDERS) == set(LIBRARIES)
