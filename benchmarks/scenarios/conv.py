"""One SGD training step of a small CNN on 32x32 RGB inputs, float32.

Each conv layer is conv2d (3x3, pad 1, with bias) -> relu -> 2x2 max pooling (stride 2); then
linear -> softmax cross-entropy -> backward -> SGD update. Two networks:

* ``conv3-8``: one conv layer 3->8 channels, batch 16 (the first CNN row of this suite);
* ``conv3-16-32``: conv 3->16 and conv 16->32, linear 2048->10, batch 32 (issue 16's CNN).

``python benchmarks/scenarios/conv.py --parts`` times each part of issue 16's CNN (conv forward,
conv backward, bias, pooling) for agrad and PyTorch alternating in one process.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the shared helpers live one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import LIBRARIES, Case, Measured, rng, timed, to_numpy

TOLERANCE = {"rtol": 2e-4, "atol": 1e-7}
CHANNELS, SIZE, CLASSES = 3, 32, 10
LR = 0.1
NETWORKS = {
    "conv3-8": {"batch": 16, "filters": (8,), "row": "conv conv2d-relu-pool-linear 16x3x32x32"},
    "conv3-16-32": {
        "batch": 32,
        "filters": (16, 32),
        "row": "conv 2x(conv-relu-pool) 3-16-32 32x3x32x32",
    },
}


def cases(quick: bool) -> list[Case]:
    return [Case(net["row"], "ms/step", {"network": name}) for name, net in NETWORKS.items()]


def shared_data(network: str):
    """Inputs, labels and parameters ``[K1, kb1, K2, kb2, ..., W, b]`` from one seeded RNG."""
    import numpy as np

    net = NETWORKS[network]
    r = rng(0)
    batch = net["batch"]
    x = r.uniform(-1.0, 1.0, size=(batch, CHANNELS, SIZE, SIZE)).astype(np.float32)
    t = r.randint(0, CLASSES, size=batch).astype(np.int64)
    params, channels, size = [], CHANNELS, SIZE
    for filters in net["filters"]:
        fan_in = channels * 9
        K = (r.standard_normal((filters, channels, 3, 3)) * np.sqrt(1.0 / fan_in)).astype(
            np.float32
        )
        params += [K, (r.standard_normal(filters) * 0.1).astype(np.float32)]
        channels, size = filters, size // 2
    n_flat = channels * size * size
    W = (r.standard_normal((n_flat, CLASSES)) * np.sqrt(1.0 / n_flat)).astype(np.float32)
    params += [W, np.zeros(CLASSES, dtype=np.float32)]
    return x, t, params


def run(library: str, case: Case, quick: bool) -> Measured:
    x, t, params = shared_data(case.params["network"])
    step, collect = _BUILDERS[library](x, t, params)
    return timed(step, collect, quick, 1e3)


def _names(params) -> list[str]:
    n_conv = (len(params) - 2) // 2
    conv = [f"{kind}{i + 1}" for i in range(n_conv) for kind in ("gK", "gkb")]
    return [*conv, "gW", "gb"]


def _agrad(x, t, params):
    import agrad
    import agrad.functions as F
    from agrad.optimizers import SGD

    variables = [agrad.Parameter(p.copy()) for p in params]
    optimizer = SGD(LR).setup(variables)
    last = {}

    def step():
        h = x
        for i in range(0, len(variables) - 2, 2):
            K, kb = variables[i], variables[i + 1]
            h = F.pooling(F.relu(F.conv2d(h, K, kb, stride=1, pad=1)), 2, stride=2)
        h = F.reshape(h, (h.shape[0], -1))
        loss = F.softmax_cross_entropy(F.linear(h, variables[-2], variables[-1]), t)
        for p in variables:
            p.cleargrad()
        loss.backward()
        optimizer.update()
        last["loss"] = loss

    def collect():
        out = {"loss": to_numpy(last["loss"])}
        for name, p in zip(_names(params), variables):
            out[name] = to_numpy(p.grad)
        return out

    return step, collect


def _numpy(x, t, params):
    """The same step written by hand: im2col through sliding_window_view, matmuls, argmax."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    params = [p.copy() for p in params]
    n = x.shape[0]
    rows = np.arange(n)
    last = {}

    def conv_forward(h, K, kb):
        N, _, H, Wd = h.shape
        padded = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
        windows = sliding_window_view(padded, (3, 3), axis=(2, 3))  # (N, C, H, W, 3, 3)
        cols = np.ascontiguousarray(windows.transpose(0, 1, 4, 5, 2, 3)).reshape(N, -1, H * Wd)
        out = np.matmul(K.reshape(K.shape[0], -1), cols) + kb[:, None]  # (N, OC, H*W)
        return out.reshape(N, -1, H, Wd), cols

    def conv_backward(g_out, cols, K, h_shape, need_input):
        N, C, H, Wd = h_shape
        g3 = g_out.reshape(N, K.shape[0], -1)
        gK = np.matmul(cols, g3.transpose(0, 2, 1)).sum(axis=0).T.reshape(K.shape)
        gkb = g3.sum(axis=(0, 2))
        if not need_input:
            return gK, gkb, None
        gcols = np.matmul(K.reshape(K.shape[0], -1).T, g3).reshape(N, C, 3, 3, H, Wd)
        g_pad = np.zeros((N, C, H + 2, Wd + 2), dtype=g_out.dtype)
        for i in range(3):
            for j in range(3):
                g_pad[:, :, i : i + H, j : j + Wd] += gcols[:, :, i, j]
        return gK, gkb, g_pad[:, :, 1:-1, 1:-1]

    def pool_forward(h):
        N, C, H, Wd = h.shape
        blocks = h.reshape(N, C, H // 2, 2, Wd // 2, 2).transpose(0, 1, 2, 4, 3, 5)
        blocks = blocks.reshape(N, C, H // 2, Wd // 2, 4)
        arg = blocks.argmax(axis=-1)
        return np.take_along_axis(blocks, arg[..., None], axis=-1)[..., 0], arg

    def pool_backward(g, arg, shape):
        N, C, H, Wd = shape
        g_blocks = np.zeros((N, C, H // 2, Wd // 2, 4), dtype=g.dtype)
        np.put_along_axis(g_blocks, arg[..., None], g[..., None], axis=-1)
        g_h = g_blocks.reshape(N, C, H // 2, Wd // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
        return g_h.reshape(shape)

    def step():
        *convs, W, b = params
        h, saved = x, []
        for i in range(0, len(convs), 2):
            K, kb = convs[i], convs[i + 1]
            conv, cols = conv_forward(h, K, kb)
            relu = np.maximum(conv, 0)
            pooled, arg = pool_forward(relu)
            saved.append((h.shape, cols, conv, arg, relu.shape))
            h = pooled
        flat = h.reshape(n, -1)
        z = flat @ W + b
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        loss = -(shifted[rows, t] - np.log(total[:, 0])).mean()
        g = e / total
        g[rows, t] -= 1
        g /= n
        gW, gb = flat.T @ g, g.sum(axis=0)
        g = (g @ W.T).reshape(h.shape)
        conv_grads = []
        for layer in reversed(range(len(saved))):
            h_shape, cols, conv, arg, relu_shape = saved[layer]
            g_conv = pool_backward(g, arg, relu_shape) * (conv > 0)
            K = convs[2 * layer]
            gK, gkb, g = conv_backward(g_conv, cols, K, h_shape, need_input=layer > 0)
            conv_grads = [gK, gkb, *conv_grads]
        grads = (*conv_grads, gW, gb)
        for p, gp in zip(params, grads):
            p -= LR * gp
        last["loss"], last["grads"] = loss, grads

    def collect():
        out = {"loss": np.asarray(last["loss"])}
        for name, g in zip(_names(params), last["grads"]):
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
        *convs, W, b = params
        h = x
        for i in range(0, len(convs), 2):
            h = tf.max_pool2d(torch.relu(tf.conv2d(h, convs[i], convs[i + 1], padding=1)), 2, 2)
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
        for name, p in zip(_names(params), params):
            out[name] = to_numpy(p.grad)
        return out

    return step, collect


_BUILDERS = {"agrad": _agrad, "numpy": _numpy, "torch": _torch}
assert set(_BUILDERS) == set(LIBRARIES)


# -- the parts of issue 16's CNN, agrad and PyTorch alternating in one process -----------------
def _part_timers(x, params):
    """{part: (agrad call, torch call)} for both conv layers of the ``conv3-16-32`` network."""
    import numpy as np
    import torch
    import torch.nn.functional as tf

    import agrad
    import agrad.functions as F

    K1, kb1, K2, kb2 = params[:4]
    h1 = np.maximum(np.random.default_rng(1).standard_normal((x.shape[0], 16, 16, 16)), 0)
    h1 = h1.astype(np.float32)  # what the second conv layer sees
    layers = [(x, K1, kb1, False), (h1, K2, kb2, True)]
    a_layers = [
        (agrad.Variable(h) if grad else h, agrad.Parameter(K), agrad.Parameter(kb))
        for h, K, kb, grad in layers
    ]
    t_layers = [
        (torch.tensor(h, requires_grad=grad), torch.tensor(K, requires_grad=True),
         torch.tensor(kb, requires_grad=True))
        for h, K, kb, grad in layers
    ]  # fmt: skip
    pool_shapes = [(x.shape[0], 16, 32, 32), (x.shape[0], 32, 16, 16)]
    draw = np.random.default_rng(2)
    pool_in = [np.maximum(draw.standard_normal(s), 0).astype(np.float32) for s in pool_shapes]
    a_pool = [agrad.Variable(p) for p in pool_in]
    t_pool = [torch.tensor(p, requires_grad=True) for p in pool_in]

    def a_conv_forward(bias=True):
        with agrad.no_grad():
            for h, K, kb in a_layers:
                F.conv2d(h, K, kb if bias else None, 1, 1)

    def t_conv_forward(bias=True):
        with torch.no_grad():
            for h, K, kb in t_layers:
                tf.conv2d(h, K, kb if bias else None, padding=1)

    def a_conv_step(bias=True):
        for h, K, kb in a_layers:
            F.sum(F.conv2d(h, K, kb if bias else None, 1, 1)).backward()

    def t_conv_step(bias=True):
        for h, K, kb in t_layers:
            tf.conv2d(h, K, kb if bias else None, padding=1).sum().backward()

    def a_pool_forward():
        with agrad.no_grad():
            for p in a_pool:
                F.pooling(p, 2, 2)

    def t_pool_forward():
        with torch.no_grad():
            for p in t_pool:
                tf.max_pool2d(p, 2, 2)

    def a_pool_step():
        for p in a_pool:
            F.sum(F.pooling(p, 2, 2)).backward()

    def t_pool_step():
        for p in t_pool:
            tf.max_pool2d(p, 2, 2).sum().backward()

    x_step, t_step, step_params = shared_data("conv3-16-32")
    a_step = _agrad(x_step, t_step, step_params)[0]
    t_step_call = _torch(x_step, t_step, step_params)[0]
    return {
        "whole training step": (a_step, t_step_call),
        "conv forward (no bias)": (lambda: a_conv_forward(False), lambda: t_conv_forward(False)),
        "conv forward + bias": (a_conv_forward, t_conv_forward),
        "conv forward + backward (no bias)": (
            lambda: a_conv_step(False),
            lambda: t_conv_step(False),
        ),
        "conv forward + backward + bias": (a_conv_step, t_conv_step),
        "max pooling forward": (a_pool_forward, t_pool_forward),
        "max pooling forward + backward": (a_pool_step, t_pool_step),
    }


def parts(rounds: int = 15) -> None:
    """Print the median ms of each part for agrad and PyTorch, alternating call by call."""
    import statistics
    import time

    import torch

    torch.set_num_threads(1)
    # CPU time of this process: other jobs on a shared machine inflate wall time unevenly
    clock = time.process_time
    x, _, params = shared_data("conv3-16-32")
    timers = _part_timers(x, params)
    times = {name: ([], []) for name in timers}
    for _ in range(rounds):
        for name, calls in timers.items():
            for call, store in zip(calls, times[name]):
                call()  # warm
                started = clock()
                call()
                store.append((clock() - started) * 1e3)
    print(f"{'conv3-16-32, CPU ms (both conv layers)':40} {'agrad':>9} {'torch':>9} {'ratio':>6}")
    for name, (a, t) in times.items():
        ma, mt = statistics.median(a), statistics.median(t)
        print(f"{name:40} {ma:9.2f} {mt:9.2f} {ma / mt:5.2f}x")


if __name__ == "__main__":
    import argparse
    import os

    parser = argparse.ArgumentParser(description="per-part timings of issue 16's CNN")
    parser.add_argument("--parts", action="store_true", required=True)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS") != "1":
        sys.exit("set OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 first")
    parts(args.rounds)
