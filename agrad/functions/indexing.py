"""Indexing: ``x[...]`` (``get_item``), its scatter-add gradient, and ``embed_id``.

Any NumPy-style index works where the backend allows it: ints, slices, ``...``, ``None``,
integer arrays (lists too) and boolean masks. array-api-strict allows what the standard does
(integer arrays for every axis, one boolean mask as the whole index); agrad adds one integer array
among slices there, through ``take``, and names the rule in its error otherwise.
"""

from __future__ import annotations

import numbers
from typing import Any

from agrad.backends import Backend, backend_of
from agrad.core import Function, Variable
from agrad.ops import array_twin

__all__ = [
    "GetItem",
    "GetItemGrad",
    "EmbedID",
    "get_item",
    "get_item_grad",
    "embed_id",
]


def _as_index_array(backend: Backend, k: Any) -> Any:
    """``k`` as an array of ``backend`` when it is an array-like index (list, Variable, array)."""
    if isinstance(k, Variable):
        k = k.data
    if isinstance(k, list):
        return backend.xp.asarray(k)
    owner = backend_of(k, None)
    if owner is not None and owner is not backend:
        return backend.asarray(k)
    return k


def _is_array(k: Any) -> bool:
    return hasattr(k, "dtype") and hasattr(k, "shape")


def normalize_index(backend: Backend, key: Any, ndim: int) -> tuple:
    """``key`` as a tuple whose arrays live on ``backend``, with a trailing ``...`` when it
    names fewer axes than ``ndim`` (NumPy's implicit rule, which the standard wants spelt out)."""
    entries = []
    for k in key if isinstance(key, tuple) else (key,):
        if isinstance(k, numbers.Integral) and not isinstance(k, bool):
            k = int(k)  # NumPy integer scalars: strict accepts only Python ints
        else:
            k = _as_index_array(backend, k)
        entries.append(k)
    covered = 0
    for k in entries:
        if k is None or k is Ellipsis:
            continue
        is_mask = _is_array(k) and backend.xp.isdtype(k.dtype, "bool")
        covered += k.ndim if is_mask else 1
    if covered < ndim and not any(k is Ellipsis for k in entries):
        entries.append(Ellipsis)
    return tuple(entries)


def _has_integer_array(xp: Any, key: tuple) -> bool:
    return any(_is_array(k) and xp.isdtype(k.dtype, "integral") for k in key)


def _index(xp: Any, x: Any, key: tuple) -> Any:
    """``x[key]``, falling back to ``take`` for one integer array among slices."""
    try:
        return x[key]
    except (IndexError, TypeError) as error:
        result = _take_one_array(xp, x, key)
        if result is None:
            raise IndexError(
                f"get_item: index {key!r} is not supported by this backend ({error}). The Array "
                "API standard allows ints, slices, ..., None, one boolean mask as the whole "
                "index, and integer arrays for every axis; agrad adds one integer array among "
                "slices"
            ) from error
        return result


def _take_one_array(xp: Any, x: Any, key: tuple) -> Any:
    """``x[key]`` for a key of slices, ``...`` and ``None`` around one integer array, else None."""
    arrays = [i for i, k in enumerate(key) if _is_array(k)]
    if len(arrays) != 1 or not xp.isdtype(key[arrays[0]].dtype, "integral"):
        return None
    if any(
        not (k is None or k is Ellipsis or isinstance(k, slice)) for k in key if not _is_array(k)
    ):
        return None
    position = arrays[0]
    indices = key[position]
    named = sum(1 for k in key if k is not None and k is not Ellipsis)
    expanded: list[Any] = []
    for k in key:
        expanded.extend([slice(None)] * (x.ndim - named) if k is Ellipsis else [k])
    axis = _position(expanded, indices)
    basic = tuple(slice(None) if k is indices else k for k in expanded)
    y = x[basic]
    length = y.shape[axis]
    flat = xp.reshape(indices, (-1,))
    flat = xp.where(flat < 0, flat + length, flat)
    picked = xp.take(y, flat, axis=axis)
    return xp.reshape(picked, (*y.shape[:axis], *indices.shape, *y.shape[axis + 1 :]))


