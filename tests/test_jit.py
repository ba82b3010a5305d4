"""agrad.jit: a jitted step equals the eager step, call for call, on every backend."""

from __future__ import annotations

import collections
import dataclasses
import enum
import functools
import itertools
import math
import types
import warnings
import weakref
from typing import Any

import numpy as np
import pytest

import agrad
import agrad.functions as F
import agrad.layers as L
from agrad import Variable, optimizers

# XLA may fuse and reorder floating-point work; every other backend replays the same calls
EXACT = {"numpy", "cupy", "array_api_strict", "torch", "dask"}


@pytest.fixture(autouse=True, params=["interpreted", "generated"])
def replay_form(request, monkeypatch):
    """Every test runs twice: replays by the interpreter, and by generated code from the
    first replay on (a jitted step switches from one to the other after a few calls)."""
    callspec = getattr(request.node, "callspec", None)
    if request.param == "generated" and callspec and callspec.params.get("xp") == "jax":
        pytest.skip(
            "JAX replays the step compiled by XLA, by neither replay form: the 'interpreted' "
            "run of this test covers it"
        )
    after = 10**9 if request.param == "interpreted" else 0
    monkeypatch.setattr(agrad.tracing.program, "GENERATE_AFTER", after)
    return request.param


def host(x):
    if isinstance(x, Variable):
        x = x.data
    if isinstance(x, (np.ndarray, np.generic, float)):
        return np.asarray(x, dtype=np.float64)
    return np.asarray(agrad.backends.backend_of(x).to_host(x), dtype=np.float64)


def assert_same(a, b):
    if agrad.current_backend().name in EXACT:
        np.testing.assert_array_equal(host(a), host(b))
    else:
        np.testing.assert_allclose(host(a), host(b), rtol=1e-5, atol=1e-6)


def assert_jit_matches_eager(run):
    """``run(jit)`` runs its steps eagerly (False) or jitted (True) and returns what to compare,
    in order: the jitted run must give what the eager one gives."""
    for expected, got in zip(run(False), run(True)):
        assert_same(expected, got)


