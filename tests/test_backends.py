"""Choosing a backend, the fallback story, conversions, and the import rules of the layout."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.backends import backend_of
from agrad.cuda import as_numpy

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )


def test_default_backend_is_numpy():
    assert agrad.current_backend().name == "numpy"


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(ValueError, match="known backends: numpy, cupy, array_api_strict"):
        agrad.use("tensorflow")


def test_use_returns_and_sets_the_backend():
    with agrad.using_backend("numpy"):
        assert agrad.use("numpy").name == "numpy"
        assert agrad.current_backend().name == "numpy"


@pytest.fixture
def fresh_fallback_warnings(monkeypatch):
    """Forget which fallbacks this process already announced (they are announced once)."""
    monkeypatch.setattr(agrad.backends, "_FALLBACK_WARNED", set())


def test_use_unavailable_falls_back_with_one_warning(monkeypatch, fresh_fallback_warnings):
    cupy = agrad.get_backend("cupy")
    monkeypatch.setattr(cupy, "_probe", (False, "RuntimeError: no CUDA device"))
    with agrad.using_backend("numpy"):
        with pytest.warns(agrad.BackendFallbackWarning, match="no CUDA device") as record:
            chosen = agrad.use("cupy")
        assert len(record) == 1
        assert chosen.name == "numpy" and agrad.current_backend().name == "numpy"


def test_fallback_warning_is_given_once_per_process_and_says_how_to_install(
    monkeypatch, fresh_fallback_warnings
):
    cupy = agrad.get_backend("cupy")
    monkeypatch.setattr(cupy, "_probe", (False, "ModuleNotFoundError: No module named 'cupy'"))
    with agrad.using_backend("numpy"), pytest.warns(agrad.BackendFallbackWarning) as record:
        for name in ("cupy", "gpu", "cupy"):
            assert agrad.use(name).name == "numpy"
        with agrad.using_backend("cupy") as chosen:
            assert chosen.name == "numpy"
    assert len(record) == 1, [str(w.message) for w in record]
    message = str(record[0].message)
    assert "pip install -e '.[cuda12]'" in message and "pip install cupy-cuda12x" in message


def test_to_gpu_after_the_fallback_raises_with_the_install_hint(
    monkeypatch, fresh_fallback_warnings
):
    # CuPy made missing whatever this machine has, so the test runs everywhere
    cupy = agrad.get_backend("cupy")
    monkeypatch.setattr(cupy, "_probe", (False, "ModuleNotFoundError: No module named 'cupy'"))
    with agrad.using_backend("numpy"):
        with pytest.warns(agrad.BackendFallbackWarning) as record:
            agrad.use("cupy")  # the fallback: NumPy, with the hint in the warning
        hint = cupy.install_hint()
        assert hint and hint in str(record[0].message)
        model = agrad.models.MLP((3, 2))
        model(np.ones((1, 2), dtype=np.float32))
        moves = {
            "Variable.to_gpu": lambda: Variable(np.ones(2)).to_gpu(),
            "Layer.to_gpu": model.to_gpu,
            "DataLoader(gpu=True)": lambda: agrad.DataLoader(
                agrad.datasets.Spiral(), batch_size=10, gpu=True
            ),
            "cuda.as_cupy": lambda: agrad.cuda.as_cupy(np.ones(2)),
            "cupy.library": cupy.library,
        }
        for what, move in moves.items():
            with pytest.raises(agrad.BackendUnavailableError) as caught:
                move()
            message = str(caught.value)
            assert "agrad backend 'cupy' is not usable here: ModuleNotFoundError" in message, what
            assert f"; to use it, {hint}" in message, what


def test_fallback_warning_for_an_installed_cupy_without_device_does_not_say_install(
    monkeypatch, fresh_fallback_warnings
):
    cupy = agrad.get_backend("cupy")
    monkeypatch.setattr(cupy, "_probe", (False, "CUDARuntimeError: no CUDA-capable device"))
    with agrad.using_backend("numpy"), pytest.warns(agrad.BackendFallbackWarning) as record:
        agrad.use("cupy")
    message = str(record[0].message)
    assert "no CUDA-capable device" in message and "nvidia-smi" in message
    assert "pip install" not in message


class _WarningBackend(agrad.backends.Backend):
    """A backend whose library warns while it is probed, as CuPy can on first use."""

    name = "warns_on_probe"

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail

    def _check(self) -> None:
        import warnings

        warnings.warn("CUDA path could not be detected", UserWarning, stacklevel=2)
        if self.fail:
            raise RuntimeError("no device")


def test_a_warning_while_probing_does_not_make_the_backend_unusable():
    # pyproject.toml turns warnings into errors under pytest, so before the fix this warning
    # became an exception inside probe(), and every GPU test skipped as "no usable GPU"
    backend = _WarningBackend()
    assert backend.probe() == (True, "")
    assert backend.available
    assert backend.probe_warnings == ["UserWarning: CUDA path could not be detected"]


def test_a_warning_while_probing_is_reported_with_the_failure():
    usable, why = _WarningBackend(fail=True).probe()
    assert not usable
    assert why.startswith("RuntimeError: no device")
    assert "UserWarning: CUDA path could not be detected" in why


def test_cupy_probe_survives_a_library_that_warns_on_first_use(monkeypatch):
    import types
    import warnings

    from agrad.backends.cupy import CupyBackend

    class FakeArray:
        def sum(self) -> FakeArray:
            return self

        def item(self) -> float:
            warnings.warn("a kernel was compiled", RuntimeWarning, stacklevel=2)
            return 0.0

    def device_count() -> int:
        warnings.warn("CUDA path could not be detected", UserWarning, stacklevel=2)
        return 1

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=device_count))
    fake.zeros = lambda n: FakeArray()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "array_api_compat.cupy", types.ModuleType("compat"))
    backend = CupyBackend()
    assert backend.probe() == (True, "")
    assert backend.probe_warnings == [
        "UserWarning: CUDA path could not be detected",
        "RuntimeWarning: a kernel was compiled",
    ]


def test_use_unavailable_without_fallback_raises_with_the_cause(monkeypatch):
    cupy = agrad.get_backend("cupy")
    monkeypatch.setattr(cupy, "_probe", (False, "ImportError: No module named 'cupy'"))
    with pytest.raises(agrad.BackendUnavailableError, match="No module named 'cupy'"):
        agrad.use("cupy", fallback=False)


def test_using_backend_restores_the_previous_one():
    before = agrad.current_backend()
    with agrad.using_backend("array_api_strict") as backend:
        assert agrad.current_backend() is backend
        x = Variable(agrad.as_array(1.0))
        assert backend_of(x.data).name == "array_api_strict"
    assert agrad.current_backend() is before


def test_environment_variable_selects_the_backend():
    result = run_python(
        "import agrad; print(agrad.current_backend().name)", AGRAD_BACKEND="array_api_strict"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "array_api_strict"


def test_environment_variable_cupy_without_gpu_warns_and_uses_numpy():
    if agrad.get_backend("cupy").available:
        pytest.skip("this machine has a usable CUDA GPU, so there is no fallback to see")
    result = run_python("import agrad; print(agrad.current_backend().name)", AGRAD_BACKEND="cupy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"
    assert result.stderr.count("BackendFallbackWarning") == 1


def test_unknown_environment_backend_is_an_error_naming_the_variable():
    result = run_python("import agrad", AGRAD_BACKEND="nonsense")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: environment variable AGRAD_BACKEND='nonsense'"), last
    assert "known backends: numpy, cupy, array_api_strict" in last


def test_environment_backend_accepts_aliases_and_empty():
    result = run_python("import agrad; print(agrad.current_backend().name)", AGRAD_BACKEND="np")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"
    result = run_python("import agrad; print(agrad.current_backend().name)", AGRAD_BACKEND="")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"


def test_pytest_backend_option_fails_when_the_backend_is_unusable():
    # simulated, so that this runs (and means the same) on machines with and without a GPU
    code = (
        "import sys, agrad, pytest\n"
        "agrad.get_backend('cupy')._probe = (False, 'RuntimeError: simulated, no CUDA device')\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '--backend', 'cupy',\n"
        "                      'tests/test_backends.py', '-k', 'default_backend_is_numpy']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    output = result.stdout + result.stderr
    assert result.returncode == 4, output  # pytest's "usage error"
    assert "'cupy' was asked for" in output and "simulated, no CUDA device" in output


def test_seed_reaches_a_backend_chosen_with_use(monkeypatch):
    cupy = agrad.get_backend("cupy")
    seeded = []
    monkeypatch.setattr(cupy, "seed", seeded.append)
    assert not cupy.loaded  # chosen, but no array made on it yet
    monkeypatch.setattr(cupy, "_probe", (True, ""))
    agrad.seed(5)
    assert seeded == [5]


def test_seed_does_not_import_an_unused_backend(monkeypatch):
    cupy = agrad.get_backend("cupy")
    seeded = []
    monkeypatch.setattr(cupy, "seed", seeded.append)
    assert not cupy.loaded
    monkeypatch.setattr(cupy, "_probe", None)
    agrad.seed(5)
    assert seeded == []


def test_import_agrad_imports_neither_cupy_nor_strict():
    result = run_python(
        "import sys, agrad, agrad.functions, agrad.utils, agrad.cuda, agrad.distributed\n"
        "print([m for m in ('cupy', 'array_api_strict', 'mpi4py') if m in sys.modules])"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


IMPORT = re.compile(
    r"^\s*(import|from)\s+(numpy|cupy|cupyx|array_api_strict|array_api_compat)\b", re.MULTILINE
)


def test_only_the_backend_layer_imports_array_libraries():
    offenders = []
    for path in (ROOT / "agrad").rglob("*.py"):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("agrad/backends/"):
            continue
        text = path.read_text()
        if IMPORT.search(text) or re.search(r"import_module\(['\"](numpy|cupy)", text):
            offenders.append(relative)
    assert offenders == []


def test_conversions_between_backends():
    strict = agrad.get_backend("array_api_strict")
    x = Variable(np.asarray([1.0, 2.0], dtype=np.float32))
    (x * 2.0).sum().backward()
    x.to("array_api_strict")
    assert backend_of(x.data) is strict and backend_of(x.grad.data) is strict
    assert x.dtype == strict.xp.float32
    x.to_cpu()
    assert isinstance(x.data, np.ndarray) and isinstance(x.grad.data, np.ndarray)
    np.testing.assert_allclose(x.data, [1.0, 2.0])


def test_to_gpu_without_gpu_raises_clearly():
    if agrad.get_backend("cupy").available:
        pytest.skip("this machine has a usable CUDA GPU")
    with pytest.raises(agrad.BackendUnavailableError, match="'cupy' is not usable"):
        Variable(np.ones(2)).to_gpu()


def test_seed_gradient_follows_the_variable():
    with agrad.using_backend("numpy"):
        x = Variable(agrad.get_backend("array_api_strict").xp.asarray([1.0, 2.0]))
        y = F.sin(x)
        y.backward()
        assert backend_of(x.grad.data).name == "array_api_strict"


def test_cuda_module_keeps_dezero_names(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    assert agrad.cuda.get_array_module(x) is agrad.current_backend().xp
    assert agrad.cuda.get_array_module(1.0) is agrad.get_backend("numpy").xp
    assert isinstance(agrad.cuda.as_numpy(x), np.ndarray)
    assert isinstance(agrad.cuda.as_numpy(2.0), np.ndarray)
    assert agrad.cuda.gpu_enable is agrad.get_backend("cupy").available


def test_as_cupy_without_gpu_raises():
    if agrad.get_backend("cupy").available:
        pytest.skip("this machine has a usable CUDA GPU")
    with pytest.raises(agrad.BackendUnavailableError):
        agrad.cuda.as_cupy(np.ones(2))


def test_scatter_add_accumulates_repeated_indices(xp):
    backend = agrad.current_backend()
    for dtype in (xp.float32, xp.float64):
        target = xp.zeros(4, dtype=dtype)
        indices = xp.asarray([0, 2, 2, 3, 0, 0])
        values = xp.asarray([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=dtype)
        out = backend.scatter_add(target, indices, values)
        np.testing.assert_allclose(as_numpy(out), [12.0, 0.0, 5.0, 4.0])
        np.testing.assert_allclose(as_numpy(target), np.zeros(4))  # the input is untouched
        assert out.dtype == dtype


@pytest.mark.parametrize("shape", [(3,), (700, 530)])  # (700, 530): NumPy's blocked form
def test_subtract_scaled_is_the_two_step_update(xp, shape):
    backend = agrad.current_backend()
    rng = np.random.default_rng(5)
    for dtype in ("float32", "float64"):
        value = rng.standard_normal(shape).astype(dtype)
        x = rng.standard_normal(shape).astype(dtype)
        for scale in (0.01, backend.xp.asarray(0.01, dtype=getattr(xp, dtype))):
            expected = value.copy()
            expected -= 0.01 * x
            target = xp.asarray(value.copy())
            if backend.mutable_arrays and not backend.is_writable(target):
                with pytest.raises(ValueError, match="read-only"):  # the optimizers never pass one
                    backend.subtract_scaled(target, scale, xp.asarray(x))
                continue
            out = backend.subtract_scaled(target, scale, xp.asarray(x))
            np.testing.assert_array_equal(as_numpy(out), expected)
            assert out.dtype == getattr(xp, dtype)
            if backend.mutable_arrays and backend.is_writable(target):
                assert out is target


def test_a_call_written_into_a_kept_buffer_gives_what_it_returns(xp):
    # agrad.jit's kept buffers: where a backend writes a call's result into a given array, the
    # values and dtype are those the call returns
    import operator

    backend = agrad.current_backend()
    rng = np.random.default_rng(3)
    a = xp.asarray(rng.standard_normal((40, 30)).astype("float32"))
    b = xp.asarray(rng.standard_normal((40, 30)).astype("float32"))
    ns = backend.xp
    calls = [
        (operator.add, (a, b)),
        (operator.sub, (1.0, a)),
        (operator.mul, (a, 0.5)),
        (operator.truediv, (a, b)),
        (operator.matmul, (a, ns.permute_dims(b, (1, 0)))),
        (operator.lt, (a, b)),
        (operator.neg, (a,)),
        (ns.tanh, (a,)),
        (ns.exp, (a,)),
        (ns.maximum, (a, b)),
    ]
    written = []
    for fn, args in calls:
        expected = fn(*args)
        writer, layout = backend.writing_into(fn), backend.scratch_layout(expected)
        if writer is None or layout is None:
            continue
        (buffer,) = backend.scratch((layout,))
        out = writer(*args, out=buffer)
        assert out.dtype == expected.dtype
        np.testing.assert_array_equal(as_numpy(out), as_numpy(expected))
        if out is buffer:
            written.append(fn)
        else:  # (PyTorch, a number first: the reflected operator's own result)
            assert isinstance(args[0], float)
    everything = [fn for fn, _ in calls]
    if backend.name == "numpy":
        assert written == everything
    if backend.name == "torch":
        # no boolean buffers; `1.0 - a` is `a.__rsub__(1.0)`; array-api-compat's maximum is a
        # wrapper of its own, not torch.maximum
        skipped = (operator.sub, operator.lt, ns.maximum)
        assert written == [fn for fn in everything if fn not in skipped]


def test_numpy_keeps_buffers_only_where_they_cannot_be_told_apart():
    import operator

    backend = agrad.get_backend("numpy")
    assert backend.writing_into(operator.mul) is np.multiply
    assert backend.writing_into(np.tanh) is np.tanh
    # `**` takes shortcuts power does not; the others may return views or several arrays
    for fn in (operator.pow, operator.getitem, np.sum, np.reshape, np.modf):
        assert backend.writing_into(fn) is None, fn
    for value in (np.zeros((4, 6))[:, ::2], np.zeros(()), 3.0):
        assert backend.scratch_layout(value) is None
    layouts = (((3, 5), np.dtype("float32")), ((7,), np.dtype("float64")), ((2,), np.dtype("i1")))
    arrays = backend.scratch(layouts)
    roots = set()
    for array, (shape, dtype) in zip(arrays, layouts):
        assert array.shape == shape and array.dtype == dtype
        assert array.flags.c_contiguous and array.flags.writeable
        assert array.ctypes.data % 64 == 0
        root = array
        while root.base is not None:
            root = root.base
        roots.add(id(root))
    assert len(roots) == 1  # one allocation
    for i, first in enumerate(arrays):
        for second in arrays[i + 1 :]:
            assert not np.shares_memory(first, second)
    strict = agrad.get_backend("array_api_strict")
    assert strict.writing_into(operator.mul) is None
    assert strict.scratch_layout(strict.asarray([1.0] * 5000)) is None
    with pytest.raises(NotImplementedError, match="keeps no buffers"):
        strict.scratch(layouts)


def test_numpy_subtract_scaled_keeps_the_two_step_semantics_where_it_cannot_block():
    backend = agrad.backends.get_backend("numpy")
    rng = np.random.default_rng(6)
    w = rng.standard_normal((600, 600)).astype(np.float32)

    def both(target, scale, x):
        expected = target.copy()
        expected -= scale * (x if x is not target else expected)
        out = backend.subtract_scaled(target, scale, x)
        assert out is target
        np.testing.assert_array_equal(out, expected)

    both(w.copy(), 0.5, rng.standard_normal((600, 600)))  # float64 x into float32
    both(w.copy(), np.float64(0.3), rng.standard_normal((600, 600)).astype(np.float32))
    both(w.copy(), 0.5, rng.standard_normal((600, 600)).astype(np.float32).T)  # not contiguous
    both(w.copy(), 0.5, rng.standard_normal(600).astype(np.float32))  # broadcast
    both(w.copy(), rng.random((600, 1)), rng.standard_normal((600, 600)).astype(np.float32))
    target = w.copy()
    both(target, 0.5, target)  # weight decay's `w -= c * w`: x is the target
    target = w.copy()
    both(target, 0.5, target[::-1])  # overlapping: one pass would read updated values
    integers = np.arange(600 * 600).reshape(600, 600)
    with pytest.raises(TypeError):  # as `-=` refuses to cast a float update into integers
        backend.subtract_scaled(integers, 0.5, w)
    np.testing.assert_array_equal(integers, np.arange(600 * 600).reshape(600, 600))


def test_seeded_random_numbers_repeat(xp):
    backend = agrad.current_backend()
    agrad.seed(7)
    first = as_numpy(backend.randn((3,), dtype=xp.float32))
    perm = as_numpy(backend.permutation(5))
    agrad.seed(7)
    np.testing.assert_array_equal(as_numpy(backend.randn((3,), dtype=xp.float32)), first)
    np.testing.assert_array_equal(as_numpy(backend.permutation(5)), perm)
    assert sorted(perm.tolist()) == [0, 1, 2, 3, 4]
    sample = backend.random((1000,))
    assert float(xp.min(sample)) >= 0.0 and float(xp.max(sample)) < 1.0


def test_backend_of_rejects_foreign_objects():
    with pytest.raises(TypeError, match="not an array of any agrad backend"):
        backend_of([1, 2])


class _WritesIntoItsInput(agrad.Function):
    """A Function that breaks the rule: it writes into an array it did not allocate."""

    def forward(self, x):
        x[...] = 0
        return x


def test_read_only_variant_catches_writes_into_inputs(xp, request):
    read_only = request.node.callspec.params["xp"] == "numpy_readonly"
    backend = agrad.current_backend()
    a = xp.ones((3,))
    assert backend.is_writable(a) is (backend.mutable_arrays and not read_only)
    # JAX refuses item assignment; Dask takes it by giving the array object a new graph
    if read_only or backend.name == "jax":
        with pytest.raises((TypeError, ValueError)):
            _WritesIntoItsInput()(Variable(a))
    else:
        _WritesIntoItsInput()(Variable(a))  # allowed by the library, caught by the variant


def test_scatter_add_accumulates_on_multi_axis_keys(xp):
    backend = agrad.current_backend()
    target = backend.asarray(np.zeros((3, 2)))
    rows = backend.asarray(np.array([0, 2, 0, 0]))
    values = backend.asarray(np.arange(8.0).reshape(4, 2))
    out = backend.scatter_add(target, (rows,), values)
    np.testing.assert_array_equal(backend.to_host(out), [[10.0, 13.0], [0.0, 0.0], [2.0, 3.0]])
    np.testing.assert_array_equal(backend.to_host(target), np.zeros((3, 2)))  # a new array
    mixed = backend.scatter_add(target, (slice(None), backend.asarray(np.array([1, 1]))), 1.0)
    np.testing.assert_array_equal(backend.to_host(mixed), [[0.0, 2.0]] * 3)


def test_python_floats_become_float64_on_every_backend(xp):
    backend = agrad.current_backend()
    assert backend.dtype_name(backend.asarray([1.0, 2.0]).dtype) == "float64"
    assert backend.dtype_name(agrad.as_array(0.5).dtype) == "float64"


def test_torch_tensors_never_touch_pytorch_autograd():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    before = torch.get_default_dtype()
    w = torch.ones(3, dtype=torch.float32, requires_grad=True)
    converted = agrad.get_backend("torch").asarray(w)
    assert not converted.requires_grad and torch.get_default_dtype() is before
    # PyTorch alone makes Python floats float32 (its default dtype, untouched here); agrad float64
    assert agrad.get_backend("torch").asarray([1.0]).dtype == torch.float64
    x = Variable(agrad.get_backend("torch").asarray([1.0, 2.0, 3.0]))
    y = F.sum(F.sin(x) * x)
    y.backward(create_graph=True)
    assert not y.data.requires_grad and not x.grad.data.requires_grad
    assert y.data.grad_fn is None and x.grad.data.grad_fn is None
    np.testing.assert_allclose(
        as_numpy(x.grad), np.cos([1.0, 2.0, 3.0]) * [1.0, 2.0, 3.0] + np.sin([1.0, 2.0, 3.0])
    )


def test_dask_unknown_shapes_are_refused_by_name():
    pytest.importorskip("dask.array", reason="Dask is not installed")
    dask = agrad.get_backend("dask")
    x = Variable(dask.asarray(np.arange(6.0)))
    with pytest.raises(ValueError, match=r"unknown shape \(nan,\).*compute_chunk_sizes"):
        x[x.data > 2]
    masked = x.data[x.data > 2]
    with pytest.raises(ValueError, match="unknown shape"):
        dask.asarray(masked)
    y = x[2:]  # a known shape: fine
    F.sum(y).backward()
    np.testing.assert_array_equal(as_numpy(x.grad), [0, 0, 1, 1, 1, 1])


def test_dask_reshape_takes_any_shape_across_chunks():
    pytest.importorskip("dask.array", reason="Dask is not installed")
    import dask.array as da

    xp = agrad.get_backend("dask").xp
    data = np.arange(24.0).reshape(4, 6)
    chunked = da.from_array(data, chunks=(2, 3))
    with pytest.raises(NotImplementedError):
        chunked.reshape((8, 3))  # Dask alone: splits 6 across a chunk boundary and merges 4
    np.testing.assert_array_equal(xp.reshape(chunked, (8, 3)).compute(), data.reshape(8, 3))
    x = Variable(chunked)
    F.sum(F.reshape(x, (8, 3)) * xp.arange(3.0)).backward()
    np.testing.assert_array_equal(as_numpy(x.grad), np.tile(np.arange(3.0), 8).reshape(4, 6))


def _train_small_model(backend_name: str, steps: int = 4):
    """A few Adam steps of Linear -> BatchNorm -> Linear on fixed data; the model and optimizer."""
    backend = agrad.get_backend(backend_name)
    draw = np.random.default_rng(3)
    x = backend.asarray(draw.standard_normal((16, 5)))
    t = backend.asarray(draw.integers(0, 3, 16))
    with agrad.using_backend(backend, fallback=False):
        agrad.seed(0)
        model = agrad.models.Sequential(
            agrad.layers.Linear(8), agrad.layers.BatchNorm(), F.relu, agrad.layers.Linear(3)
        )
        model(x)  # creates the parameters on this backend
        for p in model.params():
            p.data = backend.asarray(np.linspace(-0.5, 0.5, math.prod(p.shape)).reshape(p.shape))
        optimizer = agrad.optimizers.Adam(alpha=0.01).setup(model)
        for _ in range(steps):
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
    return model, optimizer


def test_dask_training_keeps_one_step_of_graph_and_numpy_s_values():
    pytest.importorskip("dask.array", reason="Dask is not installed")
    model, optimizer = _train_small_model("dask")
    reference, _ = _train_small_model("numpy")
    # every parameter (running statistics too) and every Adam moment is computed after each
    # update: a task per chunk, not a graph over every step so far
    state = [v for v in vars(optimizer).values() if isinstance(v, dict)]
    arrays = [p.data for p in model.params()] + [a for d in state for a in d.values()]
    assert len(arrays) > len(list(model.params()))
    for a in arrays:
        assert len(a.__dask_graph__()) == a.npartitions
    for (name, p), (_, q) in zip(model.named_params(), reference.named_params()):
        np.testing.assert_allclose(as_numpy(p), as_numpy(q), rtol=1e-10, err_msg=name)


def test_the_dask_chunked_variant_cuts_arrays_into_chunks_of_two():
    pytest.importorskip("dask.array", reason="Dask is not installed")
    from conftest import ChunkedNamespace

    xp = ChunkedNamespace(agrad.get_backend("dask").xp)
    x = xp.asarray(np.arange(15.0).reshape(5, 3))
    assert x.chunks == ((2, 2, 1), (2, 1))
    assert xp.zeros_like(x).chunks == x.chunks and xp.arange(5).chunks == ((2, 2, 1),)
    np.testing.assert_array_equal(x.compute(), np.arange(15.0).reshape(5, 3))


def test_dask_example_fits_a_chunked_data_set(tmp_path):
    pytest.importorskip("dask.array", reason="Dask is not installed")
    script = Path(__file__).resolve().parents[1] / "examples" / "dask_gradient.py"
    env = {**os.environ, "PYTHONPATH": str(script.parents[1])}
    args = ["--rows", "20000", "--chunk", "2000", "--steps", "3"]
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "in 10 chunks" in done.stdout
    assert float(done.stdout.rsplit("largest error in w:", 1)[1]) < 0.01


# -- JAX's process-wide x64 flag -------------------------------------------------------------
def _jax_script(body: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh Python with JAX's flag at its default (off) unless ``env`` says."""
    if not agrad.get_backend("jax").available:
        pytest.skip("JAX is not installed here")
    environment = {
        k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "AGRAD_JAX_X64")
    }
    environment.update(env, PYTHONPATH=str(ROOT))
    environment.pop("AGRAD_BACKEND", None)
    prelude = "import warnings\nwarnings.simplefilter('error')\nimport agrad\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + body],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment,
        timeout=120,
    )


