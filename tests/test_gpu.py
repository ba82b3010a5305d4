"""Checks that only a CUDA GPU can answer (the CuPy backend on a real device).

Every test marked ``needs_gpu`` is skipped, with the reason, where the ``cupy`` backend is not
usable; the rest of the suite covers CuPy through the ``xp`` fixture. On a GPU machine
``tools/gpu_check.sh`` runs them together with the whole suite and fails if any of them skipped.
The GPU tools' own tests, which run everywhere, are in ``tests/test_gpu_tools.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.cuda import as_numpy

_CUPY = agrad.get_backend("cupy")
_USABLE, _WHY = _CUPY.probe()

needs_gpu = pytest.mark.skipif(
    not _USABLE, reason=f"needs a CUDA GPU (cupy backend not usable: {_WHY})"
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_path() -> str:
    """This checkout first, then what the caller had (gpu_check.sh puts carried wheels there)."""
    return os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))


OPTIMIZERS = ["SGD", "MomentumSGD", "AdaGrad", "AdaDelta", "Adam"]


@pytest.fixture
def gpu() -> Iterator[agrad.backends.Backend]:
    """The CuPy backend, made agrad's default for the test."""
    with agrad.using_backend("cupy", fallback=False) as backend:
        yield backend


def _cupy() -> Any:
    return importlib.import_module("cupy")


def _on_gpu(x: Any) -> bool:
    data = x.data if isinstance(x, Variable) else x
    return type(data) is _CUPY.array_type


def _labels(backend: Any, n: int, classes: int, seed: int = 0) -> Any:
    return backend.asarray(np.random.default_rng(seed).integers(0, classes, n), "int64")


# -- a NumPy array beside a CuPy-backed Variable ---------------------------------------------------
BOTH_BACKENDS = r"(numpy.*cupy|cupy.*numpy)"


@needs_gpu
@pytest.mark.parametrize("op", ["mul", "add", "sub", "truediv"])
def test_numpy_array_left_of_cupy_variable_is_a_clear_type_error(gpu, op):
    x = Variable(gpu.asarray(np.arange(1.0, 4.0), "float32"))
    host_array = np.ones(3, dtype=np.float32)
    # Variable defines __array_ufunc__ = None, so NumPy hands `ndarray (op) Variable` to the
    # Variable's reflected operator instead of converting it (which would copy x to the host)
    with pytest.raises(TypeError, match=BOTH_BACKENDS):
        _binary(op, host_array, x)
    with pytest.raises(TypeError, match=BOTH_BACKENDS):
        _binary(op, x, host_array)


def _binary(op: str, a: Any, b: Any) -> Any:
    if op == "mul":
        return a * b
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    return a / b


@needs_gpu
def test_cupy_array_left_of_numpy_variable_is_a_clear_type_error(gpu):
    x = Variable(np.arange(3.0, dtype=np.float32))
    with pytest.raises(TypeError, match=BOTH_BACKENDS):
        gpu.asarray(np.ones(3), "float32") * x


@needs_gpu
def test_cupy_array_left_of_cupy_variable_gives_a_variable_on_the_gpu(gpu):
    x = Variable(gpu.asarray(np.arange(1.0, 4.0), "float32"))
    y = gpu.asarray(np.full(3, 2.0), "float32") * x
    assert isinstance(y, Variable)
    assert _on_gpu(y)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(as_numpy(y), [2.0, 4.0, 6.0])


@needs_gpu
def test_numpy_scalar_left_of_cupy_variable_stays_on_the_gpu(gpu):
    x = Variable(gpu.asarray(np.arange(1.0, 4.0), "float32"))
    y = np.float32(2.0) * x
    assert isinstance(y, Variable)
    assert _on_gpu(y)
    assert y.dtype == np.float32
    y.backward()
    assert _on_gpu(x.grad)
    np.testing.assert_array_equal(as_numpy(x.grad), [2.0, 2.0, 2.0])


