"""Array-level twins of agrad's differentiable functions, used by ``vjp`` on the fast path.

A ``vjp`` is written once against a namespace ``d``: during a plain ``backward`` ``d`` is an
:class:`ArrayOps` bound to the inputs' array namespace, with ``create_graph=True`` it is
``agrad.functions``. Every public name here therefore exists in ``agrad.functions`` with the same
signature and meaning (a test checks this). Elementwise functions that need no adapting
(``exp``, ``cos``, ``where``, ...) come straight from the namespace.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from agrad.backends import Backend

_CACHE: dict[Backend, ArrayOps] = {}
# name -> function(xp, *args, **kwargs): array twins contributed by the function modules
_TWINS: dict[str, Any] = {}


def array_twin(name: str):
    """Register ``func(xp, ...)`` as ``ArrayOps.<name>``: the array version of ``F.<name>``.

    Function modules use this for vocabulary that only they need (``d.deconv2d`` in a conv
    ``vjp``, say) instead of editing this file.
    """

    def register(func):
        if name in _TWINS and _TWINS[name] is not func:
            raise ValueError(f"array twin {name!r} is registered twice")
        _TWINS[name] = func
        for ops in _CACHE.values():  # ArrayOps made before this registration get it too
            ops._bind(name, func)
        return func

    return register


def array_ops(backend: Backend) -> ArrayOps:
    """The :class:`ArrayOps` of ``backend`` (one per backend, cached)."""
    ops = _CACHE.get(backend)
    if ops is None:
        ops = _CACHE[backend] = ArrayOps(backend)
    return ops


def _normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim if ndim else a for a in axis)


class ArrayOps:
    """agrad's function vocabulary on plain arrays of one namespace.

    A name missing here (``AttributeError``) is registered with :func:`array_twin`.
    """

    # straight from the namespace: the Array API elementwise functions agrad also exposes
    _DIRECT = (
        "exp", "log", "sin", "cos", "tanh", "sqrt", "abs", "sign", "where",
        "maximum", "minimum", "matmul", "expand_dims", "concat", "stack",
    )  # fmt: skip

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        xp = self.xp = backend.xp
        # NumPy turns 0-d results into scalars; the backward pass turns them back
        self.array_type = backend.array_type
        for name in self._DIRECT:
            setattr(self, name, getattr(xp, name))
        for name, twin in _TWINS.items():
            self._bind(name, twin)

    def _bind(self, name: str, twin: Any) -> None:
        # a plain instance attribute: `d.<name>` in a vjp is then one specialised attribute read
        # (a class with __getattr__ makes every attribute read of its instances a slow one)
        setattr(self, name, partial(twin, self.xp))

    def sigmoid(self, x: Any) -> Any:
        """Logistic sigmoid, in the backend's fastest form that cannot overflow."""
        return self.backend.sigmoid(x)

    def astype(self, x: Any, dtype: Any) -> Any:
        """``x`` in ``dtype`` (no copy when it already has it)."""
        return x if x.dtype == dtype else self.xp.astype(x, dtype)

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        """Reshape (no copy when possible)."""
        return x if tuple(x.shape) == tuple(shape) else self.xp.reshape(x, tuple(shape))

    def transpose(self, x: Any, axes: Any = None) -> Any:
        """Permute axes; ``None`` reverses them."""
        if axes is None:
            axes = tuple(range(x.ndim - 1, -1, -1))
        return self.xp.permute_dims(x, tuple(axes))

    def broadcast_to(self, x: Any, shape: tuple[int, ...]) -> Any:
        """Broadcast to ``shape``."""
        return x if tuple(x.shape) == tuple(shape) else self.xp.broadcast_to(x, tuple(shape))

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        """Sum over ``axis``; returns an array even for a full reduction."""
        if isinstance(axis, list):
            axis = tuple(axis)
        return self.xp.asarray(self.xp.sum(x, axis=axis, keepdims=keepdims))

    def sum_to(self, x: Any, shape: tuple[int, ...]) -> Any:
        """Sum ``x`` over broadcast axes so that its shape becomes ``shape``."""
        shape = tuple(shape)
        if tuple(x.shape) == shape:
            return x
        lead = x.ndim - len(shape)
        kept = tuple(i + lead for i, n in enumerate(shape) if n == 1 and x.shape[i + lead] != 1)
        if shape and not kept:  # a bias's gradient: one reduction, no reshape after it
            return self.xp.sum(x, axis=tuple(range(lead)))
        y = self.xp.sum(x, axis=tuple(range(lead)) + kept, keepdims=True)
        return self.xp.reshape(y, shape)