def data(shape, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return agrad.current_backend().asarray(rng.standard_normal(shape), dtype=dtype)


# 6,000 elements: above the size from which a replay's temporaries are large (dropped at once,
# and kept in buffers where the backend allows)
LARGE = (50, 120)


def keeps_buffers():
    """Whether this backend's generated replays keep large temporaries in buffers."""
    backend = agrad.current_backend()
    return backend.scratch_layout(backend.asarray(np.zeros(LARGE))) is not None


def labels(n, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    return agrad.current_backend().asarray(rng.integers(0, classes, size=n))


def twin_models(make):
    """Two models with equal weights (the second a copy of the first)."""
    a, b = make(), make()
    x = data((4, 2))
    a(x), b(x)  # create the lazily made weights
    for pa, pb in zip(a.params(), b.params()):
        pb.data = agrad.current_backend().xp.asarray(pa.data, copy=True)
    return a, b


class Net(agrad.Model):
    def __init__(self, batch_norm=False, dropout=0.0):
        super().__init__()
        self.l1 = L.Linear(8)
        self.bn = L.BatchNorm() if batch_norm else None
        self.l2 = L.Linear(3)
        self.dropout = dropout

    def forward(self, x):
        h = self.l1(x)
        if self.bn is not None:
            h = self.bn(h)
        h = F.tanh(h)
        if self.dropout:
            h = F.dropout(h, self.dropout)
        return self.l2(h)


def make_step(model, optimizer):
    def step(x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()
        return loss

    return step


OPTIMIZERS = {
    "SGD": lambda: optimizers.SGD(lr=0.1),
    "MomentumSGD": lambda: optimizers.MomentumSGD(lr=0.1),
    "Adam": lambda: optimizers.Adam(alpha=0.01),
    "AdaGrad": lambda: optimizers.AdaGrad(lr=0.1),
    "AdaDelta": lambda: optimizers.AdaDelta(),
}


def run_both(make_model, make_optimizer, batches, hooks=(), seed=None, change=None, change_at=2):
    """Train twins eagerly and jitted, checking they agree after every step; ``change(model,
    optimizer)`` is applied to both before step ``change_at``."""
    eager_model, jit_model = twin_models(make_model)
    eager_opt = make_optimizer().setup(eager_model)
    jit_opt = make_optimizer().setup(jit_model)
    for hook in hooks:
        eager_opt.add_hook(hook())
        jit_opt.add_hook(hook())
    eager_step = make_step(eager_model, eager_opt)
    jit_step = agrad.jit(make_step(jit_model, jit_opt))
    for i, (x, t) in enumerate(batches):
        if change is not None and i == change_at:
            change(eager_model, eager_opt)
            change(jit_model, jit_opt)
        if seed is not None:
            agrad.seed(seed)
        eager_loss = eager_step(x, t)
        if seed is not None:
            agrad.seed(seed)
        jit_loss = jit_step(x, t)
        assert isinstance(jit_loss, Variable)
        assert_same(eager_loss, jit_loss)
        for (name, pa), (_, pb) in zip(eager_model.named_params(), jit_model.named_params()):
            assert_same(pa, pb), name
    return eager_model, jit_model, eager_opt, jit_opt, jit_step


def batches(n=5, size=6, seed=0):
    return [(data((size, 2), seed + i), labels(size, seed=seed + i)) for i in range(n)]


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_training_steps_equal_eager(xp, name):
    *_, step = run_both(Net, OPTIMIZERS[name], batches())
    info = step.cache_info()
    # the first call finds no gradients and no optimizer slots, the second does; then replays
    assert info["traces"] <= 2, info


def test_hooks_equal_eager(xp):
    hooks = (lambda: optimizers.WeightDecay(1e-2), lambda: optimizers.ClipGrad(0.5))
    run_both(Net, OPTIMIZERS["MomentumSGD"], batches(), hooks=hooks)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rates_given_as_numpy_scalars_are_followed(xp, dtype):
    if agrad.current_backend().name == "array_api_strict":
        pytest.skip("array-api-strict refuses NumPy scalars as operands, eagerly as well")

    def scalar(value):  # NumPy's float32(0.1): a number that keeps its dtype in arithmetic
        return np.dtype(dtype).type(value)

    def change(model, optimizer):
        optimizer.lr = scalar(0.5)
        optimizer.hooks[0].rate = scalar(0.2)

    hooks = (lambda: optimizers.WeightDecay(scalar(0.01)),)
    run_both(Net, lambda: optimizers.SGD(lr=scalar(0.1)), batches(), hooks=hooks, change=change)


def test_an_embedding_reads_new_ids_at_every_call(xp):
    # integer ids as an argument: traced like any array (not read on the host to check them,
    # as eagerly on the CPU), so every replay picks the rows of its own ids
    class Tagger(agrad.Model):
        def __init__(self):
            super().__init__()
            self.embed = L.EmbedID(5, 4)
            self.embed.W.data = data((5, 4), 3)
            self.out = _linear(3, 4, seed=4)

        def forward(self, ids):
            return self.out(F.tanh(self.embed(ids)))

    def train(jit):
        model = Tagger()
        optimizer = optimizers.SGD(lr=0.5).setup(model)
        step = make_step(model, optimizer)
        step = agrad.jit(step) if jit else step
        rng = np.random.default_rng(0)
        ids = [agrad.current_backend().asarray(rng.integers(0, 5, size=6)) for _ in range(4)]
        losses = [step(i, labels(6, seed=k)) for k, i in enumerate(ids)]
        return [*losses, model.embed.W]

    assert_jit_matches_eager(train)


def _linear(out_size, in_size, seed):
    """A Linear layer with weights made from ``seed`` (the same in both twins)."""
    layer = L.Linear(out_size)
    layer(data((1, in_size)))
    layer.W.data = data(layer.W.shape, seed)
    return layer


def _append_layer(model, optimizer):
    layer = _linear(3, 3, seed=7)
    model.layers.append(layer)
    model.l9 = layer


def _replace_listed_layer(model, optimizer):
    model.layers[0] = _linear(8, 2, seed=8)  # (``model.l0`` still names the old one)


def _halve_gradients(params):
    for p in params:
        if p.grad is not None:
            p.grad.data = p.grad.data * 0.5


STRUCTURE_CHANGES = {
    "a layer appended": (_append_layer, {}),
    "a listed layer replaced": (_replace_listed_layer, {}),
    "another activation": (lambda m, o: setattr(m, "activation", F.relu), {}),
    "a hook added": (lambda m, o: o.add_hook(optimizers.WeightDecay(0.1)), {}),
    "a function hook added": (lambda m, o: o.add_hook(_halve_gradients), {}),
    "a function hook replaced": (
        lambda m, o: o.hooks.__setitem__(0, lambda params: None),
        {"hooks": (lambda: _halve_gradients,)},
    ),
    "eval()": (lambda m, o: m.eval(), {}),
}


@pytest.mark.parametrize("change", list(STRUCTURE_CHANGES))
def test_a_model_or_optimizer_changed_between_calls_traces_again(xp, change):
    # a replay of the program traced before the change would be silently wrong
    change_fn, options = STRUCTURE_CHANGES[change]
    *_, step = run_both(
        lambda: agrad.models.MLP((8, 3)),
        OPTIMIZERS["MomentumSGD"],
        batches(n=6),
        change=change_fn,
        change_at=3,
        **options,
    )
    assert step.cache_info()["traces"] >= 3  # (two before the change: no gradients, then some)


class TwoSquare(agrad.Model):
    """Two layers of one shape, so that their weights can be tied."""

    def __init__(self):
        super().__init__()
        self.a = L.Linear(2)
        self.b = L.Linear(2)
        self.c = L.Linear(3)

    def forward(self, x):
        return self.c(F.tanh(self.b(F.tanh(self.a(x)))))


def _tie(model, optimizer):
    model.b.W = model.a.W


def _untie(model, optimizer):
    model.b.W = agrad.Parameter(agrad.current_backend().xp.asarray(model.a.W.data, copy=True))


@pytest.mark.parametrize("optimizer", ["SGD", "MomentumSGD"])
@pytest.mark.parametrize("change", [_tie, _untie], ids=["tied", "untied"])
def test_weights_tied_or_untied_between_calls_trace_again(xp, change, optimizer):
    def make():
        model = TwoSquare()
        if change is _untie:
            model(data((1, 2)))
            _tie(model, None)  # tied from the start, untied later
        return model

    *_, step = run_both(make, OPTIMIZERS[optimizer], batches(n=6), change=change, change_at=3)
    assert step.cache_info()["traces"] >= 3


def test_one_variable_passed_twice_is_another_program_than_two(xp):
    def step(pair):
        first, second = pair
        y = F.sum(first * second * second)
        first.cleargrad()
        second.cleargrad()
        y.backward()
        return first.grad, second.grad

    jitted = agrad.jit(step)
    a, b = Variable(data((3,), 1)), Variable(data((3,), 2))
    # distinct, then one Variable twice (a trace of its own), then distinct again: the second
    # entry is tried first and must see that the two places hold two Variables now
    for pair in ([a, b], [a, a], [b, a], [b, b], [a, b]):
        expected = [host(g) for g in step(pair)]
        for got, want in zip(jitted(pair), expected):
            assert_same(got, want)


def test_a_layer_keeps_only_a_weak_reference_to_a_traced_input(xp):
    # as to an array eagerly: a strong one would keep the trace's array alive, and make it a
    # second place of the input it came from
    layer = L.Linear(3)
    f = agrad.jit(lambda v: layer(v))
    f(data((2, 4)))
    assert all(isinstance(ref, weakref.ref) for ref in layer.inputs)


def test_an_array_held_by_two_plain_objects_is_checked_at_both(xp):
    # nothing else names the second holder: its check alone must bring it into the entry
    first, second = types.SimpleNamespace(), types.SimpleNamespace()
    first.a = second.a = data((3,), 1)
    f = agrad.jit(lambda v: v * first.a + second.a)
    x = data((3,), 2)
    for call in range(4):
        if call == 2:
            second.a = data((3,), 3)
        assert_same(f(x), host(x) * host(first.a) + host(second.a))


def test_a_gradient_returned_by_one_call_keeps_its_value_when_the_next_one_traces(xp):
    w = agrad.Parameter(data((3,)))

    def step(x):
        w.cleargrad()
        F.sum(w * x).backward()
        return w.grad

    jitted = agrad.jit(step)
    x1, x2, x3 = data((3,), 1), data((3,), 2), data((3,), 3)
    first = jitted(x1)  # no gradient before: a trace
    second = jitted(x2)  # a gradient before: a trace that reads it, then clears it
    third = jitted(x3)
    assert jitted.cache_info()["traces"] == 2
    for got, expected in ((first, x1), (second, x2), (third, x3)):
        assert_same(got, expected)


@pytest.mark.parametrize("update", ["in place", "none"])
def test_an_array_two_parameters_shared_at_the_trace_and_parted_later(xp, update):
    # one array, so one input of the program: each place must still hold it at a replay
    def run(jit):
        shared = data((3,))
        a, b = agrad.Parameter(shared), agrad.Parameter(shared)

        def step(x):
            y = F.sum(a * x + b * b)
            a.cleargrad()
            b.cleargrad()
            y.backward()
            if update == "in place":
                a.data -= 0.1 * a.grad.data
                b.data -= 0.1 * b.grad.data
            return y, a.grad, b.grad

        step = agrad.jit(step) if jit else step
        results = []
        for i in range(4):
            if i == 2:
                b.data = agrad.current_backend().xp.asarray(b.data, copy=True) * 2.0
            results += step(data((3,), 1))
        return [*results, a, b]

    assert_jit_matches_eager(run)


@pytest.mark.parametrize("new_optimizer", ["MomentumSGD", "Adam"])
def test_another_optimizer_at_the_same_place_traces_again(xp, new_optimizer):
    # an SGD swapped for another optimizer that has `lr`, `target` and `hooks` too
    eager_model, jit_model = twin_models(Net)
    runs = []
    for model, jitted in ((eager_model, False), (jit_model, True)):
        holder = {"optimizer": OPTIMIZERS["SGD"]().setup(model)}

        def step(x, t, model=model, holder=holder):
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            holder["optimizer"].update()
            return loss

        step = agrad.jit(step) if jitted else step
        losses = []
        for i, (x, t) in enumerate(batches(n=6)):
            if i == 3:
                holder["optimizer"] = OPTIMIZERS[new_optimizer]().setup(model)
            losses.append(step(x, t))
        runs.append(losses)
    for a, b in zip(*runs):
        assert_same(a, b)


def test_a_model_of_another_class_at_the_same_place_traces_again(xp):
    class Doubled(Net):
        def forward(self, x):
            return super().forward(x) * 2.0

    holder = {"model": twin_models(Net)[0]}
    forward = agrad.jit(lambda x: holder["model"](x))
    x = data((4, 2))
    forward(x)
    forward(x)
    doubled = Doubled()
    doubled(x)
    for p, q in zip(doubled.params(), holder["model"].params()):
        p.data = q.data
    holder["model"] = doubled
    assert_same(doubled(x), forward(x))


def test_a_parameter_list_that_grows_or_shrinks_between_calls_traces_again(xp):
    def run(jitted):
        params = [Variable(data((3,), 1)), Variable(data((3,), 2))]

        def step():  # the book's hand-written update over a list of parameters
            loss = 0
            for p in params:
                loss = loss + F.sum(p * p)
            for p in params:
                p.cleargrad()
            loss.backward()
            for p in params:
                p.data -= 0.1 * p.grad.data
            return loss

        step = agrad.jit(step) if jitted else step
        losses = []
        for i in range(5):
            if i == 2:
                params.append(Variable(data((3,), 3)))
            if i == 4:
                params.pop(0)
            losses.append(step())
        return losses

    assert_jit_matches_eager(run)


def test_the_same_variable_twice_where_the_trace_had_two_traces_again(xp):
    @agrad.jit
    def f(u, v):
        return F.sum(u * 2.0 + v * 3.0)

    u, v = Variable(data((3,), 1)), Variable(data((3,), 2))
    f(u, v).backward()
    f(u, v).backward()  # (a replay)
    u.cleargrad()
    f(u, u).backward()  # one Variable for both: its gradient is 2 + 3
    np.testing.assert_allclose(host(u.grad), np.full(3, 5.0))


def test_a_layer_setting_changed_between_calls_traces_again(xp):
    def change(model, optimizer):
        model.bn.eps = 0.5  # a Python number of a layer, read at the trace
        model.dropout = 0.0

    run_both(
        lambda: Net(batch_norm=True, dropout=0.5),
        OPTIMIZERS["SGD"],
        batches(n=5),
        seed=3,
        change=change,
    )


def test_a_jitted_forward_follows_eval_and_train(xp):
    model, _ = twin_models(lambda: Net(batch_norm=True, dropout=0.5))
    forward = agrad.jit(lambda x: model(x))
    x = data((4, 2))
    # (the first two calls as made: `training` is the class's default, not the layers' own)
    for mode in (None, None, "eval", "eval", "train"):
        if mode is not None:
            getattr(model, mode)()
        agrad.seed(0)
        eager = model(x)
        agrad.seed(0)
        assert_same(eager, forward(x))
    assert forward.cache_info()["entries"] == 2  # one program per mode, each traced once


class Recurrent(agrad.Model):
    def __init__(self, cell):
        super().__init__()
        self.cell = cell(4)
        self.out = L.Linear(1)

    def reset_state(self):
        self.cell.reset_state()

    def forward(self, x):
        return self.out(self.cell(x))


@pytest.mark.parametrize("cell", ["RNN", "LSTM"])
def test_truncated_backprop_through_time_across_jitted_calls_equals_eager(xp, cell):
    # the book's loop (step 59): a jitted time step that does not call backward; its hidden
    # state, stored by the layer, carries the graph from call to call until unchain_backward
    eager_model, jit_model = twin_models(lambda: Recurrent(getattr(L, cell)))
    xs = [data((1, 2), seed=10 + i) for i in range(7)]
    runs = []
    for model, jitted in ((eager_model, False), (jit_model, True)):
        model.reset_state()
        optimizer = optimizers.SGD(lr=0.1).setup(model)
        step = agrad.jit(lambda x, model=model: model(x)) if jitted else model
        loss, losses = 0, []
        for i, x in enumerate(xs):
            y = step(x)
            loss = loss + F.sum(y * y)
            if i % 3 == 2 or i == len(xs) - 1:  # BPTT over 3 steps
                model.cleargrads()
                loss.backward()
                loss.unchain_backward()
                optimizer.update()
                losses.append(loss)
                loss = 0
        runs.append((losses, [p.data for p in model.params()]))
    # the call's node sums a parameter's gradients within the call before the graph sums
    # the calls' (an LSTM's `h` feeds four layers): float32 rounding may differ by an ulp
    for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1]):
        np.testing.assert_allclose(host(a), host(b), rtol=1e-5, atol=1e-7)


def test_backward_inside_jit_reaching_a_hidden_state_history_is_refused(xp):
    model, _ = twin_models(lambda: Recurrent(L.RNN))
    model.reset_state()

    @agrad.jit
    def step(x):
        loss = F.sum(model(x))
        model.cleargrads()
        loss.backward()  # eagerly this backpropagates into the previous calls' graph too
        return loss

    step(data((1, 2)))  # (no history yet)
    with pytest.raises(agrad.TraceError, match="history of its own"):
        step(data((1, 2)))
    model.cell.h.unchain()  # cut: the next call traces and replays
    for _ in range(3):
        step(data((1, 2)))
        model.cell.h.unchain()


def test_draws_from_a_backend_captured_outside_are_made_anew_at_each_replay(xp):
    backend = agrad.current_backend()  # taken before the trace: the real backend, not its twin

    @agrad.jit
    def noisy(x):
        return x + backend.randn(x.shape) * backend.random(x.shape)

    x = data((3, 4))
    calls = [host(noisy(x)) for _ in range(4)]
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(calls))
    agrad.seed(5)
    eager = x + backend.randn(x.shape) * backend.random(x.shape)
    agrad.seed(5)
    assert_same(eager, noisy(x))