# -- scatter-add with repeated indices (atomics on the device) -------------------------------------
@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scatter_add_accumulates_repeated_indices(gpu, dtype):
    indices = np.array([0, 2, 2, 4, 2, 0, 4, 4, 4])
    values = np.arange(1.0, 10.0)
    expected = np.zeros(5)
    np.add.at(expected, indices, values)
    target = gpu.xp.zeros(5, dtype=gpu.dtype(dtype))
    out = gpu.scatter_add(target, gpu.asarray(indices, "int64"), gpu.asarray(values, dtype))
    assert _on_gpu(out)
    assert gpu.dtype_name(out.dtype) == dtype
    np.testing.assert_array_equal(as_numpy(out), expected)
    np.testing.assert_array_equal(as_numpy(target), np.zeros(5))  # a copy, not in place


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scatter_add_many_repeats_into_rows(gpu, dtype):
    # thousands of atomic adds into the same few rows: the order varies, the sum must not
    rng = np.random.default_rng(1)
    indices = rng.integers(0, 3, 20_000)
    values = rng.standard_normal((20_000, 4))
    expected = np.zeros((3, 4))
    np.add.at(expected, indices, values)
    target = gpu.xp.zeros((3, 4), dtype=gpu.dtype(dtype))
    out = gpu.scatter_add(target, gpu.asarray(indices, "int64"), gpu.asarray(values, dtype))
    rtol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(as_numpy(out), expected, rtol=rtol, atol=rtol * 100)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_get_item_gradient_with_repeated_indices(gpu, dtype):
    data = np.arange(12.0).reshape(4, 3)
    rows = np.array([1, 3, 1, 1, 0])
    weights = np.arange(15.0).reshape(5, 3)
    x = Variable(gpu.asarray(data, dtype))
    y = F.sum(F.get_item(x, gpu.asarray(rows, "int64")) * gpu.asarray(weights, dtype))
    y.backward()
    expected = np.zeros((4, 3))
    np.add.at(expected, rows, weights)
    assert _on_gpu(x.grad)
    assert gpu.dtype_name(x.grad.dtype) == dtype
    np.testing.assert_array_equal(as_numpy(x.grad), expected)


@needs_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_embed_id_gradient_with_repeated_ids(gpu, dtype):
    ids = np.array([[0, 2], [2, 2]])
    W = Variable(gpu.asarray(np.ones((3, 2)), dtype))
    F.sum(F.embed_id(gpu.asarray(ids, "int64"), W)).backward()
    np.testing.assert_array_equal(as_numpy(W.grad), [[1, 1], [0, 0], [3, 3]])


