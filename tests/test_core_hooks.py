"""Variable.register_post_accumulate_grad_hook: called once per backward with the final grad."""

from __future__ import annotations

import gc
import weakref

import pytest

from agrad import Function, Parameter, Variable
from agrad.cuda import as_numpy


def test_hook_sees_the_final_gradient_of_a_leaf_used_twice(xp):
    w = Parameter(xp.asarray([2.0, 3.0]))
    seen = []
    w.register_post_accumulate_grad_hook(lambda v: seen.append(as_numpy(v.grad.data).tolist()))
    y = (w * w + w * 3.0).sum()  # w reaches the leaf through three paths
    y.backward()
    assert seen == [[7.0, 9.0]]  # 2w + 3, once, after every path was added


def test_hook_runs_every_backward_and_remove_stops_it(xp):
    w = Parameter(xp.asarray(1.5))
    calls = []
    handle = w.register_post_accumulate_grad_hook(calls.append)
    (w * 2.0).backward()
    (w * 2.0).backward()
    assert calls == [w, w]
    assert float(as_numpy(w.grad.data)) == 4.0  # accumulated as before
    handle.remove()
    handle.remove()  # twice is harmless
    (w * 2.0).backward()
    assert len(calls) == 2


def test_hook_is_for_leaves_only_also_with_create_graph(xp):
    x = Variable(xp.asarray(3.0))
    h = x * x
    calls = []
    with pytest.raises(RuntimeError, match="only a leaf"):
        h.register_post_accumulate_grad_hook(calls.append)  # h has a creator (as PyTorch)
    x.register_post_accumulate_grad_hook(calls.append)
    (h * 2.0).backward(create_graph=True)
    assert calls == [x]
    assert float(as_numpy(x.grad.data)) == 12.0


def test_hook_fires_as_soon_as_the_leaf_is_final_not_at_the_end(xp):
    # w1 is used only by the last function of the forward pass: its gradient is final after the
    # first step of backward, long before w0's; data-parallel training sends it then
    w0, w1 = Parameter(xp.asarray(2.0)), Parameter(xp.asarray(3.0))
    order = []
    w0.register_post_accumulate_grad_hook(lambda v: order.append("w0"))
    w1.register_post_accumulate_grad_hook(lambda v: order.append("w1"))
    h = w0 * 1.0
    for _ in range(5):
        h = h * 1.5
    y = h * w1

    class Spy(Function):
        retain_inputs = retain_outputs = ()

        def forward(self, x):
            return x

        def vjp(self, d, xs, ys, gys):
            order.append("middle")
            return gys[0]

    y = Spy()(y)
    h2 = Spy()(h)  # noqa: F841 - a second consumer keeps h's creator in the graph
    y.backward()
    assert order.index("w1") < order.index("w0")


def test_unused_hooked_leaf_gets_no_call(xp):
    w = Parameter(xp.asarray(1.0))
    calls = []
    w.register_post_accumulate_grad_hook(calls.append)
    x = Variable(xp.asarray(2.0))
    (x * 3.0).backward()
    assert calls == []


def test_a_hook_does_not_keep_its_variable_alive(xp):
    w = Parameter(xp.asarray(1.0))
    w.register_post_accumulate_grad_hook(lambda v: None)
    ref = weakref.ref(w)
    del w
    gc.collect()
    assert ref() is None
