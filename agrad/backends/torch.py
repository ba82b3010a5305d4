"""PyTorch: tensors computed on by agrad, never differentiated by PyTorch's autograd.

agrad builds its own graph; a tensor only carries data. Arrays agrad creates have
``requires_grad=False``, and tensors handed in are detached where agrad converts them
(``asarray``). New tensors go to PyTorch's default device (``torch.set_default_device``; the
environment variable ``AGRAD_TORCH_DEVICE``, e.g. ``cuda``, sets it when the backend loads).
"""

from __future__ import annotations

import importlib
import operator
import os
import sys
from typing import Any

from agrad.backends._base import Backend, flat_positions, scratch_plan
from agrad.backends.numpy import host

DEVICE_VARIABLE = "AGRAD_TORCH_DEVICE"


def _torch() -> Any:
    return importlib.import_module("torch")


# elementwise functions and matmul whose writing form is the function itself (`out=`)
_WRITES_INTO = (
    "tanh", "exp", "log", "sin", "cos", "tan", "sqrt", "abs", "log1p", "expm1", "sigmoid",
    "maximum", "minimum", "matmul", "neg",
)  # fmt: skip


def _tensor_first(tensor_fn: Any, operator_fn: Any, tensor_type: type) -> Any:
    """The writing form of an operator: ``tensor_fn(*args, out=buffer)`` where the first
    operand is a Tensor, which is what the operator calls then; where a number comes first,
    the operator's own result (the reflected operator computes it its own way: ``2 / t`` is
    ``t.reciprocal() * 2``), a new tensor, and the buffer goes unused."""

    def write(*args: Any, out: Any) -> Any:
        if type(args[0]) is tensor_type:
            return tensor_fn(*args, out=out)
        return operator_fn(*args)

    return write


def _writer_table(torch: Any) -> dict:
    table = {
        fn: _tensor_first(tensor_fn, fn, torch.Tensor)
        for fn, tensor_fn in (
            (operator.add, torch.add),
            (operator.sub, torch.sub),
            (operator.mul, torch.mul),
            (operator.truediv, torch.div),
            (operator.matmul, torch.matmul),
        )
    }
    table[operator.neg] = torch.neg
    for name in _WRITES_INTO:
        fn = getattr(torch, name)
        table[fn] = fn
    return table


