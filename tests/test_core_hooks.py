"""Variable.register_post_accumulate_grad_hook: called once per backward with the final grad."""

from __future__ import annotations

import gc
import weakref

from agrad import Parameter, Variable
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
    h.register_post_accumulate_grad_hook(calls.append)
    x.register_post_accumulate_grad_hook(calls.append)
    (h * 2.0).backward(create_graph=True)
    assert calls == [x]  # h has a creator: it is not a leaf
    assert float(as_numpy(x.grad.data)) == 12.0


def test_a_hook_does_not_keep_its_variable_alive(xp):
    w = Parameter(xp.asarray(1.0))
    w.register_post_accumulate_grad_hook(lambda v: None)
    ref = weakref.ref(w)
    del w
    gc.collect()
    assert ref() is None
