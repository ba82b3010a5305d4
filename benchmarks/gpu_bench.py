"""GPU benchmark: agrad on CuPy against the same math hand-written in CuPy and PyTorch on CUDA.

Scenarios (float32 unless said):
  mlp      one training step (forward, softmax cross-entropy, backward, SGD update) of an MLP
           784-1000-1000-10 at batch 100 (sigmoid, relu) and 784-4096-4096-10 at batch 1024
  cnn      one training step of a small CNN: conv 3->16 (3x3, pad 1), relu, 2x2 max pooling,
           linear 4096->10, on a batch of 64 3x32x32 images
  overhead a chain of 200 elementwise ops (sin, exp, *0.5, +x) forward + backward, float64, on
           shapes (1,), (100,), (1000, 1000): microseconds per op, on the GPU and, beside it, on
           this machine's CPU (agrad on NumPy and hand-written NumPy, 1 thread)

Every scenario first runs one step of each implementation from the same weights and data and
checks that the losses and gradients agree; only then is it timed. The hand-written baselines
compute only what the update needs (no gradient for the input data), as PyTorch does. Timing:
the device is synchronised before every clock read; implementations run interleaved
(A B C A B C ...) in one process; each sample is a run of steps lasting about --sample-ms; the
table shows medians. TF32 is off everywhere so that all three compute in full float32.

Usage:  python benchmarks/gpu_bench.py [--quick] [--json PATH] [--only mlp,cnn,overhead]
        python benchmarks/gpu_bench.py --emulate-on-cpu   (tests this script without a GPU:
            NumPy stands in for CuPy and PyTorch's CPU device for CUDA; the numbers mean nothing)

Exit status: 0 measured, every check passed; 2 some implementations disagreed (those scenarios
are not timed); 3 no usable CUDA device (nothing measured; the reason is printed); 1 an error.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# the CPU figures are single-threaded, like the CPU suite; set before NumPy/PyTorch load
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import agrad  # noqa: E402
import agrad.functions as F  # noqa: E402

EXIT_OK, EXIT_ERROR, EXIT_MISMATCH, EXIT_NO_GPU = 0, 1, 2, 3
CHAIN_LENGTH = 200
LR = 0.01
#: agrad on CuPy against hand-written CuPy, the issue's target for the training steps
TARGET_VS_HAND = 1.15


# -- the devices -----------------------------------------------------------------------------
class Device:
    """Where the GPU implementations run: the array module, agrad's backend, torch's device."""

    def __init__(self, emulate: bool) -> None:
        self.emulate = emulate
        if emulate:
            self.xp_name, self.backend = "numpy", agrad.get_backend("numpy")
            self.m = np
        else:
            self.xp_name, self.backend = "cupy", agrad.get_backend("cupy")
            self.m = importlib.import_module("cupy")
        self.torch, self.torch_device, self.torch_why = _load_torch(emulate)

    def sync(self) -> None:
        """Wait for every queued kernel of CuPy (and PyTorch) to finish."""
        if not self.emulate:
            self.m.cuda.Device().synchronize()
        if self.torch is not None and self.torch_device == "cuda":
            self.torch.cuda.synchronize()

    def to_device(self, host_array: np.ndarray) -> Any:
        # a copy even when emulating: each implementation updates its own weights in place
        return self.m.array(host_array, copy=True)

    def to_host(self, x: Any) -> np.ndarray:
        return np.asarray(x) if self.emulate else self.m.asnumpy(x)


def _load_torch(emulate: bool) -> tuple[Any, str, str]:
    try:
        torch = importlib.import_module("torch")
    except ImportError as exc:
        return None, "", f"PyTorch not installed ({exc})"
    if emulate:
        torch.set_num_threads(1)
        return torch, "cpu", ""
    if not torch.cuda.is_available():
        return None, "", "PyTorch has no CUDA device"
    # full float32 in matrix products and convolutions, like CuPy's default
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch, "cuda", ""


def _no_sync() -> None:
    pass


# -- timing --------------------------------------------------------------------------------------
def time_interleaved(
    steps: dict[str, Callable[[], Any]],
    syncs: dict[str, Callable[[], None]],
    repeats: int,
    sample_s: float,
    warmup: int = 3,
) -> dict[str, float]:
    """Median seconds per call of each step, run interleaved; synchronised around every clock."""
    inner = {}
    for name, step in steps.items():
        sync = syncs[name]
        for _ in range(warmup):
            step()
        sync()
        start = time.perf_counter()
        step()
        sync()
        once = max(time.perf_counter() - start, 1e-7)
        inner[name] = max(1, min(1000, int(sample_s / once)))
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            sync, n = syncs[name], inner[name]
            sync()
            start = time.perf_counter()
            for _ in range(n):
                step()
            sync()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: statistics.median(values) for name, values in samples.items()}


# -- checking results ------------------------------------------------------------------------------
def compare(results: dict[str, list[np.ndarray]], rtol: float) -> str:
    """'' if every implementation's arrays match the first's (relative norm error), else why."""
    names = list(results)
    reference = results[names[0]]
    for name in names[1:]:
        other = results[name]
        if len(other) != len(reference):
            return f"{name} returned {len(other)} arrays, {names[0]} {len(reference)}"
        for i, (a, b) in enumerate(zip(reference, other)):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            if a.shape != b.shape:
                return f"array {i}: shape {a.shape} ({names[0]}) vs {b.shape} ({name})"
            scale = max(float(np.linalg.norm(a)), 1e-12)
            error = float(np.linalg.norm(a - b)) / scale
            if not math.isfinite(error) or error > rtol:
                return f"array {i}: {name} differs from {names[0]} by {error:.2e} (rtol {rtol})"
    return ""


# -- MLP -------------------------------------------------------------------------------------------
def mlp_data(sizes: tuple[int, ...], batch: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in itertools.pairwise(sizes):
        W = (rng.standard_normal((n_in, n_out)) * math.sqrt(1 / n_in)).astype(np.float32)
        weights.append((W, np.zeros(n_out, np.float32)))
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    t = rng.integers(0, sizes[-1], batch).astype(np.int64)
    return {"weights": weights, "x": x, "t": t}


class AgradMLP:
    """agrad's user path: models.MLP, softmax_cross_entropy, backward, optimizers.SGD."""

    def __init__(self, data: dict, activation: str, backend: Any) -> None:
        sizes = [W.shape[1] for W, _ in data["weights"]]
        with agrad.using_backend(backend):
            self.model = agrad.models.MLP(sizes, activation=getattr(F, activation))
            for layer, (W, b) in zip(self.model.layers, data["weights"]):
                layer.W.data = backend.asarray(W)
                layer.b.data = backend.asarray(b)
        self.optimizer = agrad.optimizers.SGD(lr=LR).setup(self.model)
        self.x, self.t = backend.asarray(data["x"]), backend.asarray(data["t"])
        self.backend, self.loss = backend, None

    def step(self) -> None:
        self.model.cleargrads()
        self.loss = F.softmax_cross_entropy(self.model(self.x), self.t)
        self.loss.backward()
        self.optimizer.update()

    def results(self) -> list[np.ndarray]:
        out = [self.backend.to_host(self.loss.data)]
        for layer in self.model.layers:
            out += [
                self.backend.to_host(layer.W.grad.data),
                self.backend.to_host(layer.b.grad.data),
            ]
        return out