@pytest.mark.parametrize("shuffle", [True, False])
def test_iterating_a_data_loader_inside_jit_is_refused(xp, shuffle):
    # its batches would be constants of the program: replays would train on the trace's
    loader = agrad.DataLoader(agrad.datasets.Spiral(), batch_size=30, shuffle=shuffle)
    model = agrad.models.MLP((8, 3))

    @agrad.jit
    def epoch():
        return [F.softmax_cross_entropy(model(x), t) for x, t in loader]

    with pytest.raises(agrad.TraceError, match=r"DataLoader was iterated.*test_jit\.py"):
        epoch()
    assert len(list(loader)) == len(loader)  # (usable outside, from the start)


def test_batch_norm_running_statistics_equal_eager(xp):
    if not agrad.current_backend().mutable_arrays:
        pytest.skip(
            f"{agrad.current_backend().name}: BatchNorm's running statistics are written in place"
        )
    eager, jitted, *_ = run_both(lambda: Net(batch_norm=True), OPTIMIZERS["SGD"], batches())
    assert_same(eager.bn.avg_mean, jitted.bn.avg_mean)
    assert_same(eager.bn.avg_var, jitted.bn.avg_var)


def test_dropout_draws_anew_with_the_seed(xp):
    _eager, _jitted, *_ = run_both(lambda: Net(dropout=0.5), OPTIMIZERS["SGD"], batches(), seed=3)
    # a replay that reused the traced mask would give the same output for two draws
    with agrad.no_grad():
        x = data((6, 2))
        f = agrad.jit(lambda v: F.dropout(v, 0.5))
        first, second = f(x), f(x)
    assert not np.array_equal(host(first), host(second))