def test_probing_the_backends_leaves_jax_x64_as_it_was():
    result = _jax_script(
        "from agrad.__main__ import info_lines\n"
        "assert 'jax' in agrad.available_backends()\n"
        "info_lines()\n"
        "agrad.get_backend('jax').install_hint()\n"
        "agrad.seed(0)\n"
        "import jax, jax.numpy as jnp\n"
        "print(jax.config.jax_enable_x64, jnp.asarray(1.0).dtype)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "float32"]


def test_use_jax_turns_x64_on_and_says_so_once():
    result = _jax_script(
        "import jax, jax.numpy as jnp\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    backend = agrad.use('jax')\n"
        "    agrad.use('numpy'); agrad.use('jax')\n"
        "    with agrad.using_backend('jax'): pass\n"
        "x = agrad.Variable(backend.asarray([1.0, 2.0]))\n"
        "print(len(caught), caught[0].filename.endswith('<string>'), str(caught[0].message))\n"
        "print(jax.config.jax_enable_x64, (x * 2).sum().data.dtype, jnp.asarray(1.0).dtype)\n"
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first.startswith("1 True agrad turned on jax_enable_x64")  # at the user's use() line
    assert "JAX_ENABLE_X64=1" in first and "AGRAD_JAX_X64=0" in first
    assert second.split() == ["True", "float64", "float64"]


def test_use_jax_is_silent_when_the_user_turned_x64_on():
    result = _jax_script(
        "agrad.use('jax')\nimport jax\nprint(jax.config.jax_enable_x64)\n", JAX_ENABLE_X64="1"
    )
    assert result.returncode == 0, result.stderr  # warnings are errors in the script
    assert result.stdout.strip() == "True"


def test_agrad_jax_x64_0_keeps_jax_32_bit_default():
    result = _jax_script(
        "import jax, jax.numpy as jnp\n"
        "backend = agrad.use('jax')\n"
        "layer = agrad.layers.Linear(2, in_size=3)\n"
        "y = layer(backend.asarray([[1.0, 2.0, 3.0]], dtype=backend.dtype('float32')))\n"
        "print(jax.config.jax_enable_x64, jnp.asarray(1.0).dtype, y.dtype)\n",
        AGRAD_JAX_X64="0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "float32", "float32"]


def test_a_run_naming_no_backend_leaves_out_only_the_listed_slow_repeats():
    from conftest import _full_only

    assert _full_only("dask_chunked", "tests/functions/test_conv.py::test_gradients[x]")
    assert _full_only("jax", "tests/test_docs.py::test_page_examples[jax-docs/guides/jit.md]")
    assert _full_only("dask", "tests/test_docs.py::test_readme_code_blocks[dask-README.md:1]")
    assert not _full_only("jax", "tests/functions/test_conv.py::test_gradients[jax-pooling]")
    assert not _full_only("dask", "tests/test_docs_helpers.py::test_x[dask]")
    assert not _full_only("numpy", "tests/test_docs.py::test_page_examples[numpy-x]")
    assert not _full_only("torch", "tests/test_docs.py::test_page_examples[torch-x]")
    demo = "tests/nn/test_nn_training.py::test_spiral_demo_reaches_95_percent"
    assert _full_only("torch", demo + "[torch]")
    assert _full_only("jax", demo + "[jax]")
    assert not _full_only("numpy", demo + "[numpy]")
    assert not _full_only("array_api_strict", demo + "[array_api_strict]")
    assert _full_only("dask", "tests/test_jit.py::test_demo_with_jit_equals_the_eager_demo[dask]")
    assert not _full_only("dask", "tests/test_jit.py::test_training_steps_equal_eager[dask-SGD]")


@pytest.mark.parametrize("dtype_name", ["float32", "float64", "int64"])
def test_scalar_array_is_a_new_0d_array_of_the_dtype(xp, dtype_name):
    backend = agrad.current_backend()
    dtype = backend.dtype(dtype_name)
    one, other = backend.scalar_array(1, dtype), backend.scalar_array(1, dtype)
    assert backend.owns(one) and one.shape == () and one.dtype == dtype
    assert float(backend.to_host(one)) == 1.0
    assert one is not other  # backward hands it out: never one shared array


def test_a_scalar_loss_starts_backward_from_a_fresh_one_each_pass(xp):
    x = Variable(xp.asarray(3.0))
    first = x * x
    first.backward(retain_grad=True)
    second = x * x
    second.backward(retain_grad=True)
    assert first.grad.data is not second.grad.data
    assert float(first.grad.data) == float(second.grad.data) == 1.0
    assert first.grad.dtype == x.dtype