class HandMLP:
    """The same step written directly against the array module (CuPy, or NumPy on the CPU)."""

    def __init__(self, data: dict, activation: str, device: Device) -> None:
        self.m, self.device = device.m, device
        self.params = [(device.to_device(W), device.to_device(b)) for W, b in data["weights"]]
        self.x, self.t = device.to_device(data["x"]), device.to_device(data["t"])
        self.rows = self.m.arange(self.x.shape[0])
        self.activation = activation

    def _act(self, z: Any) -> Any:
        if self.activation == "sigmoid":
            return self.m.tanh(z * 0.5) * 0.5 + 0.5
        return self.m.maximum(z, 0)

    def _act_grad(self, z: Any, a: Any) -> Any:
        if self.activation == "sigmoid":
            return a * (1 - a)
        return z > 0

    def step(self) -> None:
        m, n = self.m, self.x.shape[0]
        inputs, pre, post = [], [], []
        a = self.x
        last = len(self.params) - 1
        for i, (W, b) in enumerate(self.params):
            inputs.append(a)
            z = a @ W + b
            if i < last:
                a = self._act(z)
                pre.append(z)
                post.append(a)
        shifted = z - z.max(axis=1, keepdims=True)
        e = m.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        self.loss = -(shifted[self.rows, self.t] - m.log(total[:, 0])).mean()
        g = e / total
        g[self.rows, self.t] -= 1
        g /= n
        self.grads = [None] * len(self.params)
        for i in range(last, -1, -1):
            W, _ = self.params[i]
            self.grads[i] = (inputs[i].T @ g, g.sum(axis=0))
            if i > 0:
                g = (g @ W.T) * self._act_grad(pre[i - 1], post[i - 1])
        for (W, b), (gW, gb) in zip(self.params, self.grads):
            W -= LR * gW
            b -= LR * gb

    def results(self) -> list[np.ndarray]:
        out = [self.device.to_host(self.loss)]
        for gW, gb in self.grads:
            out += [self.device.to_host(gW), self.device.to_host(gb)]
        return out