# -- no host round trips in a training step --------------------------------------------------------
class HostTransferCounter:
    """Counts device-to-host reads of CuPy arrays made while ``watching``.

    CuPy's ``ndarray`` is a Python subclass of its Cython base, so its methods can be replaced;
    every public way to read a device array on the host passes through one of these.
    """

    ENTRY_POINTS = (
        "get", "item", "tolist", "tobytes", "__array__", "__float__", "__int__", "__index__",
        "__bool__", "__complex__", "__repr__", "__str__", "__format__", "__iter__",
    )  # fmt: skip

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self._watching = False
        cupy = _cupy()
        for name in self.ENTRY_POINTS:
            original = getattr(cupy.ndarray, name, None)
            if original is not None:
                monkeypatch.setattr(cupy.ndarray, name, self._counting(name, original))
        monkeypatch.setattr(cupy, "asnumpy", self._counting("cupy.asnumpy", cupy.asnumpy))

    def _counting(self, name: str, original: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if self._watching:
                self._watching = False  # the bookkeeping below must not count itself
                try:
                    stack = traceback.format_stack(limit=6)[:-1]
                    self.calls.append((name, stack))
                finally:
                    self._watching = True
            return original(*args, **kwargs)

        return counted

    @contextlib.contextmanager
    def watching(self) -> Iterator[HostTransferCounter]:
        self._watching = True
        try:
            yield self
        finally:
            self._watching = False

    def report(self) -> str:
        lines = [f"{len(self.calls)} host reads of device arrays:"]
        for name, stack in self.calls[:5]:
            lines.append(f"  {name} from\n" + "".join(stack))
        return "\n".join(lines)


@pytest.fixture
def host_transfers(monkeypatch: pytest.MonkeyPatch) -> HostTransferCounter:
    return HostTransferCounter(monkeypatch)


@needs_gpu
def test_the_counter_sees_host_reads(gpu, host_transfers):
    x = gpu.xp.ones(3)
    with host_transfers.watching():
        as_numpy(x)
        float(x[0])
        bool(x[1] > 0)
    names = [name for name, _ in host_transfers.calls]
    assert "get" in names and "__float__" in names and "__bool__" in names, names


def _mlp_step(model: Any, optimizer: Any, x: Any, t: Any) -> Any:
    model.cleargrads()
    loss = F.softmax_cross_entropy(model(x), t)
    loss.backward()
    optimizer.update()
    return loss


@needs_gpu
@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_mlp_training_step_makes_no_host_round_trip(
    gpu, host_transfers, optimizer_name, activation
):
    model = agrad.models.MLP((32, 32, 5), activation=getattr(F, activation))
    optimizer = getattr(agrad.optimizers, optimizer_name)().setup(model)
    x = gpu.randn((16, 12), gpu.dtype("float32"))
    t = _labels(gpu, 16, 5)
    _mlp_step(model, optimizer, x, t)  # first step: lazy weight initialisation
    with host_transfers.watching():
        for _ in range(3):
            loss = _mlp_step(model, optimizer, x, t)
    assert not host_transfers.calls, host_transfers.report()
    assert _on_gpu(loss)
    for param in model.params():
        assert _on_gpu(param) and _on_gpu(param.grad)


@needs_gpu
def test_cnn_training_step_makes_no_host_round_trip(gpu, host_transfers):
    if not all(hasattr(F, name) for name in ("conv2d", "pooling")):
        pytest.skip("agrad.functions has no conv2d/pooling yet")
    L = agrad.layers
    conv = L.Conv2d(4, kernel_size=3, stride=1, pad=1)
    fc = L.Linear(3)
    params = [*conv.params(), *fc.params()]
    optimizer = agrad.optimizers.MomentumSGD().setup(params)

    def step(x: Any, t: Any) -> Any:
        conv.cleargrads()
        fc.cleargrads()
        h = F.pooling(F.relu(conv(x)), 2, 2)
        loss = F.softmax_cross_entropy(fc(F.reshape(h, (x.shape[0], -1))), t)
        loss.backward()
        optimizer.update()
        return loss

    x = gpu.randn((2, 3, 8, 8), gpu.dtype("float32"))
    t = _labels(gpu, 2, 3)
    step(x, t)
    with host_transfers.watching():
        loss = step(x, t)
    assert not host_transfers.calls, host_transfers.report()
    assert _on_gpu(loss)
    for param in [*conv.params(), *fc.params()]:
        assert _on_gpu(param) and _on_gpu(param.grad)


@needs_gpu
def test_clip_grad_and_weight_decay_make_no_host_round_trip(gpu, host_transfers):
    model = agrad.models.MLP((32, 5))
    optimizer = agrad.optimizers.Adam().setup(model)
    optimizer.add_hook(agrad.optimizers.WeightDecay(1e-4))
    optimizer.add_hook(agrad.optimizers.ClipGrad(0.1))
    x = gpu.randn((16, 12), gpu.dtype("float32"))
    t = _labels(gpu, 16, 5)
    _mlp_step(model, optimizer, x, t)
    with host_transfers.watching():
        for _ in range(3):
            _mlp_step(model, optimizer, x, t)
    assert not host_transfers.calls, host_transfers.report()


@needs_gpu
def test_seed_after_use_cupy_seeds_cupy_in_a_fresh_process():
    # a fresh process: in this one CuPy's namespace is loaded already, which hid the bug
    code = (
        "import agrad, cupy\n"
        "agrad.use('cupy', fallback=False)\n"
        "agrad.seed(0)\n"
        "a = agrad.current_backend().randn((4,)).get().tolist()\n"
        "cupy.random.seed(0)\n"
        "b = cupy.random.standard_normal((4,)).get().tolist()\n"
        "print(a == b)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": _python_path()},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


# -- agrad.use('cupy'): a whole DeZero-style training run stays on the device ----------------------
def _state_arrays(optimizer: Any) -> list[Any]:
    """Every array the optimizer keeps per parameter (moments, accumulators)."""
    found = []
    for value in vars(optimizer).values():
        if isinstance(value, dict):
            found.extend(v for v in value.values() if _CUPY.owns(v) or isinstance(v, np.ndarray))
    return found


@needs_gpu
@pytest.mark.parametrize("optimizer_name", OPTIMIZERS)
def test_use_cupy_then_training_keeps_everything_on_the_gpu(optimizer_name):
    previous = agrad.current_backend()
    try:
        assert agrad.use("cupy", fallback=False).name == "cupy"
        model = agrad.models.MLP((10, 3))
        optimizer = getattr(agrad.optimizers, optimizer_name)().setup(model)
        loader = agrad.DataLoader(agrad.datasets.Spiral(train=True), batch_size=30)
        for _ in range(2):
            for x, t in loader:
                assert _on_gpu(x) and _on_gpu(t)
                loss = _mlp_step(model, optimizer, x, t)
        assert _on_gpu(loss)
        params = list(model.params())
        assert params
        for param in params:
            assert _on_gpu(param), param.name
            assert param.grad is not None and _on_gpu(param.grad), param.name
        state = _state_arrays(optimizer)
        if optimizer_name != "SGD":
            assert state, f"{optimizer_name} keeps no per-parameter arrays that this test can see"
        assert all(_on_gpu(a) for a in state), [type(a) for a in state]
        assert np.isfinite(float(as_numpy(loss)))
    finally:
        agrad.use(previous)


# -- weights saved on the GPU load on the CPU ------------------------------------------------------
@needs_gpu
def test_weights_saved_on_gpu_load_on_cpu(gpu, tmp_path):
    x_host = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    model_gpu = agrad.models.MLP((8, 3))
    y_gpu = model_gpu(gpu.asarray(x_host))
    path = tmp_path / "weights.npz"
    model_gpu.save_weights(path)
    assert all(_on_gpu(p) for p in model_gpu.params())  # saving leaves the model where it is

    with agrad.using_backend("numpy"):
        model_cpu = agrad.models.MLP((8, 3))
        model_cpu(x_host)  # initialise the shapes on the CPU, then overwrite them
        model_cpu.load_weights(path)
        fresh = agrad.models.MLP((8, 3))  # never run: loads onto the default backend
        fresh.load_weights(path)
        for model in (model_cpu, fresh):
            for p_cpu, p_gpu in zip(model.params(), model_gpu.params()):
                assert type(p_cpu.data) is np.ndarray
                assert p_cpu.dtype == np.float32
                np.testing.assert_array_equal(p_cpu.data, as_numpy(p_gpu))
            np.testing.assert_allclose(
                as_numpy(model(x_host)), as_numpy(y_gpu), rtol=1e-5, atol=1e-6
            )


@needs_gpu
def test_model_moves_between_gpu_and_cpu(gpu):
    model = agrad.models.MLP((5, 2))
    x = gpu.randn((3, 4), gpu.dtype("float32"))
    y = as_numpy(model(x))
    model.to_cpu()
    assert all(type(p.data) is np.ndarray for p in model.params())
    np.testing.assert_allclose(as_numpy(model(as_numpy(x))), y, rtol=1e-5, atol=1e-6)
    model.to_gpu()
    assert all(_on_gpu(p) for p in model.params())


# -- float16 on the GPU ----------------------------------------------------------------------------
def _float16_graph(x: Any, W: Any, b: Any) -> Any:
    h = F.linear(x, W, b)
    return F.sum(F.tanh(h) * F.sigmoid(h) + F.exp(h * 0.1) / 4)


@needs_gpu
def test_float16_forward_backward(gpu):
    rng = np.random.default_rng(3)
    x_host = rng.standard_normal((8, 16)) * 0.5
    W_host = rng.standard_normal((16, 4)) * 0.25
    b_host = rng.standard_normal(4) * 0.1
    half = [Variable(gpu.asarray(a, "float16")) for a in (x_host, W_host, b_host)]
    y = _float16_graph(*half)
    assert _on_gpu(y) and y.dtype == np.float16
    y.backward()
    with agrad.using_backend("numpy"):
        # the reference: float64 on the CPU, from the same float16-rounded inputs
        full = [Variable(as_numpy(v).astype(np.float64)) for v in half]
        y_ref = _float16_graph(*full)
        y_ref.backward()
    np.testing.assert_allclose(float(as_numpy(y)), float(y_ref.data), rtol=1e-2)
    for v16, v64 in zip(half, full):
        assert _on_gpu(v16.grad) and v16.grad.dtype == np.float16
        np.testing.assert_allclose(
            as_numpy(v16.grad).astype(np.float64), v64.grad.data, rtol=2e-2, atol=2e-2
        )


@needs_gpu
def test_float16_mlp_training_step(gpu):
    L = agrad.layers
    model = agrad.models.Sequential(
        L.Linear(16, dtype="float16"), F.relu, L.Linear(3, dtype="float16")
    )
    optimizer = agrad.optimizers.SGD(lr=0.1).setup(model)
    x = gpu.randn((8, 5), gpu.dtype("float16"))
    t = _labels(gpu, 8, 3)
    losses = [float(as_numpy(_mlp_step(model, optimizer, x, t))) for _ in range(5)]
    for param in model.params():
        assert param.dtype == np.float16 and param.grad.dtype == np.float16
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


@needs_gpu
def test_device_name_and_gpu_flag(gpu):
    assert agrad.cuda.gpu_enable
    assert gpu.device_name().startswith("CUDA device")
    assert _on_gpu(agrad.cuda.as_cupy(np.ones(2)))
