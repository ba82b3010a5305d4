"""Backward passes from several threads at once (issue 22).

Each pass keeps the gradients it gathers to itself, so passes over one shared graph
(``retain_graph=True``) do not mix; passes that end in the same leaf add into its ``grad``
under a lock, so no update is lost (PyTorch gives the same totals). The interpreter is made to
switch threads very often, so that a race shows up within a few hundred iterations.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.cuda import as_numpy

THREADS = 4


def iterations(many: int) -> int:
    """``many`` iterations per thread; fewer on a lazy backend (Dask), whose accumulated
    gradient is a task graph that grows with every pass until it is computed."""
    return many if not agrad.current_backend().lazy else max(many // 8, 10)


def host(v):
    return np.asarray(as_numpy(v.data if isinstance(v, Variable) else v))


@pytest.fixture
def frequent_switches():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def run_in_threads(work, backend) -> list[BaseException]:
    """``work()`` in THREADS threads, each with the test's backend as its default."""
    errors: list[BaseException] = []

    def target():
        try:
            with agrad.using_backend(backend, fallback=False):
                work()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=target) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_backward_into_one_leaf_from_several_threads(xp, frequent_switches):
    p = Variable(xp.asarray(0.0))  # d/dp (sin p + 2p) = 3 at 0: the total is exact
    count = iterations(200)

    def work():
        for _ in range(count):
            F.sum(F.sin(p) + p * 2.0).backward()

    assert run_in_threads(work, agrad.current_backend()) == []
    assert host(p.grad) == 3.0 * THREADS * count


def test_grad_over_a_shared_graph_from_several_threads(xp, frequent_switches):
    q = Variable(xp.asarray([0.5, 1.0, 1.5]))
    h = F.sin(q) * 2.0
    y = F.sum(h * h + F.exp(h))
    expected = [host(g) for g in agrad.grad(y, [q, h], retain_graph=True)]
    wrong = []

    def work():
        for _ in range(iterations(60)):
            got = agrad.grad(y, [q, h], retain_graph=True)
            if not all(np.allclose(host(g), e) for g, e in zip(got, expected)):
                wrong.append(got)

    assert run_in_threads(work, agrad.current_backend()) == []
    assert wrong == []
    assert q.grad is None and h.grad is None


def test_backward_with_retained_graph_from_several_threads(xp, frequent_switches):
    q = Variable(xp.asarray([0.5, -1.0]))
    y = F.sum(F.exp(q) * q)
    count = iterations(60)

    def work():
        for _ in range(count):
            y.backward(retain_graph=True)

    assert run_in_threads(work, agrad.current_backend()) == []
    one = np.exp([0.5, -1.0]) * (1.0 + np.array([0.5, -1.0]))
    np.testing.assert_allclose(host(q.grad), THREADS * count * one)