class TorchMLP:
    """The same step in PyTorch with autograd and a hand-written SGD update."""

    def __init__(self, data: dict, activation: str, device: Device) -> None:
        torch, dev = device.torch, device.torch_device
        self.torch = torch
        self.params = [
            (
                torch.tensor(W, device=dev, requires_grad=True),
                torch.tensor(b, device=dev, requires_grad=True),
            )
            for W, b in data["weights"]
        ]
        self.x = torch.tensor(data["x"], device=dev)
        self.t = torch.tensor(data["t"], device=dev)
        self.act = torch.sigmoid if activation == "sigmoid" else torch.relu

    def step(self) -> None:
        torch = self.torch
        a = self.x
        last = len(self.params) - 1
        for i, (W, b) in enumerate(self.params):
            a = torch.addmm(b, a, W)
            if i < last:
                a = self.act(a)
        self.loss = torch.nn.functional.cross_entropy(a, self.t)
        for W, b in self.params:
            W.grad = b.grad = None
        self.loss.backward()
        with torch.no_grad():
            for W, b in self.params:
                W.sub_(W.grad, alpha=LR)
                b.sub_(b.grad, alpha=LR)

    def results(self) -> list[np.ndarray]:
        out = [self.loss.detach().cpu().numpy()]
        for W, b in self.params:
            out += [W.grad.cpu().numpy(), b.grad.cpu().numpy()]
        return out


# -- CNN -------------------------------------------------------------------------------------------
CNN_BATCH, CNN_CHANNELS, CNN_SIZE, CNN_FILTERS, CNN_CLASSES = 64, 3, 32, 16, 10


