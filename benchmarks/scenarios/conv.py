"""One SGD training step of a small CNN on 32x32 inputs, float32.

conv2d (3->8 channels, 3x3, pad 1) -> relu -> 2x2 max pooling (stride 2) -> linear (2048->10) ->
softmax cross-entropy -> backward -> SGD update, on a batch of 16 RGB images.
"""

from __future__ import annotations

from common import LIBRARIES, Case, Measured, Skip, rng, timed, to_numpy

TOLERANCE = {"rtol": 2e-4, "atol": 1e-7}
BATCH, CHANNELS, SIZE, FILTERS, CLASSES = 16, 3, 32, 8, 10
LR = 0.1


def cases(quick: bool) -> list[Case]:
    return [Case("conv conv2d-relu-pool-linear 16x3x32x32", "ms/step", {})]


def shared_data():
    import numpy as np

    r = rng(0)
    x = r.uniform(-1.0, 1.0, size=(BATCH, CHANNELS, SIZE, SIZE)).astype(np.float32)
    t = r.randint(0, CLASSES, size=BATCH).astype(np.int64)
    K = (r.standard_normal((FILTERS, CHANNELS, 3, 3)) * np.sqrt(1.0 / 27)).astype(np.float32)
    kb = (r.standard_normal(FILTERS) * 0.1).astype(np.float32)
    n_flat = FILTERS * (SIZE // 2) ** 2
    W = (r.standard_normal((n_flat, CLASSES)) * np.sqrt(1.0 / n_flat)).astype(np.float32)
    b = np.zeros(CLASSES, dtype=np.float32)
    return x, t, [K, kb, W, b]


def run(library: str, case: Case, quick: bool) -> Measured:
    x, t, params = shared_data()
    step, collect = _BUILDERS[library](x, t, params)
    return timed(step, collect, quick, 1e3)


def _agrad(x, t, params):
    import agrad
    import agrad.functions as F
    from agrad.optimizers import SGD

    if not (hasattr(F, "conv2d") and hasattr(F, "pooling")):
        raise Skip("agrad.functions has no conv2d/pooling yet")
    K, kb, W, b = (agrad.Parameter(p.copy()) for p in params)
    optimizer = SGD(LR).setup([K, kb, W, b])
    last = {}

    def step():
        h = F.relu(F.conv2d(x, K, kb, stride=1, pad=1))
        h = F.pooling(h, 2, stride=2)
        h = F.reshape(h, (h.shape[0], -1))
        loss = F.softmax_cross_entropy(F.linear(h, W, b), t)
        for p in (K, kb, W, b):
            p.cleargrad()
        loss.backward()
        optimizer.update()
        last["loss"] = loss

    def collect():
        out = {"loss": to_numpy(last["loss"])}
        for name, p in zip(("gK", "gkb", "gW", "gb"), (K, kb, W, b)):
            out[name] = to_numpy(p.grad)
        return out

    return step, collect


def _numpy(x, t, params):
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    params = [p.copy() for p in params]
    n = x.shape[0]
    rows = np.arange(n)
    N, _, H, Wd = x.shape
    last = {}

    def step():
        K, kb, W, b = params
        # im2col: one row of C*3*3 input values per output pixel
        padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
        windows = sliding_window_view(padded, (3, 3), axis=(2, 3))  # (N, C, H, W, 3, 3)
        cols = np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5)).reshape(N * H * Wd, -1)
        out = cols @ K.reshape(K.shape[0], -1).T + kb  # (N*H*W, K)
        conv = out.reshape(N, H, Wd, -1).transpose(0, 3, 1, 2)
        h = np.maximum(conv, 0)
        C = h.shape[1]
        blocks = h.reshape(N, C, H // 2, 2, Wd // 2, 2).transpose(0, 1, 2, 4, 3, 5)
        blocks = blocks.reshape(N, C, H // 2, Wd // 2, 4)
        arg = blocks.argmax(axis=-1)
        pooled = np.take_along_axis(blocks, arg[..., None], axis=-1)[..., 0]
        flat = pooled.reshape(N, -1)
        z = flat @ W + b
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        loss = -(shifted[rows, t] - np.log(total[:, 0])).mean()
        g = e / total
        g[rows, t] -= 1
        g /= n
        gW, gb = flat.T @ g, g.sum(axis=0)
        g_pooled = (g @ W.T).reshape(pooled.shape)
        g_blocks = np.zeros_like(blocks)
        np.put_along_axis(g_blocks, arg[..., None], g_pooled[..., None], axis=-1)
        g_h = g_blocks.reshape(N, C, H // 2, Wd // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
        g_conv = g_h.reshape(N, -1, H, Wd) * (conv > 0)
        g_out = g_conv.transpose(0, 2, 3, 1).reshape(N * H * Wd, -1)
        gK = (g_out.T @ cols).reshape(K.shape)
        gkb = g_out.sum(axis=0)
        grads = (gK, gkb, gW, gb)
        for p, gp in zip(params, grads):
            p -= LR * gp
        last["loss"], last["grads"] = loss, grads

    def collect():
        out = {"loss": np.asarray(last["loss"])}
        for name, g in zip(("gK", "gkb", "gW", "gb"), last["grads"]):
            out[name] = g.copy()
        return out

    return step, collect


def _torch(x, t, params):
    import torch
    import torch.nn.functional as tf

    x, t = torch.from_numpy(x), torch.from_numpy(t)
    params = [torch.tensor(p, requires_grad=True) for p in params]
    last = {}

    def step():
        K, kb, W, b = params
        h = tf.max_pool2d(torch.relu(tf.conv2d(x, K, kb, padding=1)), 2, 2)
        loss = tf.cross_entropy(torch.addmm(b, h.reshape(h.shape[0], -1), W), t)
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(LR * p.grad)
        last["loss"] = loss

    def collect():
        out = {"loss": to_numpy(last["loss"])}
        for name, p in zip(("gK", "gkb", "gW", "gb"), params):
            out[name] = to_numpy(p.grad)
        return out

    return step, collect


_BUILDERS = {"agrad": _agrad, "numpy": _numpy, "torch": _torch}
assert set(_BUILDERS) == set(LIBRARIES)
