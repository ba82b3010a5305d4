"""Indexing: ``x[...]`` (``get_item``), its scatter-add gradient, and ``embed_id``.

Any NumPy-style index works where the backend allows it: ints, slices, ``...``, ``None``,
integer arrays (lists too) and boolean masks. array-api-strict allows what the standard does
(integer arrays for every axis, one boolean mask as the whole index); agrad adds one integer array
among slices there, through ``take``, and names the rule in its error otherwise.

The result is NumPy's on every backend: a negative slice step works on PyTorch (which lacks it)
through a flip of the axis, and a Python int among integer arrays is an advanced index as in
NumPy (``x[0, :, idx]`` puts ``idx``'s axes first; PyTorch and Dask would keep them in place).

Indices out of range raise ``IndexError`` as in NumPy. Where the library does not check (JAX
clamps, Dask and CuPy wrap), agrad checks ints, lists and NumPy arrays on the host; an index
array that lives on the device is not read (that would make every step wait for the device), and
there the library's rule applies, the same in the forward and in the gradient.
"""

from __future__ import annotations

import numbers
from typing import Any

from agrad.backends import Backend, backend_of
from agrad.backends.numpy import host
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


def normalize_index(backend: Backend, key: Any, shape: tuple[int, ...]) -> tuple:
    """``key`` as a tuple whose arrays live on ``backend``, with a trailing ``...`` when it
    names fewer axes than ``len(shape)`` (NumPy's implicit rule, which the standard wants spelt
    out). Where the library does not bounds-check (JAX clamps, Dask and CuPy wrap), ints, lists
    and host arrays are checked here against ``shape``, so that out-of-range indices raise
    ``IndexError`` as in NumPy."""
    ndim = len(shape)
    entries = []
    check = not backend.checks_index_bounds
    for k in key if isinstance(key, tuple) else (key,):
        if isinstance(k, numbers.Integral) and not isinstance(k, bool):
            k = int(k)  # NumPy integer scalars: strict accepts only Python ints
        elif check and (isinstance(k, list) or _on_host(k)):
            k = host.asarray(k)  # checked below, then moved to the backend
        else:
            k = _as_index_array(backend, k)
        entries.append(k)
    covered = 0
    for k in entries:
        if k is None or k is Ellipsis:
            continue
        is_mask = _is_array(k) and _is_bool(k)
        covered += k.ndim if is_mask else 1
    if covered < ndim and not any(k is Ellipsis for k in entries):
        entries.append(Ellipsis)
    # ints are checked on every backend: it costs nothing, and the library's own error would
    # reach the user as "this index is not supported" after the fallback below
    if check or any(type(k) is int for k in entries):
        for i, (k, axis, _) in enumerate(_entry_axes(entries, ndim)):
            if isinstance(k, int):
                _check_bounds("get_item", k, axis, shape)
            elif check and _is_array(k) and _on_host(k):
                if not _is_bool(k):
                    _check_bounds("get_item", k, axis, shape)
                entries[i] = backend.asarray(k)
    return tuple(entries)


def _on_host(k: Any) -> bool:
    """Whether ``k`` is an array whose values can be read here without waiting for a device
    (not under agrad.jit, where they are unknown while tracing)."""
    owner = backend_of(k, None) if _is_array(k) else None
    return owner is not None and owner.host_memory and not owner.traced


def _is_bool(k: Any) -> bool:
    return backend_of(k).xp.isdtype(k.dtype, "bool")


def _entry_axes(key: Any, ndim: int) -> list[tuple[Any, int, int]]:
    """``(entry, first input axis it reads, how many it reads)`` for each entry of ``key``."""
    covered = 0
    for k in key:
        if k is not None and k is not Ellipsis:
            covered += k.ndim if _is_array(k) and _is_bool(k) else 1
    out, axis = [], 0
    for k in key:
        if k is None:
            width = 0
        elif k is Ellipsis:
            width = ndim - covered
        else:
            width = k.ndim if _is_array(k) and _is_bool(k) else 1
        out.append((k, axis, width))
        axis += width
    return out