def cnn_data(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    fan_in = CNN_CHANNELS * 9
    Wc = rng.standard_normal((CNN_FILTERS, CNN_CHANNELS, 3, 3)) * math.sqrt(1 / fan_in)
    features = CNN_FILTERS * (CNN_SIZE // 2) ** 2
    Wf = rng.standard_normal((features, CNN_CLASSES)) * math.sqrt(1 / features)
    x = rng.standard_normal((CNN_BATCH, CNN_CHANNELS, CNN_SIZE, CNN_SIZE))
    return {
        "params": [
            Wc.astype(np.float32),
            np.zeros(CNN_FILTERS, np.float32),
            Wf.astype(np.float32),
            np.zeros(CNN_CLASSES, np.float32),
        ],
        "x": x.astype(np.float32),
        "t": rng.integers(0, CNN_CLASSES, CNN_BATCH).astype(np.int64),
    }


class AgradCNN:
    """conv2d, relu, pooling, linear with agrad's functions and optimizers.SGD."""

    def __init__(self, data: dict, backend: Any) -> None:
        self.params = [agrad.Parameter(backend.asarray(p)) for p in data["params"]]
        self.optimizer = agrad.optimizers.SGD(lr=LR).setup(self.params)
        self.x, self.t = backend.asarray(data["x"]), backend.asarray(data["t"])
        self.backend, self.loss = backend, None

    def step(self) -> None:
        Wc, bc, Wf, bf = self.params
        for p in self.params:
            p.cleargrad()
        h = F.pooling(F.relu(F.conv2d(self.x, Wc, bc, stride=1, pad=1)), 2, 2)
        h = F.reshape(h, (h.shape[0], -1))
        self.loss = F.softmax_cross_entropy(F.linear(h, Wf, bf), self.t)
        self.loss.backward()
        self.optimizer.update()

    def results(self) -> list[np.ndarray]:
        to_host = self.backend.to_host
        return [to_host(self.loss.data)] + [to_host(p.grad.data) for p in self.params]


class HandCNN:
    """The same step by hand: im2col convolution, argmax pooling, manual backward."""

    def __init__(self, data: dict, device: Device) -> None:
        self.m, self.device = device.m, device
        self.params = [device.to_device(p) for p in data["params"]]
        self.x, self.t = device.to_device(data["x"]), device.to_device(data["t"])
        self.rows = self.m.arange(self.x.shape[0])

    def _im2col(self, x: Any, k: int, pad: int) -> Any:
        m = self.m
        n, c, h, w = x.shape
        oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
        img = m.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        col = m.empty((n, c, k, k, oh, ow), dtype=x.dtype)
        for j in range(k):
            for i in range(k):
                col[:, :, j, i, :, :] = img[:, :, j : j + oh, i : i + ow]
        return col

    def step(self) -> None:
        m = self.m
        Wc, bc, Wf, bf = self.params
        n = self.x.shape[0]
        # conv (stride 1, pad 1) + relu
        col = self._im2col(self.x, 3, 1)
        conv = m.tensordot(col, Wc, ((1, 2, 3), (1, 2, 3))) + bc  # (N, OH, OW, OC)
        conv = conv.transpose(0, 3, 1, 2)
        act = m.maximum(conv, 0)
        # 2x2 max pooling, stride 2: each window on the last axis
        _, c, h, w = act.shape
        windows = act.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
        windows = windows.reshape(n, c, h // 2, w // 2, 4)
        winner = windows.argmax(axis=-1)
        pooled = m.take_along_axis(windows, winner[..., None], axis=-1)[..., 0]
        flat = pooled.reshape(n, -1)
        logits = flat @ Wf + bf
        # softmax cross-entropy
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = m.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        self.loss = -(shifted[self.rows, self.t] - m.log(total[:, 0])).mean()
        g = e / total
        g[self.rows, self.t] -= 1
        g /= n
        gWf, gbf = flat.T @ g, g.sum(axis=0)
        gpooled = (g @ Wf.T).reshape(pooled.shape)
        gwindows = (m.arange(4) == winner[..., None]) * gpooled[..., None]
        gact = gwindows.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
        gconv = gact.reshape(n, c, h, w) * (conv > 0)
        gWc = m.tensordot(gconv, col, ((0, 2, 3), (0, 4, 5)))
        gbc = gconv.sum(axis=(0, 2, 3))
        self.grads = [gWc, gbc, gWf, gbf]
        for p, gp in zip(self.params, self.grads):
            p -= LR * gp

    def results(self) -> list[np.ndarray]:
        return [self.device.to_host(self.loss)] + [self.device.to_host(g) for g in self.grads]


class TorchCNN:
    def __init__(self, data: dict, device: Device) -> None:
        torch, dev = device.torch, device.torch_device
        self.torch = torch
        self.params = [torch.tensor(p, device=dev, requires_grad=True) for p in data["params"]]
        self.x = torch.tensor(data["x"], device=dev)
        self.t = torch.tensor(data["t"], device=dev)

    def step(self) -> None:
        torch = self.torch
        fn = torch.nn.functional
        Wc, bc, Wf, bf = self.params
        h = fn.max_pool2d(torch.relu(fn.conv2d(self.x, Wc, bc, padding=1)), 2, 2)
        self.loss = fn.cross_entropy(torch.addmm(bf, h.flatten(1), Wf), self.t)
        for p in self.params:
            p.grad = None
        self.loss.backward()
        with torch.no_grad():
            for p in self.params:
                p.sub_(p.grad, alpha=LR)

    def results(self) -> list[np.ndarray]:
        return [self.loss.detach().cpu().numpy()] + [p.grad.cpu().numpy() for p in self.params]


# -- per-op overhead ---------------------------------------------------------------------------
def _chain_kind(i: int) -> int:
    return i % 4  # sin, exp, *0.5, +x


class AgradChain:
    def __init__(self, x_host: np.ndarray, backend: Any) -> None:
        self.x = agrad.Variable(backend.asarray(x_host))
        self.backend = backend

    def step(self) -> None:
        x = self.x
        x.cleargrad()
        y = x
        for i in range(CHAIN_LENGTH):
            kind = _chain_kind(i)
            y = (
                F.sin(y)
                if kind == 0
                else F.exp(y)
                if kind == 1
                else y * 0.5
                if kind == 2
                else y + x
            )
        y.backward()
        self.y = y

    def results(self) -> list[np.ndarray]:
        return [self.backend.to_host(self.y.data), self.backend.to_host(self.x.grad.data)]


class HandChain:
    def __init__(self, x_host: np.ndarray, m: Any, to_device: Callable, to_host: Callable) -> None:
        self.m, self.x, self.to_host = m, to_device(x_host), to_host

    def step(self) -> None:
        m, x = self.m, self.x
        saved = []
        y = x
        for i in range(CHAIN_LENGTH):
            kind = _chain_kind(i)
            if kind == 0:
                saved.append(y)
                y = m.sin(y)
            elif kind == 1:
                y = m.exp(y)
                saved.append(y)
            elif kind == 2:
                y = y * 0.5
                saved.append(None)
            else:
                y = y + x
                saved.append(None)
        g = m.ones_like(y)
        gx = m.zeros_like(x)
        for i in range(CHAIN_LENGTH - 1, -1, -1):
            kind = _chain_kind(i)
            if kind == 0:
                g = g * m.cos(saved[i])
            elif kind == 1:
                g = g * saved[i]
            elif kind == 2:
                g = g * 0.5
            else:
                gx = gx + g
        self.y, self.gx = y, gx + g

    def results(self) -> list[np.ndarray]:
        return [self.to_host(self.y), self.to_host(self.gx)]


class TorchChain:
    def __init__(self, x_host: np.ndarray, torch: Any, device: str) -> None:
        self.torch = torch
        self.x = torch.tensor(x_host, device=device, requires_grad=True)

    def step(self) -> None:
        torch, x = self.torch, self.x
        x.grad = None
        y = x
        for i in range(CHAIN_LENGTH):
            kind = _chain_kind(i)
            y = (
                torch.sin(y)
                if kind == 0
                else torch.exp(y)
                if kind == 1
                else y * 0.5
                if kind == 2
                else y + x
            )
        y.backward(torch.ones_like(y))
        self.y = y

    def results(self) -> list[np.ndarray]:
        return [self.y.detach().cpu().numpy(), self.x.grad.cpu().numpy()]


# -- running the scenarios -------------------------------------------------------------------------
def run_scenario(
    name: str,
    unit: str,
    scale: float,
    impls: dict[str, Any],
    syncs: dict[str, Callable[[], None]],
    args: argparse.Namespace,
    rtol: float,
    notes: list[str],
) -> dict[str, Any]:
    """Check that every implementation agrees after one step, then time them interleaved."""
    row: dict[str, Any] = {"scenario": name, "unit": unit, "times": {}, "notes": list(notes)}
    for impl in impls.values():
        impl.step()
    mismatch = compare({lib: impl.results() for lib, impl in impls.items()}, rtol)
    if mismatch:
        row["check"] = "failed: " + mismatch
        print(f"  {name}: CHECK FAILED, not timed: {mismatch}", flush=True)
        return row
    row["check"] = "ok"
    medians = time_interleaved(
        {lib: impl.step for lib, impl in impls.items()},
        syncs,
        repeats=args.repeats,
        sample_s=args.sample_ms / 1000,
    )
    row["times"] = {lib: seconds * scale for lib, seconds in medians.items()}
    shown = ", ".join(f"{lib} {value:.4g} {unit}" for lib, value in row["times"].items())
    print(f"  {name}: {shown}", flush=True)
    return row


def gpu_libraries(device: Device) -> tuple[str, str, str]:
    suffix = "-emulated" if device.emulate else ""
    return (
        f"agrad-{device.xp_name}{suffix}",
        f"{device.xp_name}-hand{suffix}",
        "torch-" + (device.torch_device + suffix if device.torch is not None else "cuda"),
    )


def run_mlp(device: Device, args: argparse.Namespace) -> list[dict]:
    agrad_lib, hand_lib, torch_lib = gpu_libraries(device)
    shapes = [((784, 1000, 1000, 10), 100, "sigmoid"), ((784, 1000, 1000, 10), 100, "relu")]
    shapes.append(((784, 4096, 4096, 10), 1024, "sigmoid"))
    if not args.quick:
        shapes.append(((784, 4096, 4096, 10), 1024, "relu"))
    rows = []
    for sizes, batch, activation in shapes:
        data = mlp_data(sizes, batch)
        impls = {
            agrad_lib: AgradMLP(copy.deepcopy(data), activation, device.backend),
            hand_lib: HandMLP(data, activation, device),
        }
        notes = []
        if device.torch is not None:
            impls[torch_lib] = TorchMLP(data, activation, device)
        else:
            notes.append(f"{torch_lib} skipped: {device.torch_why}")
        name = f"mlp {'-'.join(map(str, sizes))} batch {batch} {activation}"
        syncs = dict.fromkeys(impls, device.sync)
        rows.append(run_scenario(name, "ms", 1e3, impls, syncs, args, 2e-3, notes))
    return rows


def run_cnn(device: Device, args: argparse.Namespace) -> list[dict]:
    agrad_lib, hand_lib, torch_lib = gpu_libraries(device)
    name = f"cnn conv3x3x{CNN_FILTERS}-relu-pool2-linear batch {CNN_BATCH} 3x32x32"
    missing = [f for f in ("conv2d", "pooling") if not hasattr(F, f)]
    if missing:
        why = f"agrad.functions has no {', '.join(missing)}"
        print(f"  {name}: skipped ({why})", flush=True)
        return [{"scenario": name, "unit": "ms", "times": {}, "check": "skipped: " + why}]
    data = cnn_data()
    impls = {
        agrad_lib: AgradCNN(copy.deepcopy(data), device.backend),
        hand_lib: HandCNN(data, device),
    }
    notes = []
    if device.torch is not None:
        impls[torch_lib] = TorchCNN(data, device)
    else:
        notes.append(f"{torch_lib} skipped: {device.torch_why}")
    syncs = dict.fromkeys(impls, device.sync)
    return [run_scenario(name, "ms", 1e3, impls, syncs, args, 2e-3, notes)]


def run_overhead(device: Device, args: argparse.Namespace) -> list[dict]:
    agrad_lib, hand_lib, torch_lib = gpu_libraries(device)
    numpy_backend = agrad.get_backend("numpy")
    rows = []
    shapes = [(1,), (100,)] if args.quick else [(1,), (100,), (1000, 1000)]
    for shape in shapes:
        x_host = np.random.default_rng(0).uniform(-1, 1, shape)
        impls = {
            agrad_lib: AgradChain(x_host, device.backend),
            hand_lib: HandChain(x_host, device.m, device.to_device, device.to_host),
        }
        syncs: dict[str, Callable[[], None]] = dict.fromkeys(impls, device.sync)
        notes = []
        if device.torch is not None:
            impls[torch_lib] = TorchChain(x_host, device.torch, device.torch_device)
            syncs[torch_lib] = device.sync
        else:
            notes.append(f"{torch_lib} skipped: {device.torch_why}")
        if len(shape) == 1:
            # the CPU figure beside it, on this machine's CPU, single-threaded (small shapes
            # only: on (1000, 1000) the CPU measures NumPy's loops, not overhead)
            impls["agrad-numpy-cpu"] = AgradChain(x_host, numpy_backend)
            impls["numpy-hand-cpu"] = HandChain(x_host, np, np.asarray, np.asarray)
            syncs["agrad-numpy-cpu"] = syncs["numpy-hand-cpu"] = _no_sync
        name = f"overhead chain {CHAIN_LENGTH} ops shape {shape}"
        per_op_us = 1e6 / CHAIN_LENGTH
        rows.append(run_scenario(name, "us/op", per_op_us, impls, syncs, args, 1e-9, notes))
    return rows


# -- report ----------------------------------------------------------------------------------------
def versions(device: Device) -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "agrad": agrad.__version__,
        "numpy": np.__version__,
    }
    for module in ("cupy", "array_api_compat", "torch"):
        try:
            found[module] = importlib.import_module(module).__version__
        except ImportError:
            found[module] = "not installed"
    if not device.emulate:
        cupy = device.m
        found["cuda_runtime"] = str(cupy.cuda.runtime.runtimeGetVersion())
        found["cuda_driver"] = str(cupy.cuda.runtime.driverGetVersion())
    return found


def table(rows: list[dict], device: Device) -> str:
    agrad_lib, hand_lib, torch_lib = gpu_libraries(device)
    lines = []
    header = f"| scenario | {agrad_lib} | {hand_lib} | {torch_lib} | agrad/hand | agrad/torch |"
    header += " target | check |"
    lines += [header, "|" + " --- |" * 8]
    overhead_rows = [r for r in rows if r["unit"] == "us/op"]
    for row in rows:
        if row["unit"] == "us/op":
            continue
        times = row["times"]
        lines.append(
            f"| {row['scenario']} ({row['unit']}) | {_cell(times.get(agrad_lib))} | "
            f"{_cell(times.get(hand_lib))} | {_cell(times.get(torch_lib))} | "
            f"{_ratio(times, agrad_lib, hand_lib)} | {_ratio(times, agrad_lib, torch_lib)} | "
            f"{_target(times, agrad_lib, hand_lib)} | {row['check']} |"
        )
    if overhead_rows:
        lines += [
            "",
            f"| per-op overhead (us/op, fwd+bwd) | {agrad_lib} | {hand_lib} | {torch_lib} | "
            "agrad-numpy-cpu | numpy-hand-cpu | agrad/torch (gpu) | agrad/hand (cpu) | check |",
            "|" + " --- |" * 9,
        ]
        for row in overhead_rows:
            t = row["times"]
            lines.append(
                f"| {row['scenario']} | {_cell(t.get(agrad_lib))} | {_cell(t.get(hand_lib))} | "
                f"{_cell(t.get(torch_lib))} | {_cell(t.get('agrad-numpy-cpu'))} | "
                f"{_cell(t.get('numpy-hand-cpu'))} | {_ratio(t, agrad_lib, torch_lib)} | "
                f"{_ratio(t, 'agrad-numpy-cpu', 'numpy-hand-cpu')} | {row['check']} |"
            )
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _ratio(times: dict, a: str, b: str) -> str:
    if a in times and b in times and times[b] > 0:
        return f"{times[a] / times[b]:.2f}x"
    return "n/a"


def _target(times: dict, a: str, b: str) -> str:
    if a not in times or b not in times:
        return "n/a"
    ok = times[a] / times[b] <= TARGET_VS_HAND
    return f"<= {TARGET_VS_HAND}x: {'met' if ok else 'MISSED'}"


# -- main ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes and repeats (~20 s)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--only", default="mlp,cnn,overhead", help="comma-separated scenarios")
    parser.add_argument("--repeats", type=int, default=None, help="samples per implementation")
    parser.add_argument("--sample-ms", type=float, default=None, help="length of one sample")
    parser.add_argument(
        "--emulate-on-cpu",
        action="store_true",
        help="test this script without a GPU: NumPy for CuPy, torch CPU for CUDA",
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 15
    if args.sample_ms is None:
        args.sample_ms = 20.0 if args.quick else 50.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.emulate_on_cpu:
        usable, why = agrad.get_backend("cupy").probe()
        if not usable:
            print(f"gpu_bench: no usable CUDA device, nothing measured: {why}", flush=True)
            print("gpu_bench: run it on a machine with a CUDA GPU and CuPy (exit status 3)")
            return EXIT_NO_GPU
    device = Device(args.emulate_on_cpu)
    where = "EMULATED on the CPU (numbers mean nothing)" if device.emulate else ""
    if not device.emulate:
        where = device.backend.device_name()
        if os.environ.get("CUPY_TF32", "0") != "0":
            print("gpu_bench: warning: CUPY_TF32 is set; CuPy matrix products use TF32")
    info = {"device": where, "versions": versions(device), "quick": args.quick}
    info["settings"] = {
        "repeats": args.repeats,
        "sample_ms": args.sample_ms,
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "tf32": "off",
    }
    print(f"gpu_bench on {where}", flush=True)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()), flush=True)
    if device.torch is None:
        print(f"gpu_bench: PyTorch column skipped: {device.torch_why}", flush=True)
    runners = {"mlp": run_mlp, "cnn": run_cnn, "overhead": run_overhead}
    rows: list[dict] = []
    for name in args.only.split(","):
        name = name.strip()
        if name not in runners:
            print(f"gpu_bench: unknown scenario {name!r}; known: {', '.join(runners)}")
            return EXIT_ERROR
        print(f"{name}:", flush=True)
        rows += runners[name](device, args)
    report = table(rows, device)
    print()
    print(report)
    info["rows"] = rows
    info["table"] = report
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(info, indent=2) + "\n")
        print(f"\nresults written to {args.json}")
    failed = [r["scenario"] for r in rows if r["check"].startswith("failed")]
    if failed:
        print(f"gpu_bench: results disagree in: {'; '.join(failed)}")
        return EXIT_MISMATCH
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
