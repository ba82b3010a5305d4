"""Anomaly mode: the first function that produces NaN or inf, forward or backward, is named."""

from __future__ import annotations

import inspect
import threading

import pytest

import agrad
import agrad.functions as F
from agrad.anomaly import AnomalyError, is_anomaly_enabled
from agrad.core import Function

# the backends' own warnings (divide by zero in log, ...) are what anomaly mode replaces here
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

PLAIN_CALL = Function.__call__


def _line_of(marker: str) -> int:
    """Line number of the line of this file containing ``marker``."""
    lines = inspect.getsource(inspect.getmodule(_line_of)).splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


def test_forward_names_the_producer_and_the_users_line(xp):
    x = agrad.Variable(xp.asarray([0.0, 1.0], dtype=xp.float32))
    with agrad.detect_anomaly(), pytest.raises(AnomalyError) as info:
        y = F.log(x)  # marker: forward log
        F.sum(y * 2.0)
    error = info.value
    assert isinstance(error, FloatingPointError)
    assert type(error.function).__name__ == "Log" and error.phase == "forward"
    assert error.site == (__file__, _line_of("marker: forward log"))
    message = str(error)
    assert message.startswith("Log forward produced inf from finite values")
    assert "inputs: float32[2]; outputs: float32[2]" in message
    assert f"{__file__}:{_line_of('marker: forward log')}" in message


def test_forward_does_not_blame_a_function_that_only_propagates(xp):
    x = agrad.Variable(xp.asarray([-float("inf"), 1.0]))
    with agrad.detect_anomaly():
        y = F.exp(-x) * 2.0  # inf in, inf out: not produced here
        masked = F.exp(x)  # -inf in, finite out (a -inf mask): fine
    assert not bool(xp.all(xp.isfinite(y.data)))
    assert bool(xp.all(xp.isfinite(masked.data)))


def test_backward_names_the_producer(xp):
    x = agrad.Variable(xp.asarray([0.0, 4.0]))
    with agrad.detect_anomaly():
        h = x * 1.0
        y = F.sum(F.sqrt(h))  # marker: backward sqrt
        with pytest.raises(AnomalyError) as info:
            y.backward()
    error = info.value
    assert type(error.function).__name__ == "Sqrt" and error.phase == "backward"
    assert error.site == (__file__, _line_of("marker: backward sqrt"))
    assert str(error).startswith("Sqrt backward produced inf from finite values")
    assert "input gradients: float64[2]" in str(error)
    assert x.grad is None  # nothing was accumulated from the bad pass


def test_backward_with_create_graph_blames_the_function_not_its_gradient_ops(xp):
    x = agrad.Variable(xp.asarray([0.0, 4.0]))
    with agrad.detect_anomaly():
        y = F.sum(F.sqrt(x))  # marker: graph sqrt
        with pytest.raises(AnomalyError) as info:
            y.backward(create_graph=True)
    error = info.value
    assert type(error.function).__name__ == "Sqrt" and error.phase == "backward"
    assert error.site == (__file__, _line_of("marker: graph sqrt"))
    assert "(in its Div:" in str(error)


def test_a_non_finite_seed_is_not_blamed_on_the_first_function(xp):
    x = agrad.Variable(xp.asarray([1.0, 2.0]))
    with agrad.detect_anomaly():
        y = x * 3.0
        y.grad = agrad.Variable(xp.asarray([float("nan"), 1.0]))
        y.backward()
    assert not bool(xp.all(xp.isfinite(x.grad.data)))


def test_finite_computations_pass_and_match_plain_mode(xp):
    x = agrad.Variable(xp.asarray([[0.5, -1.0], [2.0, 3.0]]))
    W = agrad.Variable(xp.asarray([[1.0], [0.5]]))
    t = xp.asarray([0, 0])

    def loss():
        x.cleargrad()
        W.cleargrad()
        h = F.tanh(F.matmul(x, W))
        value = F.softmax_cross_entropy(F.concat([h, -h], axis=1), t)
        value.backward()
        return value.data, x.grad.data, W.grad.data

    expected = loss()
    with agrad.detect_anomaly():
        got = loss()
    for a, b in zip(expected, got):
        assert bool(xp.all(a == b))


def test_off_by_default_and_nothing_installed_outside_the_mode(xp):
    x = agrad.Variable(xp.asarray([0.0]))
    assert not is_anomaly_enabled()
    assert Function.__call__ is PLAIN_CALL
    y = F.log(x)  # no error: the mode is off
    assert not bool(xp.all(xp.isfinite(y.data)))
    with agrad.detect_anomaly():
        assert is_anomaly_enabled()
        assert Function.__call__ is not PLAIN_CALL
        with agrad.detect_anomaly(False):
            assert not is_anomaly_enabled()
            F.log(x)  # off inside the inner block
        assert is_anomaly_enabled()
    assert Function.__call__ is PLAIN_CALL


def test_the_mode_reaches_every_function_class_and_leaves_each_its_own_call(xp):
    # each Function subclass runs its own copy of Function.__call__ (agrad.core._give_own_call);
    # the mode must replace those copies too, also on a class defined while it is on
    own_log_call = vars(F.Log)["__call__"]
    x = agrad.Variable(xp.asarray([0.0]))
    with agrad.detect_anomaly():

        class MyLog(Function):
            def forward(self, x):
                return self.xp.log(x)

        with pytest.raises(AnomalyError, match="MyLog"):
            MyLog()(x)
        with pytest.raises(AnomalyError, match="Log"):
            F.log(x)
    assert vars(F.Log)["__call__"] is own_log_call
    assert vars(MyLog)["__call__"] is not PLAIN_CALL
    assert vars(MyLog)["__call__"].__code__.co_code == PLAIN_CALL.__code__.co_code
    assert not bool(xp.all(xp.isfinite(MyLog()(x).data)))  # the mode is off again


def test_set_detect_anomaly_and_errors():
    agrad.set_detect_anomaly(True)
    try:
        assert is_anomaly_enabled()
        agrad.set_detect_anomaly(True)  # twice: still one context on
    finally:
        agrad.set_detect_anomaly(False)
    assert not is_anomaly_enabled()
    assert Function.__call__ is PLAIN_CALL
    with pytest.raises(TypeError, match="mode must be True or False, not 1"):
        agrad.set_detect_anomaly(1)
    with (
        pytest.raises(TypeError, match="enabled must be True or False, not 'yes'"),
        agrad.detect_anomaly("yes"),
    ):
        pass


def test_the_mode_is_context_local(xp):
    seen = []

    def other_thread():
        seen.append(is_anomaly_enabled())
        seen.append(F.log(agrad.Variable(xp.asarray([0.0]))).data is not None)  # no raise

    with agrad.detect_anomaly():
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen == [False, True]


def test_one_host_read_per_function(monkeypatch):
    strict = agrad.get_backend("array_api_strict")
    if not strict.available:
        pytest.skip(f"needs array-api-strict ({strict.probe()[1]})")
    xs = strict.xp
    reads = []
    original = strict.array_type.__bool__

    def counting(self):
        reads.append(1)
        return original(self)

    x = agrad.Variable(xs.asarray([1.0, 2.0]))
    monkeypatch.setattr(strict.array_type, "__bool__", counting)
    with agrad.detect_anomaly():
        y = F.sum(F.exp(x) * 2.0)  # three functions
        assert len(reads) == 3
        y.backward()
        assert len(reads) == 6
