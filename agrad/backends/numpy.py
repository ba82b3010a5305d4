"""NumPy: the CPU backend and agrad's default. Also the host-side library for I/O."""

from __future__ import annotations

import operator
from typing import Any

import array_api_compat.numpy as compat_numpy
import numpy

from agrad.backends._base import Backend, scratch_plan

#: the raw NumPy module, for host-side work elsewhere in agrad (files, datasets, printing)
host = numpy


# subtract_scaled's blocks: small enough to stay in any x86 or ARM core's L2 cache with the
# blocks of its operands, large enough that the loop's per-call cost is under 1 %
_BLOCK_BYTES = 256 * 1024
_BLOCKED_FROM = 4 * _BLOCK_BYTES
# the ufunc each operator calls on arrays (`**` is left out: ndarray's ** takes shortcuts,
# such as square for 2, that power with out= would not)
_UFUNC_OF = {
    operator.add: numpy.add,
    operator.sub: numpy.subtract,
    operator.mul: numpy.multiply,
    operator.truediv: numpy.true_divide,
    operator.floordiv: numpy.floor_divide,
    operator.mod: numpy.remainder,
    operator.matmul: numpy.matmul,
    operator.and_: numpy.bitwise_and,
    operator.or_: numpy.bitwise_or,
    operator.xor: numpy.bitwise_xor,
    operator.lt: numpy.less,
    operator.le: numpy.less_equal,
    operator.gt: numpy.greater,
    operator.ge: numpy.greater_equal,
    operator.eq: numpy.equal,
    operator.ne: numpy.not_equal,
    operator.neg: numpy.negative,
    operator.pos: numpy.positive,
    operator.invert: numpy.invert,
}


class NumpyBackend(Backend):
    """Arrays are ``numpy.ndarray`` on the CPU; random numbers come from NumPy's global RNG."""

    name = "numpy"

    def _check(self) -> None:
        numpy.zeros(1)

    def _load(self) -> tuple[Any, type]:
        return compat_numpy, numpy.ndarray

    def owns(self, x: Any) -> bool:
        return isinstance(x, numpy.ndarray)

    def to_host(self, x: Any) -> Any:
        return numpy.asarray(x)

    def is_writable(self, x: Any) -> bool:
        return x.flags.writeable  # broadcast_to views are read-only

    # what array_api_compat's asarray does for one argument, without its keyword handling
    # (about 1 µs per call, which is most of an operation on 0-d data)
    from_result = staticmethod(numpy.asarray)

    def scalar_array(self, value: Any, dtype: Any) -> Any:
        return numpy.array(value, dtype=dtype)  # 0.5 µs; array_api_compat's full takes 4

    def dtype(self, name: str) -> Any:
        return numpy.dtype(name)

    def dtype_name(self, dtype: Any) -> str:
        return numpy.dtype(dtype).name

    def sigmoid(self, x: Any) -> Any:
        # A third faster than tanh(x/2)/2 + 1/2 on large arrays: NumPy's float32 exp is twice as
        # fast as its tanh. Where exp(-x) overflows (x < -88 in float32) 1 / (1 + inf) is the
        # right limit, 0, so the warning is silenced (costs 3 µs, on small arrays too).
        # (In place it is 1.5 % faster on large arrays and 20 % slower on small ones.)
        with numpy.errstate(over="ignore"):
            return 1.0 / (1.0 + numpy.exp(x * -1.0))  # (not -x: a boolean x has no negative)

    def subtract_scaled(self, target: Any, scale: Any, x: Any) -> Any:
        # `target -= scale * x` on an array larger than a core's L2 cache writes a temporary of
        # its size out to memory and reads it back; a block at a time through one small buffer
        # it stays in cache: a fifth faster on a 4 MB weight (benchmarks/README.md). Elementwise
        # IEEE arithmetic, so the values are the same bit for bit.
        if (
            target.nbytes < _BLOCKED_FROM
            or type(target) is not numpy.ndarray
            or type(x) is not numpy.ndarray
            or x.shape != target.shape
            or not (target.flags.c_contiguous and x.flags.c_contiguous)
            or numpy.ndim(scale) != 0
            or numpy.may_share_memory(target, x)
        ):
            target -= scale * x
            return target
        dtype = numpy.result_type(scale, x)  # what `scale * x` would be, weak Python scalars too
        flat_target, flat_x = target.reshape(-1), x.reshape(-1)
        size, step = flat_target.size, max(_BLOCK_BYTES // dtype.itemsize, 1)
        buffer = numpy.empty(step, dtype)
        for start in range(0, size, step):
            stop = start + step
            scaled = buffer if stop <= size else buffer[: size - start]
            numpy.multiply(flat_x[start:stop], scale, out=scaled)
            numpy.subtract(flat_target[start:stop], scaled, out=flat_target[start:stop])
        return target

    def scratch_layout(self, x: Any) -> tuple | None:
        if type(x) is numpy.ndarray and x.ndim and x.flags.c_contiguous:
            return (x.shape, x.dtype)
        return None

    def writing_into(self, fn: Any) -> Any:
        ufunc = _UFUNC_OF.get(fn, fn)
        if type(ufunc) is numpy.ufunc and ufunc.nout == 1:
            return ufunc
        return None

    def scratch(self, layouts: tuple) -> tuple:
        size, _ = scratch_plan(layouts, 0)
        slab = numpy.empty(size, numpy.uint8)
        _, spans = scratch_plan(layouts, slab.ctypes.data)
        return tuple(
            slab[at : at + nbytes].view(dtype).reshape(shape)
            for (shape, dtype), (at, nbytes) in zip(layouts, spans)
        )

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        out = target.copy()
        numpy.add.at(out, indices, values)
        return out

    stride_tricks = True
    host_memory = True

    def _as_strided(
        self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...], writeable: bool
    ) -> Any:
        return numpy.lib.stride_tricks.as_strided(x, shape, strides, writeable=writeable)

    # DeZero draws from NumPy's legacy global RNG; doing the same keeps its scripts' numbers.
    def seed(self, seed: int) -> None:
        numpy.random.seed(seed)

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return draw_uniform(shape, dtype)

    def randn(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        return draw_normal(shape, dtype)

    def permutation(self, n: int) -> Any:
        return numpy.random.permutation(n)


# The host draws themselves, for the backends that start from them (array-api-strict, every
# backend's initial weights): the backend methods above are recorded when called in a trace,
# and these must not be, inside another backend's draw
def draw_uniform(shape: tuple[int, ...], dtype: Any = None) -> Any:
    """Uniform samples in [0, 1) from NumPy's legacy global generator (``agrad.seed``)."""
    return numpy.random.random_sample(shape).astype(dtype or numpy.float64, copy=False)


def draw_normal(shape: tuple[int, ...], dtype: Any = None) -> Any:
    """Standard normal samples from NumPy's legacy global generator (``agrad.seed``)."""
    return numpy.random.standard_normal(shape).astype(dtype or numpy.float64, copy=False)


backend = NumpyBackend()
