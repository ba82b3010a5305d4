"""How fast can a DeZero-shaped eager autograd be in CPython? The 200-op (1,) chain of
``scenarios/overhead.py`` through two bare autograds, against the same math by hand and agrad.

``python benchmarks/eager_floor.py`` (1 thread, collector off, best of 7, µs per op).

Both bare autograds keep DeZero's objects and nothing else: a Variable (data, grad, creator,
generation), a node per operation holding its inputs and a weak reference to its output, and a
backward pass in generation order that accumulates gradients. They have none of what agrad adds
on top: no release of kept arrays after backward, no separate graph nodes (their graph keeps
every Variable's data alive), no hooks, anomaly mode, ``no_grad``, dtype and shape checks,
backend dispatch or DeZero's clearing of intermediate gradients. "bare" is written plainly;
"bare, specialised" takes one or two inputs without building lists, as agrad's hot path does.
Their ratio to the hand-written step is the floor an eager design of this shape can reach.
"""

from __future__ import annotations

import gc
import heapq
import os
import sys
import timeit
import weakref
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from scenarios import overhead  # noqa: E402

ROUNDS = 200 // overhead.OPS_PER_ROUND  # of sin, exp, * 0.5, + x


class _Var:
    __slots__ = ("__weakref__", "creator", "data", "generation", "grad")

    def __init__(self, data):
        self.data, self.grad, self.creator, self.generation = data, None, None, 0

    def __mul__(self, c):
        return _Scale(c)(self)

    def __add__(self, other):
        return _Add()(self, other)


def _call_plain(self, *inputs):
    y = _Var(self.forward(*[x.data for x in inputs]))
    self.generation = max([x.generation for x in inputs])
    y.creator, y.generation = self, self.generation + 1
    self.inputs, self.outputs = inputs, (weakref.ref(y),)
    return y


def _call_specialised(self, a, b=None):
    if b is None:
        y = _Var(self.forward(a.data))
        generation = a.generation
        self.inputs = (a,)
    else:
        y = _Var(self.forward(a.data, b.data))
        generation = a.generation if a.generation >= b.generation else b.generation
        self.inputs = (a, b)
    self.generation = generation
    y.creator, y.generation = self, generation + 1
    self.outputs = (weakref.ref(y),)
    return y


class _Node:
    __slots__ = ("generation", "inputs", "kept", "outputs")
    __call__ = _call_plain  # (main() sets the form it times)


class _Sin(_Node):
    __slots__ = ()

    def forward(self, x):
        self.kept = x
        return np.sin(x)

    def backward(self, gy):
        return (gy * np.cos(self.kept),)


class _Exp(_Node):
    __slots__ = ()

    def forward(self, x):
        self.kept = np.exp(x)
        return self.kept

    def backward(self, gy):
        return (gy * self.kept,)


class _Scale(_Node):
    __slots__ = ("c",)

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x * self.c

    def backward(self, gy):
        return (gy * self.c,)


class _Add(_Node):
    __slots__ = ()

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return (gy, gy)


def _backward(y):
    y.grad = np.ones_like(y.data)
    heap, seen, tick = [(-y.creator.generation, 0, y.creator)], {y.creator}, 1
    while heap:
        node = heapq.heappop(heap)[2]
        for x, gx in zip(node.inputs, node.backward(node.outputs[0]().grad)):
            x.grad = gx if x.grad is None else x.grad + gx
            creator = x.creator
            if creator is not None and creator not in seen:
                seen.add(creator)
                heapq.heappush(heap, (-creator.generation, tick, creator))
                tick += 1


def _bare_step(x0):
    x = _Var(x0)

    def step():
        y = x
        for _ in range(ROUNDS):
            y = _Sin()(y)
            y = _Exp()(y)
            y = y * 0.5
            y = y + x
        x.grad = None
        _backward(y)
        return y.data, x.grad

    return step


def _per_op(step) -> float:
    return min(timeit.repeat(step, number=100, repeat=7)) / 100 / (4 * ROUNDS) * 1e6


def main() -> None:
    x0 = overhead._input((1,))
    hand, hand_result = overhead._numpy(x0, ROUNDS)  # the benchmark suite's own steps
    agrad_step, agrad_result = overhead._agrad(x0, ROUNDS)
    hand()
    expected = hand_result()
    agrad_step()
    steps = {"bare": _bare_step(x0), "bare, specialised": _bare_step(x0)}
    gc.disable()
    times = {"hand-written NumPy": _per_op(hand)}
    for name, step in steps.items():
        _Node.__call__ = _call_specialised if name == "bare, specialised" else _call_plain
        for got, want in zip(step(), (expected["y"], expected["gx"])):
            np.testing.assert_allclose(got, want, rtol=1e-12)
        times[name] = _per_op(step)
    for got, want in zip(agrad_result().values(), expected.values()):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    times["agrad"] = _per_op(agrad_step)
    gc.enable()
    base = times["hand-written NumPy"]
    print("| step | µs per op | / hand-written |\n|---|--:|--:|")
    for name, t in times.items():
        print(f"| {name} | {t:.2f} | {t / base:.2f}x |")


if __name__ == "__main__":
    main()