def test_last_batch_of_another_size_traces_again(xp):
    sizes = batches(3, size=6) + batches(1, size=4, seed=9) + batches(2, size=6, seed=20)
    *_, step = run_both(Net, OPTIMIZERS["SGD"], sizes)
    assert step.cache_info()["signatures"] == 2


def test_learning_rate_schedule_without_retracing(xp):
    model = Net()
    opt = optimizers.SGD(lr=0.1).setup(model)
    step = agrad.jit(make_step(model, opt))
    x, t = batches(1)[0]
    step(x, t)
    step(x, t)
    traces = step.cache_info()["traces"]
    before = [host(p).copy() for p in model.params()]
    opt.lr = 0.0
    step(x, t)
    for p, old in zip(model.params(), before):
        np.testing.assert_array_equal(host(p), old)  # lr 0: nothing moved
    opt.lr = 0.5
    step(x, t)
    assert step.cache_info()["traces"] == traces


def test_adam_step_count_advances_in_replays(xp):
    model = Net()
    opt = optimizers.Adam().setup(model)
    step = agrad.jit(make_step(model, opt))
    x, t = batches(1)[0]
    for _ in range(4):
        step(x, t)
    assert opt.t == 4 and type(opt.t) is int


def test_hand_written_update_as_in_the_book(xp):
    backend = agrad.current_backend()
    x0 = Variable(backend.asarray(0.0))
    x1 = Variable(backend.asarray(2.0))
    lr = 0.001

    def rosenbrock_step():
        y = 100 * (x1 - x0**2) ** 2 + (1 - x0) ** 2
        x0.cleargrad()
        x1.cleargrad()
        y.backward()
        x0.data -= lr * x0.grad.data
        x1.data -= lr * x1.grad.data
        return y

    e0, e1 = Variable(backend.asarray(0.0)), Variable(backend.asarray(2.0))
    jitted = agrad.jit(rosenbrock_step)
    for _ in range(5):
        y = 100 * (e1 - e0**2) ** 2 + (1 - e0) ** 2
        e0.cleargrad()
        e1.cleargrad()
        y.backward()
        e0.data -= lr * e0.grad.data
        e1.data -= lr * e1.grad.data
        jy = jitted()
        assert_same(y, jy)
        assert_same(e0, x0)
        assert_same(e1, x1)


def test_static_arguments_retrace_per_value(xp):
    f = agrad.jit(lambda x, scale, mode: x * scale if mode == "mul" else x + scale)
    x = data((3,))
    assert_same(f(x, 2.0, "mul"), host(x) * 2.0)
    assert_same(f(x, 3.0, "mul"), host(x) * 3.0)
    assert_same(f(x, 3.0, "add"), host(x) + 3.0)
    assert f.cache_info()["signatures"] == 3


def test_structured_returns(xp):
    x = Variable(data((3,)))

    @agrad.jit
    def f(v):
        y = F.sum(v * v)
        return {"loss": y, "parts": (v * 2, [None, 1.5, "tag"]), "raw": v.data + 1}

    for _ in range(3):
        with agrad.no_grad():
            out = f(x)
        assert set(out) == {"loss", "parts", "raw"}
        assert isinstance(out["loss"], Variable)
        assert_same(out["loss"], np.sum(host(x) ** 2))
        doubled, extra = out["parts"]
        assert_same(doubled, host(x) * 2)
        assert extra == [None, 1.5, "tag"]
        assert agrad.backends.backend_of(out["raw"]).name == agrad.current_backend().name


Scored = collections.namedtuple("Scored", "loss doubled tag")


def test_a_namedtuple_is_returned_anew_and_differentiable(xp):
    w = Variable(data((3,)))
    f = agrad.jit(lambda v: Scored(F.sum(v * w), v * 2, "tag"))
    for seed in range(3):
        x = Variable(data((3,), seed))
        out = f(x)
        assert type(out) is Scored and out.tag == "tag"
        assert_same(out.loss, np.sum(host(x) * host(w)))
        assert_same(out.doubled, host(x) * 2)
        x.cleargrad()
        out.loss.backward()  # through the call's node, as for a tuple
        assert_same(x.grad, host(w))


def test_another_object_holding_results_is_refused(xp):
    @dataclasses.dataclass
    class Result:
        loss: Any

    returned = agrad.jit(lambda v: Result(F.sum(v)))
    with pytest.raises(agrad.TraceError, match="returned a Result"):
        returned(Variable(data((3,))))
    holder = types.SimpleNamespace()

    def store(v):
        holder.last = types.SimpleNamespace(loss=F.sum(v))
        return v * 2

    with pytest.raises(agrad.TraceError, match=r"stored a SimpleNamespace .* at closure.*\.last"):
        agrad.jit(store)(Variable(data((3,))))


def test_an_attribute_set_on_an_object_that_had_none_is_written_at_each_call(xp):
    class Box:
        pass

    box = Box()

    @agrad.jit
    def f(v):
        box.last = F.sum(v * 2).data
        return v

    for seed in range(4):
        x = data((3,), seed)
        f(x)
        assert_same(box.last, np.sum(host(x) * 2))


def test_test_mode_is_part_of_the_signature(xp):
    model = Net(batch_norm=True, dropout=0.5)
    x = data((6, 2))
    model(x)
    f = agrad.jit(lambda v: model(v))
    with agrad.no_grad(), agrad.test_mode():
        a, b = f(x), f(x)
        expected = model(x)
    assert_same(a, expected)
    assert_same(b, expected)
    assert f.cache_info()["signatures"] == 1


def test_outputs_are_not_overwritten_by_later_calls(xp):
    x = Variable(data((3,)))
    f = agrad.jit(lambda v: v * 2)
    with agrad.no_grad():
        first = f(x)
        kept = host(first).copy()
        x.data = x.data + 1
        second = f(x)
    np.testing.assert_array_equal(host(first), kept)
    assert not np.array_equal(host(second), kept)