def _check_bounds(func: str, k: Any, axis: int, shape: tuple[int, ...]) -> None:
    """``IndexError`` naming the first index of ``k`` (an int or a host array) outside axis
    ``axis`` of ``shape``."""
    n = shape[axis] if axis < len(shape) else None
    if not isinstance(n, int):
        return  # Dask's unknown size (NaN), or an axis the backend will refuse itself
    if isinstance(k, int):
        bad = None if -n <= k < n else k
    else:
        flat = host.reshape(host.asarray(k), (-1,))
        outside = (flat < -n) | (flat >= n)
        bad = int(flat[host.argmax(outside)]) if flat.size and bool(outside.any()) else None
    if bad is not None:
        raise IndexError(
            f"{func}: index {bad} is out of range for axis {axis} of size {n} (shape "
            f"{tuple(shape)}; allowed: {-n} <= index < {n})"
        )


def _has_integer_array(xp: Any, key: tuple) -> bool:
    return any(_is_array(k) and xp.isdtype(k.dtype, "integral") for k in key)


def _index(xp: Any, x: Any, key: tuple) -> Any:
    """``x[key]`` with NumPy's meaning on every backend (see :func:`_adapt`)."""
    key, flips, move = _adapt(backend_of(x), key, tuple(x.shape))
    if flips:
        x = xp.flip(x, axis=flips)
    y = _index_raw(xp, x, key)
    if move is not None:
        y = xp.permute_dims(y, _front(move, y.ndim))
    return y


def _index_raw(xp: Any, x: Any, key: tuple) -> Any:
    """``x[key]``, falling back to ``take`` for one integer array among slices."""
    try:
        return x[key]
    # Dask raises NotImplementedError and AssertionError for keys it cannot take (a 2-D Dask
    # index array; None before one)
    except (IndexError, TypeError, NotImplementedError, AssertionError) as error:
        if isinstance(error, IndexError) and "out of" in str(error):
            # out of bounds (NumPy's words) or out of range (PyTorch's): the fallback's take
            # would wrap -3 on 2 rows around instead
            raise
        result = _take_one_array(xp, x, key)
        if result is None:
            raise IndexError(
                f"get_item: index {key!r} is not supported by this backend "
                f"({type(error).__name__}: {error}). The Array "
                "API standard allows ints, slices, ..., None, one boolean mask as the whole "
                "index, and integer arrays for every axis; agrad adds one integer array among "
                "slices"
            ) from error
        return result


def _front(move: tuple[int, int], ndim: int) -> tuple[int, ...]:
    """The permutation that brings axes ``start .. start + count - 1`` to the front."""
    start, count = move
    middle = tuple(range(start, start + count))
    return middle + tuple(range(start)) + tuple(range(start + count, ndim))


def _adapt(backend: Backend, key: tuple, shape: tuple[int, ...]) -> tuple:
    """``(key, flips, move)``: ``x[key]`` in NumPy's meaning is ``flip(x, flips)[key]`` with the
    axes ``move = (start, count)`` of the library's result brought to the front.

    PyTorch has no negative slice steps: such a slice becomes the mirrored positive one on the
    flipped axis. PyTorch and Dask take a Python int among integer arrays as a basic index, so
    ``x[0, :, idx]`` keeps the array's axes in place where NumPy puts them first (advanced
    indices separated by a slice).
    """
    if backend.negative_steps and backend.ints_are_advanced:
        return key, (), None
    flips: tuple[int, ...] = ()
    if not backend.negative_steps and any(
        isinstance(k, slice) and k.step is not None and k.step < 0 for k in key
    ):
        entries = list(key)
        for i, (k, axis, _) in enumerate(_entry_axes(key, len(shape))):
            if isinstance(k, slice) and k.step is not None and k.step < 0:
                n = shape[axis]
                start, stop, step = k.indices(n)
                count = len(range(start, stop, step))
                first = n - 1 - start  # where x[start] lands in the flipped axis
                entries[i] = (
                    slice(first, first - step * (count - 1) + 1, -step) if count else (slice(0, 0))
                )
                flips += (axis,)
        key = tuple(entries)
    move = None if backend.ints_are_advanced else _numpy_front(key, len(shape))
    return key, flips, move


