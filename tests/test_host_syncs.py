"""Host synchronisations per training step, counted on the CPU so that they cannot come back.

On a GPU every read of a device array on the host (``float(x)``, ``x.item()``, ``bool(x)``, a
copy to NumPy) waits for all queued kernels. array-api-strict stands in for the device here: its
``Array`` is a Python class whose host-reading methods can be wrapped, and agrad's code treats it
exactly as it treats a CuPy array. ``tests/test_gpu.py`` counts the same on a real GPU.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import optimizers

STRICT = agrad.get_backend("array_api_strict")
pytestmark = pytest.mark.skipif(
    not STRICT.available, reason=f"needs array-api-strict ({STRICT.probe()[1]})"
)

#: every way agrad can read an array's values on the host
READS = (
    "__float__", "__int__", "__bool__", "__index__", "__complex__", "__array__", "__dlpack__",
    "__repr__", "__str__", "__format__", "__iter__", "item", "tolist",
)  # fmt: skip
#: the strict backend emulates device-side scatter-add through NumPy; a GPU backend does not
BACKEND_INTERNALS = os.path.join("agrad", "backends", "array_api_strict.py")


class HostReads:
    """Counts reads of array-api-strict arrays' values made by agrad (not by the library)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, str]] = []
        self._watching = False
        array_type = STRICT.array_type
        for name in READS:
            original = getattr(array_type, name, None)
            if original is not None:
                monkeypatch.setattr(array_type, name, self._counting(name, original))
        monkeypatch.setattr(STRICT, "to_host", self._counting("to_host", STRICT.to_host))

    def _counting(self, name: str, original: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if self._watching:
                self._watching = False  # what follows must not count itself
                try:
                    self._record(name)
                finally:
                    self._watching = True
            return original(*args, **kwargs)

        return counted

    def _record(self, name: str) -> None:
        stack = traceback.extract_stack()[:-3]
        agrad_frames = [f for f in stack if f"{os.sep}agrad{os.sep}" in f.filename]
        if agrad_frames and agrad_frames[-1].filename.endswith(BACKEND_INTERNALS):
            return
        where = "".join(traceback.format_list(stack[-4:]))
        self.calls.append((name, where))

    @contextlib.contextmanager
    def watching(self) -> Iterator[HostReads]:
        self._watching = True
        try:
            yield self
        finally:
            self._watching = False

    def report(self) -> str:
        lines = [f"{len(self.calls)} host reads:"]
        lines += [f"  {name} at\n{where}" for name, where in self.calls[:4]]
        return "\n".join(lines)


@pytest.fixture
def host_reads(monkeypatch: pytest.MonkeyPatch) -> HostReads:
    return HostReads(monkeypatch)


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr(STRICT, "gpu", True)  # agrad's code takes it for a device backend
    with agrad.using_backend(STRICT, fallback=False) as backend:
        yield backend


def test_the_counter_sees_every_kind_of_read(strict, host_reads):
    x = strict.xp.asarray([1.5, 2.0])
    with host_reads.watching():
        float(x[0])
        bool(x[1] > 0)
        strict.to_host(x)
        agrad.cuda.as_numpy(agrad.Variable(x))
        f"{float(x[0]):.2f}"
    names = [name for name, _ in host_reads.calls]
    assert names.count("__float__") == 2 and "__bool__" in names, names
    assert names.count("to_host") == 2, names


def _hooks() -> dict[str, Any]:
    return {
        "none": None,
        "ClipGrad": optimizers.ClipGrad(1.0),
        "WeightDecay": optimizers.WeightDecay(1e-4),
    }


@pytest.mark.parametrize("hook", list(_hooks()))
@pytest.mark.parametrize("optimizer", ["SGD", "MomentumSGD", "AdaGrad", "AdaDelta", "Adam"])
def test_a_training_step_reads_nothing_on_the_host(strict, host_reads, optimizer, hook):
    model = agrad.models.MLP((16, 3))
    opt = getattr(optimizers, optimizer)().setup(model)
    if _hooks()[hook] is not None:
        opt.add_hook(_hooks()[hook])
    rng = np.random.default_rng(0)
    x = strict.asarray(rng.standard_normal((8, 4)), "float32")
    t = strict.asarray(rng.integers(0, 3, 8), "int64")

    def step() -> Any:
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        opt.update()
        return loss

    step()  # the first step creates the weights and the optimizer's state
    with host_reads.watching():
        for _ in range(3):
            loss = step()
    assert not host_reads.calls, host_reads.report()
    assert type(loss.data) is STRICT.array_type  # the step really ran on the stand-in device


def test_clip_grad_clips_without_reading_the_norm_on_the_host(strict, host_reads):
    p = agrad.Parameter(strict.asarray([3.0, 4.0], "float32"))
    q = agrad.Parameter(strict.asarray([0.0], "float32"))
    p.grad = agrad.Variable(strict.asarray([3.0, 4.0], "float32"))
    q.grad = agrad.Variable(strict.asarray([12.0], "float32"))
    with host_reads.watching():
        optimizers.ClipGrad(6.5)([p, q])  # global norm 13: everything halves
    assert not host_reads.calls, host_reads.report()
    np.testing.assert_allclose(strict.to_host(p.grad.data), [1.5, 2.0], rtol=1e-6)
    np.testing.assert_allclose(strict.to_host(q.grad.data), [6.0], rtol=1e-6)
    assert p.grad.dtype == strict.xp.float32
    optimizers.ClipGrad(100.0)([p, q])  # under the limit: unchanged
    np.testing.assert_allclose(strict.to_host(p.grad.data), [1.5, 2.0], rtol=1e-6)


class _Spiral(agrad.datasets.Spiral):
    """Spiral with its data on array-api-strict, which (unlike CuPy) has no ``len()`` and wants
    ``data[i, ...]`` for a row."""

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int) -> tuple:
        return self.transform(self.data[index, ...]), self.target_transform(self.label[index])


@pytest.mark.parametrize("where", ["host", "host, per-item transform", "device"])
def test_the_data_loader_reads_nothing_back_from_the_device(strict, host_reads, where):
    # _Spiral's own __getitem__ would take the host data off the loader's whole-batch path
    dataset = _Spiral(train=True) if where == "device" else agrad.datasets.Spiral(train=True)
    if where == "host, per-item transform":
        dataset.transform = lambda x: x * 2.0  # the per-item path
    if where == "device":  # data already on the device: items are gathered and stacked there
        dataset.data = strict.asarray(dataset.data)
        dataset.label = strict.asarray(dataset.label)
    loader = agrad.DataLoader(dataset, batch_size=30)
    with host_reads.watching():
        batches = list(loader)
    assert not host_reads.calls, host_reads.report()
    assert len(batches) == 10 and type(batches[0][0]) is STRICT.array_type


def test_the_demo_reads_the_host_once_per_epoch_not_per_batch(strict, host_reads):
    from agrad.demo import train

    counts = []
    for epochs in (1, 3):
        host_reads.calls.clear()
        with host_reads.watching():
            train(epochs=epochs, progress=False, log=lambda message: None)
        counts.append(len(host_reads.calls))
    per_epoch = (counts[1] - counts[0]) / 2
    # 10 batches an epoch: before, two reads per batch (loss and accuracy), 20 an epoch
    assert per_epoch == 2, (counts, host_reads.report())
