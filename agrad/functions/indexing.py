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
        self.slices = normalize_index(backend, self.slices, x.ndim)
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
        self.slices = normalize_index(backend_of(gy), self.slices, len(self.in_shape))
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
    return _index(xp, x, normalize_index(backend_of(x), slices, x.ndim))


@array_twin("get_item_grad")
def _get_item_grad_array(xp: Any, gy: Any, slices: Any, in_shape: tuple[int, ...]) -> Any:
    key = normalize_index(backend_of(gy), slices, len(in_shape))
    return _scatter(xp, gy, key, tuple(in_shape))


class EmbedID(Function):
    """Rows of ``W`` picked by the integer ``ids`` (``W[ids]``); the ids are a constant.

    The function behind :func:`embed_id`, called as ``EmbedID(ids)(W)``; its backward needs only
    ``W``'s shape and scatter-adds the gradient into its rows with :func:`get_item_grad`.

    Parameters
    ----------
    ids : int, list of int, integer array or Variable
        Row numbers of ``W``, of any shape; negative ones count from the end.

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
    """``W[x]``: embedding lookup of integer ids ``x`` in the table ``W`` (DeZero).

    Parameters
    ----------
    x : int, list of int, integer array or Variable
        Row numbers of ``W``, of any shape; negative ones count from the end. They get no
        gradient.
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
        If an id is outside [-V, V) (the backend's error: NumPy and array-api-strict raise it).
    TypeError
        If the ids are not integers (the backend's error).

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
    >>> F.embed_id(xp.asarray([[0, -1]]), W).shape
    (1, 2, 2)
    """
    return EmbedID(x)(W)