def _numpy_front(key: tuple, ndim: int) -> tuple[int, int] | None:
    """Where the library (ints basic) puts the axes of the integer arrays, when NumPy (ints
    advanced) would put them first instead; None when both agree."""
    arrays = [i for i, k in enumerate(key) if _is_array(k)]
    ints = [i for i, k in enumerate(key) if isinstance(k, int)]
    if not arrays or not ints or any(_is_bool(key[i]) for i in arrays):
        return None
    count = max(key[i].ndim for i in arrays)
    advanced = sorted(arrays + ints)
    if count == 0 or advanced[-1] - advanced[0] + 1 == len(advanced):
        return None  # NumPy keeps them in place (adjacent), as does the library
    if arrays[-1] - arrays[0] + 1 != len(arrays):
        return None  # the arrays alone are apart: the library puts them first too
    # the axes before the first array in the library's result: slices, None and ... (ints drop)
    start = 0
    for k, _, width in _entry_axes(key, ndim)[: arrays[0]]:
        if k is None or isinstance(k, slice):
            start += 1
        elif k is Ellipsis:
            start += width
    return (start, count)


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
    # below -length: made too large, so that take raises where the library checks bounds
    # (NumPy's take would wrap it around)
    flat = xp.where(flat < 0, xp.full_like(flat, length), flat)
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
    backend = backend_of(gy)
    key, flips, move = _adapt(backend, key, in_shape)
    if move is not None:  # back to the library's order of axes
        order = _front(move, gy.ndim)
        gy = xp.permute_dims(gy, tuple(order.index(i) for i in range(gy.ndim)))
    gx = xp.zeros(in_shape, dtype=gy.dtype)
    if _has_integer_array(xp, key):
        gx = backend.scatter_add(gx, key, gy)
    else:
        # without integer arrays no position repeats: a plain assignment into fresh zeros will
        # do; the standard's setitem takes no None, whose size-1 axes a reshape of gy drops
        plain = tuple(k for k in key if k is not None)
        gx = backend.set_at(gx, plain, xp.reshape(gy, gx[plain].shape))
    return xp.flip(gx, axis=flips) if flips else gx


class GetItem(Function):
    """``x[slices]`` with NumPy's indexing rules (where the backend allows them).

    The function behind :func:`get_item` and ``Variable.__getitem__``, called as
    ``GetItem(slices)(x)``; its backward needs only the input's shape and is
    :func:`get_item_grad`.

    Parameters
    ----------
    slices : index
        Anything :func:`get_item` takes.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> F.GetItem((slice(None), 0))(xp.reshape(xp.arange(6.0), (2, 3)))
    variable([0. 3.])
    """

    retain_inputs = retain_outputs = ()

    def __init__(self, slices: Any) -> None:
        self.slices = slices

    def forward(self, x: Any) -> Any:
        self.in_shape = tuple(x.shape)
        backend = backend_of(x)
        self.slices = normalize_index(backend, self.slices, tuple(x.shape))
        y = _index(self.xp, x, self.slices)
        if not backend.known_shapes:  # Dask: a boolean mask leaves the shape unknown
            backend.require_known_shape(y, "get_item (x[mask])")
        return y

    def vjp(self, d, xs, ys, gys):
        return d.get_item_grad(gys[0], self.slices, self.in_shape)


class GetItemGrad(Function):
    """The gradient of ``get_item``: scatter-add ``gy`` into zeros of the input's shape.

    The function behind :func:`get_item_grad`, called as ``GetItemGrad(slices, in_shape)(gy)``;
    its gradient is :func:`get_item` with the same ``slices``.

    Parameters
    ----------
    slices : index
        The index ``gy`` came from, as :func:`get_item` takes it.
    in_shape : tuple of int
        The shape of the array that was indexed.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> F.GetItemGrad(1, (3,))(xp.asarray(5.0))
    variable([0. 5. 0.])
    """

    retain_inputs = retain_outputs = ()

    def __init__(self, slices: Any, in_shape: tuple[int, ...]) -> None:
        self.slices = slices
        self.in_shape = tuple(in_shape)

    def forward(self, gy: Any) -> Any:
        self.slices = normalize_index(backend_of(gy), self.slices, self.in_shape)
        return _scatter(self.xp, gy, self.slices, self.in_shape)

    def vjp(self, d, xs, ys, gys):
        return d.get_item(gys[0], self.slices)