def test_one_jit_shared_by_two_models(xp):
    def step(model, opt, x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    jitted = agrad.jit(step)
    (ea, ja), (eb, jb) = twin_models(Net), twin_models(Net)
    opts = {id(m): optimizers.MomentumSGD(lr=0.1).setup(m) for m in (ea, ja, eb, jb)}
    for x, t in batches(4):
        for eager, jit_model in ((ea, ja), (eb, jb)):
            le = step(eager, opts[id(eager)], x, t)
            lj = jitted(jit_model, opts[id(jit_model)], x, t)
            assert_same(le, lj)
            for pe, pj in zip(eager.params(), jit_model.params()):
                assert_same(pe, pj)


def test_nested_jit_is_part_of_the_outer_trace(xp):
    inner = agrad.jit(lambda v: F.exp(v) * 2)
    outer = agrad.jit(lambda v: inner(v) + 1)
    x = data((3,))
    for _ in range(3):
        assert_same(outer(x), np.exp(host(x)) * 2 + 1)
    assert inner.cache_info()["traces"] == 0


def test_arrays_inside_lists_are_inputs(xp):
    f = agrad.jit(lambda pair: pair[0] * pair[1])
    a, b = data((3,), 1), data((3,), 2)
    f([a, b])
    c = data((3,), 3)
    assert_same(f([a, c]), host(a) * host(c))


class Mode(enum.Enum):
    DOUBLE = 2.0
    TRIPLE = 3.0


@dataclasses.dataclass(frozen=True)
class FrozenScale:
    value: float


class PlainScale:
    def __init__(self, value):
        self.value = value


Pair = collections.namedtuple("Pair", "x value")

# how each kind of argument carries the scale, and reads it back
ARGUMENT_KINDS = {
    "enum member": (lambda k: [Mode.DOUBLE, Mode.TRIPLE][k % 2], lambda a: a.value),
    "frozen dataclass": (lambda k: FrozenScale(2.0 + k % 2), lambda a: a.value),
    "plain object": (lambda k: PlainScale(2.0 + k % 2), lambda a: a.value),
    "namespace": (lambda k: types.SimpleNamespace(value=2.0 + k % 2), lambda a: a.value),
    "NumPy scalar": (lambda k: np.float32(2.0 + k % 2), lambda a: a),
    "function": (lambda k: [F.tanh, F.sigmoid][k % 2], None),
}


@pytest.mark.parametrize("kind", list(ARGUMENT_KINDS))
def test_an_argument_object_of_another_value_is_another_program(xp, kind):
    make, read = ARGUMENT_KINDS[kind]

    def f(v, arg):
        return F.sum(arg(v)) if read is None else F.sum(v * float(read(arg)))

    jitted = agrad.jit(f)
    x = Variable(data((3,)))
    for k in range(4):
        assert_same(jitted(x, make(k)), f(x, make(k)))


def test_a_partial_binding_the_model_and_optimizer_trains_as_eagerly(xp):
    def step(model, optimizer, x, t):
        return make_step(model, optimizer)(x, t)

    eager_model, jit_model = twin_models(Net)
    eager = functools.partial(step, eager_model, OPTIMIZERS["SGD"]().setup(eager_model))
    jitted = agrad.jit(functools.partial(step, jit_model, OPTIMIZERS["SGD"]().setup(jit_model)))
    for x, t in batches():
        assert_same(eager(x, t), jitted(x, t))
    for a, b in zip(eager_model.params(), jit_model.params()):
        assert_same(a, b)
    w = Variable(data((3,)))
    scaled = agrad.jit(functools.partial(lambda v, x: F.sum(v * x), w))
    x = data((3,), 1)
    for k in range(3):
        w.data = data((3,), 2 + k)  # read from the partial's arguments at each call
        assert_same(scaled(x), np.sum(host(w) * host(x)))


@pytest.mark.parametrize("change", ["append", "set an item"])
def test_a_list_or_dict_argument_changed_in_place_is_refused(xp, change):
    # the function gets copies of list and dict arguments (their arrays are inputs): a change
    # made in them would not reach the caller's, as it does eagerly
    def f(x, out):
        if change == "append":
            out.append(F.sum(x))
        else:
            out["total"] = F.sum(x)
        return x * 2

    passed = [] if change == "append" else {}
    with pytest.raises(agrad.TraceError, match="changed a list or dict it was passed"):
        agrad.jit(f)(Variable(data((3,))), passed)
    read_only = agrad.jit(lambda xs, settings: F.sum(xs[0] * settings["scale"]))
    for _ in range(2):
        assert_same(read_only([data((3,))], {"scale": 2.0}), np.sum(host(data((3,))) * 2.0))


def test_a_namedtuple_argument_is_lifted_like_a_tuple(xp):
    def f(pair):
        return F.sum(pair.x * pair.value)

    jitted = agrad.jit(f)
    for k in range(4):
        pair = Pair(data((3,), k), 2.0 + k // 2)
        assert_same(jitted(pair), f(pair))
    assert jitted.cache_info()["traces"] == 2  # one per value; new arrays are inputs


def test_python_values_read_in_the_function_are_frozen_at_the_trace(xp):
    settings = {"scale": 2.0}
    f = agrad.jit(lambda v: v * settings["scale"])
    x = data((2,))
    f(x)
    settings["scale"] = 5.0  # not an optimizer's number: read once, at the trace
    assert_same(f(x), host(x) * 2.0)
    f.cache_clear()
    assert_same(f(x), host(x) * 5.0)


def test_cache_is_bounded_and_can_be_cleared(xp):
    f = agrad.jit(lambda v: v + 1, max_cache=2)
    for n in (1, 2, 3, 4):
        f(data((n,)))
    info = f.cache_info()
    assert info["entries"] == 2 and info["traces"] == 4
    f.cache_clear()
    assert f.cache_info()["entries"] == 0
    with pytest.raises(ValueError, match="max_cache"):
        agrad.jit(lambda v: v, max_cache=0)


def test_a_generator_or_coroutine_function_is_refused(xp):
    def batches(v):
        yield v * 2

    async def step(v):
        return v * 2

    with pytest.raises(TypeError, match="a generator function"):
        agrad.jit(batches)
    with pytest.raises(TypeError, match="a coroutine function"):
        agrad.jit(step)


@pytest.mark.parametrize(
    "read, what",
    [
        (lambda v: float(F.sum(v)), "float()"),
        (lambda v: int(F.sum(v)), "int()"),
        (lambda v: bool(F.sum(v)), "bool()"),
        (lambda v: 1 if F.sum(v) > 0 else 0, "bool()"),
        (lambda v: 1 if F.sum(v).data > 0 else 0, "bool()"),
        (lambda v: F.sum(v).item(), ".item()"),
        (lambda v: format(F.sum(v).data, ".2f"), "format("),
        (lambda v: agrad.cuda.as_numpy(v), "host memory"),
    ],
)
def test_value_dependent_python_is_refused(xp, read, what):
    f = agrad.jit(read)
    with pytest.raises(agrad.TraceError) as info:
        f(Variable(data((3,))))
    message = str(info.value)
    assert what in message
    assert "test_jit.py" in message  # the user's file and line
    assert isinstance(info.value, RuntimeError)


def test_a_refused_read_that_the_function_catches_is_still_refused(xp):
    def f(v):
        total = F.sum(v)
        try:
            scale = float(total)
        except Exception:  # the fallback would be baked in as if it were always taken
            scale = 1.0
        return total * scale

    with pytest.raises(agrad.TraceError, match=r"float\(\).*caught this error"):
        agrad.jit(f)(Variable(data((3,))))


def test_the_state_is_restored_when_the_function_raises(xp):
    w = Variable(data((3,)))
    before = w.data

    @agrad.jit
    def f():
        w.data = w.data * 2
        raise KeyError("boom")

    with pytest.raises(KeyError):
        f()
    assert w.data is not None and not isinstance(w.data, agrad.tracing.tracer.Tracer)
    assert_same(w, host(before) * 2)


def test_anomaly_mode_runs_eagerly_with_a_warning(xp):
    f = agrad.jit(lambda v: v * 2)
    with agrad.detect_anomaly(), pytest.warns(agrad.tracing.JitWarning, match="anomaly"):
        f(data((2,)))
    assert f.cache_info()["traces"] == 0


def test_python_side_effects_are_reported(xp):
    class Counter:
        calls = 0

    counter = Counter()
    counter.calls = 0

    def f(v):
        counter.calls += 1
        return v + 1

    jitted = agrad.jit(f)
    with pytest.warns(agrad.tracing.JitWarning, match="side effects"):
        jitted(data((2,)))


@pytest.mark.parametrize("effect", ["append a number", "change a string", "append a tuple"])
def test_python_values_stored_by_the_trace_are_reported(xp, effect):
    class Layer(L.Layer):
        def forward(self, v):
            if effect == "change a string":
                self.mode = "warm"
            return v * 2

    layer = Layer()
    layer.mode = "cold"
    log = []

    def f(v):
        if effect == "append a number":
            log.append(len(log))
        elif effect == "append a tuple":
            log.append(("step", 1.5))
        return layer(v)

    jitted = agrad.jit(f)
    with pytest.warns(agrad.tracing.JitWarning, match="side effects"):
        jitted(data((2,)))


def test_float32_stays_float32(xp):
    model = Net()
    opt = optimizers.SGD().setup(model)
    step = agrad.jit(make_step(model, opt))
    x = data((6, 2), dtype="float32")
    model(x)
    t = labels(6)
    for _ in range(3):
        loss = step(x, t)
    assert agrad.current_backend().dtype_name(loss.dtype) == "float32"
    assert all(agrad.current_backend().dtype_name(p.dtype) == "float32" for p in model.params())
    assert math.isfinite(float(loss.data))


def test_rejects_non_callables():
    with pytest.raises(TypeError, match="expected a function"):
        agrad.jit(3)


def test_warning_free_replays(xp):
    model = Net()
    opt = optimizers.Adam().setup(model)
    step = agrad.jit(make_step(model, opt))
    x, t = batches(1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            step(x, t)


def test_differentiating_through_a_jitted_function(xp):
    model_e, model_j = twin_models(Net)
    f = agrad.jit(lambda v: F.tanh(model_j(v)) * 2)
    for seed in range(3):
        x = Variable(data((6, 2), seed))
        xe = Variable(x.data)
        model_e.cleargrads()
        model_j.cleargrads()
        ye = F.tanh(model_e(xe)) * 2
        yj = f(x)
        assert yj.creator is not None
        assert_same(ye, yj)
        F.sum(ye * ye).backward()
        F.sum(yj * yj).backward()
        assert_same(xe.grad, x.grad)
        for pe, pj in zip(model_e.params(), model_j.params()):
            assert_same(pe.grad, pj.grad)
    assert f.cache_info()["traces"] == 1


def test_an_array_argument_with_a_variable_is_the_variables_operation(xp):
    # `array * variable` is computed by the Variable's reflected operator (as NumPy defers to
    # it), on a traced array too: the result is a Variable on the graph, not an array of
    # Variables (or, on libraries that refuse a Variable operand eagerly, an error)
    w = Variable(data((3,), 1))

    def f(a):
        return a * w, a - w, a @ w

    jitted = agrad.jit(f)
    for seed in range(3):
        a = data((3,), seed)
        w.cleargrad()
        got, want = jitted(a), (Variable(a) * w, Variable(a) - w, Variable(a) @ w)
        for g, v in zip(got, want):
            assert isinstance(g, Variable)
            assert_same(g, v)
        F.sum(got[0] * got[1] + got[2]).backward()
        grad = host(w.grad).copy()
        w.cleargrad()
        F.sum(want[0] * want[1] + want[2]).backward()
        # (the jitted node sums its three paths to w in its own order)
        np.testing.assert_allclose(grad, host(w.grad), rtol=1e-6)
    assert jitted.cache_info()["traces"] == 1


def test_differentiating_through_a_jitted_function_whose_backward_reads_nothing(xp):
    w = Variable(data((3,), 1))
    f = agrad.jit(lambda v: v * 2.0 - w)  # (the gradients are constants: no residuals)
    for seed in range(3):
        x = Variable(data((3,), seed))
        w.cleargrad()
        y = f(x)
        assert_same(y, host(x) * 2.0 - host(w))
        F.sum(y).backward()
        assert_same(x.grad, np.full(3, 2.0))
        assert_same(w.grad, np.full(3, -1.0))
    assert f.cache_info()["traces"] == 1


def test_double_backward_through_jit_is_refused_by_name(xp):
    f = agrad.jit(lambda v: v * v * v)
    x = Variable(data((3,)))
    y = f(x)
    with pytest.raises(agrad.TraceError, match="create_graph"):
        F.sum(y).backward(create_graph=True)


def test_grad_scaler_inside_jit_is_refused_by_name(xp):
    model = Net()
    opt = optimizers.SGD().setup(model)
    scaler = agrad.amp.GradScaler()
    x, t = batches(1)[0]

    @agrad.jit
    def step(x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        scaler.scale(loss).backward()
        scaler.step(opt)
        return loss

    with pytest.raises(agrad.TraceError, match="GradScaler"):
        step(x, t)


def test_grad_scaler_around_a_jitted_backward(xp):
    eager, jitted = twin_models(Net)
    scalers = [agrad.amp.GradScaler(init_scale=8.0) for _ in range(2)]
    opts = [optimizers.SGD(lr=0.1).setup(m) for m in (eager, jitted)]

    def backward(model, scaler, x, t):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        scaler.scale(loss).backward()
        return loss

    jitted_backward = agrad.jit(backward)
    for i, (x, t) in enumerate(batches(4)):
        if i == 2:  # the scale is read at each call, not frozen at the trace
            for scaler in scalers:
                scaler.update(new_scale=2.0)
        backward(eager, scalers[0], x, t)
        jitted_backward(jitted, scalers[1], x, t)
        for model in (eager, jitted):
            for p in model.params():
                assert p.grad is not None
        assert_same(eager.l1.W.grad, jitted.l1.W.grad)
        for scaler, opt in zip(scalers, opts):
            scaler.step(opt)
            scaler.update()
        for pe, pj in zip(eager.params(), jitted.params()):
            assert_same(pe, pj)


def test_demo_with_jit_equals_the_eager_demo(xp):
    from agrad import demo

    quiet = {"epochs": 3, "progress": False, "log": lambda message: None}
    eager = demo.train(**quiet)
    jitted = demo.train(jit=True, **quiet)
    tolerance = 0 if agrad.current_backend().name in EXACT else 1e-5
    assert jitted["loss"] == pytest.approx(eager["loss"], rel=tolerance, abs=tolerance)
    assert jitted["train_accuracy"] == eager["train_accuracy"]


def test_functional_transforms_and_higher_order_gradients_inside_jit(xp):
    def penalty_step(v):
        # a gradient penalty: d/dv of |d(sum v^3)/dv|^2, with create_graph inside the trace
        y = F.sum(v * v * v)
        (g,) = agrad.grad(y, v, create_graph=True)
        return agrad.grad(F.sum(g * g), v)[0]

    def functional(a):
        return agrad.func.grad(lambda q: F.sum(F.sin(q) * q))(a)

    for f in (penalty_step, functional):
        jitted = agrad.jit(f)
        for seed in range(3):
            v = Variable(data((4,), seed))
            expected = f(Variable(v.data)) if f is penalty_step else f(v.data)
            got = jitted(v) if f is penalty_step else jitted(v.data)
            assert_same(expected, got)


def test_gradient_hooks_run_in_the_trace(xp):
    w = Variable(data((3,)))
    seen = []
    w.register_post_accumulate_grad_hook(lambda v: seen.append(v.shape))

    @agrad.jit
    def step():
        w.cleargrad()
        F.sum(w * w).backward()
        return w.grad

    for _ in range(3):
        g = step()
        assert_same(g, host(w) * 2)
    assert seen  # at the trace: a hook's Python side effects happen when traced


@pytest.mark.parametrize("change", ["register", "remove"])
def test_a_gradient_hook_registered_or_removed_after_the_trace_is_followed(xp, change):
    def scale(v):
        v.grad.data *= 10

    def run(jit):
        w = Variable(data((3,)))
        handle = w.register_post_accumulate_grad_hook(scale) if change == "remove" else None

        def step(x):
            w.cleargrad()
            y = F.sum(w * w * x)
            y.backward()
            w.data -= 0.1 * w.grad.data
            return y

        step = agrad.jit(step) if jit else step
        losses = []
        for i in range(5):
            if i == 2:
                if change == "register":
                    handle = w.register_post_accumulate_grad_hook(scale)
                else:
                    handle.remove()
            losses.append(step(data((3,), 1)))
        if change == "register":
            handle.remove()
        return [*losses, w]

    assert_jit_matches_eager(run)


def test_negative_constants_keep_their_precedence(xp):
    f = agrad.jit(lambda v: (-2.0) ** v + (-1) * v - v * (-0.5))
    x = data((3,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (-2) ** 0.3 is NaN, in both
        expected = (-2.0) ** host(x) + (-1) * host(x) - host(x) * (-0.5)
        for _ in range(2):
            np.testing.assert_array_equal(np.isnan(host(f(x))), np.isnan(expected))
            np.testing.assert_allclose(host(f(x)), expected, equal_nan=True)


def test_a_layer_switch_read_at_the_trace_is_checked_at_each_call(xp):
    class Gate(L.Layer):
        def __init__(self):
            super().__init__()
            self.enabled = True

        def forward(self, x):
            return x * 2 if self.enabled else x

    gate = Gate()
    f = agrad.jit(lambda v: gate(v))
    x = data((3,))
    with agrad.no_grad():
        assert_same(f(x), host(x) * 2)
        gate.enabled = False  # a Python bool on a layer picks another program, not the old one
        assert_same(f(x), host(x))
        gate.enabled = True
        assert_same(f(x), host(x) * 2)
    assert f.cache_info()["traces"] == 2


def test_an_array_of_the_traced_library_is_a_constant(xp):
    constant = data((3,), 7)  # a raw array held outside any Variable, in a tuple: read once
    held = (constant,)
    f = agrad.jit(lambda v: F.sum(v * held[0]))
    x = Variable(data((3,)))
    with agrad.no_grad():
        for _ in range(2):
            assert_same(f(x), np.sum(host(x) * host(constant)))


def test_an_array_of_the_traced_library_made_inside_meets_traced_gradients(xp):
    # a cotangent and a preset gradient made inside, by a backend taken outside the trace: real
    # arrays (constants of the program) that backward must add to and start from
    backend = agrad.current_backend()

    def step(x):
        _, back = agrad.func.vjp(lambda a: F.sin(a) * a, x)
        (gx,) = back(backend.asarray([0.5, 1.0, 2.0, 4.0]))
        v = Variable(x)
        v.grad = Variable(backend.asarray([3.0, 3.0, 3.0, 3.0]))
        F.sum(F.sin(v)).backward()
        return gx, v.grad

    jitted = agrad.jit(step)
    for seed in range(3):
        x = data((4,), seed)
        for expected, got in zip(step(x), jitted(x)):
            assert_same(expected, got)


def test_every_kind_of_step_replays_exactly(xp):
    # nested arguments, keywords, a sequence result, slices, an in-place write, a 0-d result
    # (a scalar in NumPy), and values large enough to be dropped at once: one program each
    def f(a, b):
        ns = agrad.backends.backend_of(a).xp
        both = ns.concat([a, b]) * 2.0
        total = ns.sum(both, axis=0)
        lo, hi = ns.broadcast_arrays(a[:1], b)
        c = ns.zeros_like(a)
        c += lo
        return total + ns.sum(a * b), c * hi, both[::2]

    jitted = agrad.jit(f)
    for seed in range(4):
        a, b = data((5000,), seed), data((5000,), seed + 10)
        for got, want in zip(jitted(a, b), f(a, b)):
            assert_same(got, want)
    assert jitted.cache_info()["traces"] == 1


def test_replay_is_interpreted_then_generated(xp, monkeypatch):
    if agrad.current_backend().name == "jax":
        pytest.skip("JAX replays a step compiled by XLA, neither interpreted nor generated")
    monkeypatch.setattr(agrad.tracing.program, "GENERATE_AFTER", 2)
    x = Variable(data((3,)))

    def step():
        y = F.sum(F.tanh(x) * x)
        x.cleargrad()
        y.backward()
        return y

    step()  # the gradient exists: every call below has the same state, one trace
    jitted = agrad.jit(step)
    forms = []
    for _ in range(4):
        got = jitted()
        replay = next(iter(jitted._cache.values()))[0].program
        forms.append(replay.form)
        want_grad = x.grad.data
        assert_same(got, step())
        assert_same(want_grad, x.grad)
    # the trace builds nothing; two interpreted replays, then generated code
    assert forms == ["pending", "interpreted", "interpreted", "generated"]
    assert jitted.cache_info()["traces"] == 1
    assert replay.source is not None and "def replay(" in replay.source


def test_replays_from_several_threads_at_once(xp, monkeypatch):
    # the first replays build the interpreter, a later one the code: threads that reach those
    # calls together each get the right answer (both build; neither sees a half-built one),
    # and generated replays running at once each write into a set of buffers of their own
    import contextvars
    import threading

    monkeypatch.setattr(agrad.tracing.program, "GENERATE_AFTER", 3)

    def f(a):
        return F.sum(F.tanh(a) * a + a)

    jitted = agrad.jit(f)
    inputs = [data(LARGE, seed) for seed in range(4)]
    jitted(inputs[0])  # the trace
    start = threading.Barrier(4)
    errors = []

    def worker(a):
        start.wait()
        try:
            for _ in range(6):
                assert_same(jitted(a), f(a))
        except BaseException as exc:  # (re-raised below, in the test's thread)
            errors.append(exc)

    # each thread in a copy of this context: the backend chosen by the fixture is part of it
    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(worker, a)) for a in inputs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert jitted.cache_info()["traces"] == 1


# -- kept buffers: a generated replay writes large temporaries into buffers kept between calls


def test_large_temporaries_go_into_kept_buffers_and_train_exactly(xp, replay_form):
    w_e, w_j = Variable(data(LARGE, 1)), Variable(data(LARGE, 1))
    b_e, b_j = Variable(data(LARGE, 2)), Variable(data(LARGE, 2))

    def make(w, b):
        def step(x):
            y = Variable(x)
            for _ in range(3):
                y = F.tanh(y * w + b) * 0.5
            loss = F.sum(y * y)
            w.cleargrad()
            b.cleargrad()
            loss.backward()
            w.data -= 0.01 * w.grad.data  # the book's update, in place
            b.data = b.data - 0.01 * b.grad.data  # and by rebinding
            return loss, y

        return step

    eager, jitted = make(w_e, b_e), agrad.jit(make(w_j, b_j))
    returned = []
    for seed in range(5):
        x = data(LARGE, 10 + seed)
        (loss_e, y_e), (loss_j, y_j) = eager(x), jitted(x)
        assert_same(loss_e, loss_j)
        assert_same(y_e, y_j)
        assert_same(w_e, w_j)
        assert_same(b_e, b_j)
        returned.append((y_j, host(y_j).copy()))
    # what a call returned is its own: later calls, which reuse the buffers, leave it alone
    for y, values in returned:
        np.testing.assert_array_equal(host(y), values)
    assert jitted.cache_info()["traces"] == 2  # (the second call's gradients exist before it)
    source = getattr(next(iter(jitted._cache.values()))[0].program, "source", None)
    if replay_form == "generated" and keeps_buffers():
        assert "out=b" in source
    elif source is not None:
        assert "out=" not in source


def test_buffers_never_hold_a_value_that_outlives_them(xp):
    # each case would go wrong with a buffer: a view of a temporary read after the temporary's
    # buffer is taken by a value of its layout; a temporary made the result of `+=` and
    # returned; a temporary bound to a Variable's data
    holder = Variable(data(LARGE, 3))

    def f(a, b):
        ns = agrad.backends.backend_of(a).xp
        viewed = ns.reshape(a * b, (LARGE[1], LARGE[0]))  # a*b dies here, its view lives on
        later = a + 1.0  # a value of a*b's layout
        tripled = later * 3.0
        grown = a * 2.0
        grown += b  # the result of `+=` is grown's array
        holder.data = a - b  # a temporary becomes state
        return viewed + ns.reshape(tripled, (LARGE[1], LARGE[0])), grown

    jitted = agrad.jit(f)
    kept = []
    for seed in range(4):
        a, b = data(LARGE, seed), data(LARGE, seed + 20)
        got, want = jitted(a, b), f(a, b)
        for g, w in zip(got, want):
            assert_same(g, w)
        kept.append(([*got, holder.data], [host(v).copy() for v in (*got, holder.data)]))
    for arrays, values in kept:
        for array, value in zip(arrays, values):
            np.testing.assert_array_equal(host(array), value)


def test_differentiating_through_a_jitted_function_on_large_arrays(xp):
    w = Variable(data(LARGE, 5))
    f = agrad.jit(lambda v: F.tanh(v * w + 1.0) * v)
    for seed in range(4):
        x, xe = Variable(data(LARGE, seed)), Variable(data(LARGE, seed))
        w.cleargrad()
        F.sum(f(x) * 2.0).backward()
        grads_j = host(x.grad).copy(), host(w.grad).copy()
        w.cleargrad()
        F.sum(F.tanh(xe * w + 1.0) * xe * 2.0).backward()
        assert_same(grads_j[0], xe.grad)
        assert_same(grads_j[1], w.grad)
    assert f.cache_info()["traces"] == 1


def test_a_replaced_gradient_is_dropped_before_the_replay(xp):
    # eagerly, cleargrad frees the old gradient before backward makes the new one; a replay
    # drops it before it runs, so that the two are never held at once
    import weakref

    w = Variable(data(LARGE, 1))

    def step(x):
        loss = F.sum(F.tanh(Variable(x) * w))
        w.cleargrad()
        loss.backward()
        return loss

    jitted = agrad.jit(step)
    for seed in range(3):  # (traced without a gradient, then with one)
        jitted(data(LARGE, seed))
    seen = []
    ref = weakref.ref(w.grad, lambda _: seen.append(w.grad))
    loss = jitted(data(LARGE, 5))
    assert ref() is None and seen == [None]  # freed while w had no gradient
    assert_same(loss, step(data(LARGE, 5)))


# (the test reads the trace through a list the function appends to, which the trace reports)
@pytest.mark.filterwarnings("ignore:agrad.jit. tracing changed Python values")
def test_the_first_call_lets_go_of_large_values_nothing_holds(xp):
    # the trace keeps a record of every value, but not a large array the function dropped: the
    # first call holds no more memory than an eager call
    from agrad.tracing.tracer import Released, active_trace

    released = []

    def f(a):
        dropped = a * 2.0
        slot = dropped._slot
        del dropped
        kept = a + 1.0  # (the trace looks for dropped values as a large one is made)
        released.append(type(active_trace().values[slot]) is Released)
        return kept * 3.0

    jitted = agrad.jit(f)
    for seed in range(3):
        a = data(LARGE, seed)
        np.testing.assert_allclose(host(jitted(a)), (host(a) + 1.0) * 3.0, rtol=1e-12)
    assert released == [True]  # (one trace)