def _position(expanded: list, indices: Any) -> int:
    """Axis of the result where the entry ``indices`` of an expanded key lands."""
    axis = 0
    for k in expanded:
        if k is indices:
            return axis
        if k is None or isinstance(k, slice):
            axis += 1
    raise AssertionError("unreachable: the array is in the key")


def _scatter(xp: Any, gy: Any, key: tuple, in_shape: tuple[int, ...]) -> Any:
    """Zeros of ``in_shape`` with ``gy`` added at ``key``; repeated indices accumulate."""
    gx = xp.zeros(in_shape, dtype=gy.dtype)
    backend = backend_of(gy)
    if _has_integer_array(xp, key):
        return backend.scatter_add(gx, key, gy)
    # without integer arrays no position repeats: a plain assignment into fresh zeros will do;
    # the standard's setitem takes no None, whose size-1 axes a reshape of gy drops instead
    plain = tuple(k for k in key if k is not None)
    return backend.set_at(gx, plain, xp.reshape(gy, gx[plain].shape))


class GetItem(Function):
    """``x[slices]`` with NumPy's indexing rules (where the backend allows them)."""

    retain_inputs = retain_outputs = ()

    def __init__(self, slices: Any) -> None:
        self.slices = slices

    def forward(self, x: Any) -> Any:
        self.in_shape = tuple(x.shape)
        backend = backend_of(x)
        self.slices = normalize_index(backend, self.slices, x.ndim)
        y = _index(self.xp, x, self.slices)
        if not backend.known_shapes:  # Dask: a boolean mask leaves the shape unknown
            backend.require_known_shape(y, "get_item (x[mask])")
        return y

    def vjp(self, d, xs, ys, gys):
        return d.get_item_grad(gys[0], self.slices, self.in_shape)


class GetItemGrad(Function):
    """The gradient of ``get_item``: scatter-add ``gy`` into zeros of the input's shape."""

    retain_inputs = retain_outputs = ()

    def __init__(self, slices: Any, in_shape: tuple[int, ...]) -> None:
        self.slices = slices
        self.in_shape = tuple(in_shape)

    def forward(self, gy: Any) -> Any:
        self.slices = normalize_index(backend_of(gy), self.slices, len(self.in_shape))
        return _scatter(self.xp, gy, self.slices, self.in_shape)

    def vjp(self, d, xs, ys, gys):
        return d.get_item(gys[0], self.slices)


def get_item(x: Any, slices: Any) -> Variable:
    """``x[slices]``, differentiable; repeated integer indices add their gradients up."""
    return GetItem(slices)(x)


def get_item_grad(gy: Any, slices: Any, in_shape: tuple[int, ...]) -> Variable:
    """Zeros of ``in_shape`` with ``gy`` added at ``slices`` (the adjoint of ``get_item``)."""
    return GetItemGrad(slices, in_shape)(gy)


@array_twin("get_item")
def _get_item_array(xp: Any, x: Any, slices: Any) -> Any:
    return _index(xp, x, normalize_index(backend_of(x), slices, x.ndim))


@array_twin("get_item_grad")
def _get_item_grad_array(xp: Any, gy: Any, slices: Any, in_shape: tuple[int, ...]) -> Any:
    key = normalize_index(backend_of(gy), slices, len(in_shape))
    return _scatter(xp, gy, key, tuple(in_shape))


class EmbedID(Function):
    """Rows of ``W`` picked by the integer ``ids`` (``W[ids]``); the ids are a constant."""

    retain_inputs = retain_outputs = ()

    def __init__(self, ids: Any) -> None:
        self.ids = ids

    def forward(self, W: Any) -> Any:
        xp = self.xp
        ids = _as_index_array(backend_of(W), self.ids)
        if not _is_array(ids):
            ids = xp.asarray(ids)
        self.ids = ids
        flat = xp.reshape(ids, (-1,))
        flat = xp.where(flat < 0, flat + W.shape[0], flat)
        rows = xp.take(W, flat, axis=0)
        return xp.reshape(rows, (*ids.shape, *W.shape[1:]))

    def vjp(self, d, xs, ys, gys):
        return d.get_item_grad(gys[0], (self.ids, Ellipsis), xs[0].shape)


def embed_id(x: Any, W: Any) -> Variable:
    """``W[x]``: embedding lookup of integer ids ``x`` in the table ``W`` (DeZero)."""
    return EmbedID(x)(W)