def get_item(x: Any, slices: Any) -> Variable:
    """``x[slices]``, differentiable; repeated integer indices add their gradients up.

    What ``x[slices]`` on a Variable calls. NumPy's rules apply where the backend has them.
    array-api-strict allows what the Array API standard does: ints, slices, ``...``, ``None``,
    integer arrays for every axis and one boolean mask as the whole index; agrad adds one
    integer array (or list) among slices there.

    Parameters
    ----------
    x : Variable or array
        The array indexed.
    slices : index
        An int, slice, ``...``, ``None``, integer array, list of ints, integer Variable or
        boolean mask, or a tuple of them. Arrays of another backend are moved to ``x``'s; an
        index naming fewer axes than ``x`` has takes the rest whole.

    Returns
    -------
    Variable
        ``x[slices]``, of ``x``'s dtype. Its gradient is zeros of ``x``'s shape with the output's
        gradient added at the indexed places (:func:`get_item_grad`), twice where an index
        repeats.

    Raises
    ------
    IndexError
        If the index is out of range or the backend does not support it; the message names the
        standard's rules.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> x = agrad.Variable(xp.reshape(xp.arange(6.0), (2, 3)))
    >>> y = F.get_item(x, (slice(None), [0, 0, 2]))  # x[:, [0, 0, 2]]
    >>> y
    variable([[0. 0. 2.]
              [3. 3. 5.]])
    >>> F.sum(y).backward()  # column 0 was taken twice
    >>> x.grad
    variable([[2. 0. 1.]
              [2. 0. 1.]])
    >>> x[x.data > 2]  # a boolean mask, through Variable.__getitem__
    variable([3. 4. 5.])
    """
    return GetItem(slices)(x)


def get_item_grad(gy: Any, slices: Any, in_shape: tuple[int, ...]) -> Variable:
    """Zeros of ``in_shape`` with ``gy`` added at ``slices`` (the adjoint of ``get_item``).

    What :func:`get_item`'s backward computes, as a function of its own so that it can be
    differentiated again (its gradient is ``get_item`` with the same ``slices``).

    Parameters
    ----------
    gy : Variable or array
        Values of the shape ``x[slices]`` has for an ``x`` of shape ``in_shape``.
    slices : index
        As :func:`get_item` takes it.
    in_shape : tuple of int
        The shape of the result.

    Returns
    -------
    Variable
        Of shape ``in_shape`` and ``gy``'s dtype; where an integer index repeats, the values
        of ``gy`` for it add up.

    Raises
    ------
    IndexError
        If ``slices`` is out of range for ``in_shape`` or not supported by the backend.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> gy = agrad.Variable(xp.asarray([1.0, 2.0, 3.0]))
    >>> gx = F.get_item_grad(gy, ([0, 0, 1],), (2,))  # index 0 twice: 1 + 2
    >>> gx
    variable([3. 3.])
    >>> gx[0].backward()
    >>> gy.grad
    variable([1. 1. 0.])
    """
    return GetItemGrad(slices, in_shape)(gy)


@array_twin("get_item")
def _get_item_array(xp: Any, x: Any, slices: Any) -> Any:
    return _index(xp, x, normalize_index(backend_of(x), slices, tuple(x.shape)))


@array_twin("get_item_grad")
def _get_item_grad_array(xp: Any, gy: Any, slices: Any, in_shape: tuple[int, ...]) -> Any:
    key = normalize_index(backend_of(gy), slices, tuple(in_shape))
    return _scatter(xp, gy, key, tuple(in_shape))