class TorchBackend(Backend):
    """Arrays are ``torch.Tensor`` on PyTorch's default device; random numbers from its global
    generator (``torch.manual_seed``)."""

    negative_steps = False  # x[::-1] raises ValueError: step must be greater than zero
    ints_are_advanced = False

    name = "torch"

    def erf(self, x: Any) -> Any:
        return importlib.import_module("torch").special.erf(x)

    def sigmoid(self, x: Any) -> Any:
        if not x.is_floating_point():  # its sigmoid takes no booleans
            return super().sigmoid(x)
        return _torch().sigmoid(x)

    _writers: dict | None = None

    def scratch_layout(self, x: Any) -> tuple | None:
        # floating CPU tensors only: CUDA tensors come from PyTorch's caching allocator (and no
        # GPU code path becomes the default without having run)
        if (
            type(x) is _torch().Tensor
            and x.dim()
            and x.is_floating_point()
            and x.device.type == "cpu"
            and x.is_contiguous()
            and not x.requires_grad
        ):
            return (tuple(x.shape), x.dtype)
        return None

    def writing_into(self, fn: Any) -> Any:
        writers = self._writers
        if writers is None:
            writers = self._writers = _writer_table(_torch())
        return writers.get(fn)

    def scratch(self, layouts: tuple) -> tuple:
        size, _ = scratch_plan(layouts, 0)
        slab = _torch().empty(size, dtype=_torch().uint8)
        _, spans = scratch_plan(layouts, slab.data_ptr())
        return tuple(
            slab[at : at + nbytes].view(dtype).view(shape)
            for (shape, dtype), (at, nbytes) in zip(layouts, spans)
        )

    def _check(self) -> None:
        torch = _torch()
        device = os.environ.get(DEVICE_VARIABLE, "").strip()
        if device:
            torch.zeros(1, device=device).sum().item()  # the named device answers
        torch.zeros(1).sum().item()
        importlib.import_module("array_api_compat.torch")

    def install_hint(self) -> str:
        ok, why = self.probe()
        if ok:
            return ""
        if why.startswith(("ModuleNotFoundError", "ImportError")):
            return (
                "install PyTorch: from a checkout `pip install -e '.[torch]'`, "
                "else `pip install torch`"
            )
        return f"PyTorch is installed; check the device in ${DEVICE_VARIABLE} (unset: its default)"

    def _load(self) -> tuple[Any, type]:
        self.require()
        torch = _torch()
        device = os.environ.get(DEVICE_VARIABLE, "").strip()
        if device:
            torch.set_default_device(device)
        return importlib.import_module("array_api_compat.torch"), torch.Tensor

    def owns(self, x: Any) -> bool:
        module = sys.modules.get("torch")
        return module is not None and isinstance(x, module.Tensor)

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        torch = _torch()
        if isinstance(data, torch.Tensor):
            data = data.detach()  # agrad differentiates; PyTorch's autograd must not record
        elif dtype is None and not hasattr(data, "dtype"):
            # Python numbers and lists become float64/int64 as on every other backend (PyTorch
            # alone would make floats float32)
            data = host.asarray(data)
        else:
            from agrad.backends import backend_of

            source = backend_of(data, None)
            if source is not None and source is not self:
                data = source.to_host(data)
        if isinstance(data, host.ndarray) and not data.flags.writeable:
            # a tensor shares a NumPy array's memory and has no read-only flag: copy, so that
            # nothing can write through it (PyTorch warns otherwise)
            data = host.array(data)
        return super().asarray(data, dtype)

    def to_host(self, x: Any) -> Any:
        return x.detach().cpu().numpy()

    def from_result(self, value: Any) -> Any:
        return value if isinstance(value, self.array_type) else self.xp.asarray(value)

    def is_writable(self, x: Any) -> bool:
        # a tensor has no read-only flag: a broadcast (expand) view shows itself by a zero stride;
        # a leaf that PyTorch's autograd tracks refuses in-place writes
        if x.requires_grad:
            return False
        return all(stride != 0 or n <= 1 for stride, n in zip(x.stride(), x.shape))

    def dtype_name(self, dtype: Any) -> str:
        return str(dtype).rsplit(".", 1)[-1]

    def array_device(self, x: Any) -> str:
        return str(x.device)  # 'cpu', 'cuda:0'

    def device_name(self) -> str:
        torch = _torch()
        device = torch.get_default_device()
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            return f"PyTorch {device} ({torch.cuda.get_device_name(index)})"
        return f"PyTorch {device}"

    def devices(self) -> list[str]:
        torch = _torch()
        found = [f"default: {self.device_name()}", "cpu"]
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                found.append(f"cuda:{i}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
        return found

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        # index_add_ on flat positions accumulates repeats (a plain out[key] += v would not),
        # and takes any key the tensor's own indexing takes (slices, None, arrays)
        positions = flat_positions(self.xp, tuple(target.shape), indices, target.device)
        torch = _torch()
        values = torch.as_tensor(values, dtype=target.dtype, device=target.device)
        values = torch.broadcast_to(values, tuple(positions.shape))
        out = target.clone()
        out.view(-1).index_add_(0, positions.reshape(-1), values.reshape(-1))
        return out

    def seed(self, seed: int) -> None:
        self.require()
        _torch().manual_seed(seed)

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        torch = _torch()
        return torch.rand(shape, dtype=dtype or torch.float64)

    def randn(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        torch = _torch()
        return torch.randn(shape, dtype=dtype or torch.float64)

    def permutation(self, n: int) -> Any:
        return _torch().randperm(n)


backend = TorchBackend()