class EmbedID(Function):
    """Rows of ``W`` picked by the integer ``ids`` (``W[ids]``); the ids are a constant.

    The function behind :func:`embed_id`, called as ``EmbedID(ids)(W)``; its backward needs only
    ``W``'s shape and scatter-adds the gradient into its rows with :func:`get_item_grad`.

    Parameters
    ----------
    ids : int, list of int, integer array or Variable
        Row numbers of ``W``, of any shape, ``0 <= ids < V`` (as :func:`embed_id` checks them).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> F.EmbedID([1])(xp.reshape(xp.arange(6.0), (3, 2)))
    variable([[2. 3.]])
    """

    retain_inputs = retain_outputs = ()

    def __init__(self, ids: Any) -> None:
        self.ids = ids

    def forward(self, W: Any) -> Any:
        backend = backend_of(W)
        ids = self.ids.data if isinstance(self.ids, Variable) else self.ids
        if not _is_array(ids) or _on_host(ids):
            ids = _checked_ids(host.asarray(ids), W.shape[0])
            ids = backend.asarray(ids)
        else:  # a device array: reading it would wait for the device (see embed_id)
            ids = _as_index_array(backend, ids)
            if not backend_of(ids).xp.isdtype(ids.dtype, "integral"):
                raise TypeError(f"embed_id: ids must be integers, not {ids.dtype}")
        self.ids = ids
        # the same indexing as the backward's scatter: forward and gradient always agree
        return _index(self.xp, W, (ids, Ellipsis))

    def vjp(self, d, xs, ys, gys):
        return d.get_item_grad(gys[0], (self.ids, Ellipsis), xs[0].shape)


def _checked_ids(ids: Any, rows: int) -> Any:
    """Host ``ids`` if they are integers in ``[0, rows)``, else an error naming the first bad
    one (a negative id would silently pick a row from the end)."""
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embed_id: ids must be integers, not {ids.dtype} ({ids!r:.60})")
    flat = host.reshape(ids, (-1,))
    bad = (flat < 0) | (flat >= rows)
    if flat.size and bool(bad.any()):
        first = int(flat[host.argmax(bad)])
        raise IndexError(
            f"embed_id: id {first} is out of range for W with {rows} rows (allowed: 0 <= id < "
            f"{rows}; negative ids are refused)"
        )
    return ids


def embed_id(x: Any, W: Any) -> Variable:
    """``W[x]``: embedding lookup of integer ids ``x`` in the table ``W`` (DeZero).

    Parameters
    ----------
    x : int, list of int, integer array or Variable
        Row numbers of ``W``, of any shape, ``0 <= x < V``. They get no gradient. Python ints,
        lists and NumPy arrays are checked on the host; an array on a device (JAX, PyTorch,
        CuPy, Dask, array-api-strict) is not read, to keep the device from waiting, nor is an
        array argument of an ``agrad.jit`` function (NumPy then raises ``IndexError`` out of
        range, and negative ids count from the end): there the
        library's own indexing rules apply (PyTorch and array-api-strict raise ``IndexError``
        out of range; JAX clamps to the last row and CuPy and Dask wrap around, negative ids
        count from the end), the same in the forward and the gradient.
    W : Variable or array
        The table, of shape (V, ...): one row per id.

    Returns
    -------
    Variable
        Of shape ``x.shape + W.shape[1:]`` and ``W``'s dtype. ``W``'s gradient adds up the
        gradients of every place a row was picked.

    Raises
    ------
    IndexError
        If an id is outside ``[0, V)`` (negative ids too: ``-1`` would silently pick the last
        row), for the ids that are checked (see ``x``).
    TypeError
        If the ids are not integers.

    See Also
    --------
    agrad.layers.EmbedID : The layer that holds ``W``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> xp = agrad.current_backend().xp
    >>> W = agrad.Variable(xp.reshape(xp.arange(6.0), (3, 2)))
    >>> y = F.embed_id([0, 2, 2], W)
    >>> y
    variable([[0. 1.]
              [4. 5.]
              [4. 5.]])
    >>> F.sum(y).backward()  # row 2 was picked twice
    >>> W.grad
    variable([[1. 1.]
              [0. 0.]
              [2. 2.]])
    >>> F.embed_id([[0, 1]], W).shape
    (1, 2, 2)
    >>> F.embed_id([0, -1], W)
    Traceback (most recent call last):
      ...
    IndexError: embed_id: id -1 is out of range for W with 3 rows (allowed: 0 <= id < 3; ...)
    """
    return EmbedID(x)(W)
