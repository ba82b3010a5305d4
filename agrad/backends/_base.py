"""The interface every backend module implements."""

from __future__ import annotations

import math
import warnings
from typing import Any

from agrad.config import _active_trace


class BackendUnavailableError(RuntimeError):
    """A backend was requested that cannot run on this machine.

    Raised by :func:`agrad.use` and :func:`agrad.using_backend` with ``fallback=False`` and by
    :meth:`Backend.require`; the message gives the root cause (the failed import, the missing
    GPU).

    Examples
    --------
    >>> from agrad.backends import Backend, BackendUnavailableError
    >>> class Missing(Backend):
    ...     name = "missing"
    ...
    ...     def _check(self):
    ...         raise ImportError("No module named 'missing'")
    >>> try:
    ...     Missing().require()
    ... except BackendUnavailableError as exc:
    ...     print(exc)
    agrad backend 'missing' is not usable here: ImportError: No module named 'missing'
    """


# Draws a replay must make anew: called on a backend object during a trace (one captured
# before the jitted function ran), they go through the backend's traced twin and are recorded,
# as they are when the function asks for `agrad.current_backend()` itself
_DEVICE_DRAWS = ("random", "randn", "permutation")


def _recorded_in_a_trace(name: str, draw: Any) -> Any:
    def method(self: Backend, *args: Any, **kwargs: Any) -> Any:
        if _active_trace.get() is None:
            return draw(self, *args, **kwargs)
        from agrad.tracing.tracer import traced_backend

        return getattr(traced_backend(self), name)(*args, **kwargs)

    method.__name__ = name
    method.__qualname__ = draw.__qualname__
    method.__doc__ = draw.__doc__
    method.draw = draw  # type: ignore[attr-defined]  # (what the traced twin records)
    return method


class Backend:
    """One array library agrad can compute on: its namespace, probes and the gaps in the standard.

    Subclasses live one per module in ``agrad.backends``; they import their array library lazily
    so that ``import agrad`` imports no optional library (CuPy, PyTorch, JAX, ...). A subclass
    defines ``name``, ``_check`` (import and touch the device), ``_load`` (namespace and array
    type), ``owns``, ``to_host``, ``scatter_add`` and the random numbers; the rest has working
    defaults.

    Attributes
    ----------
    name : str
        The name :func:`agrad.get_backend` knows it by.

    Examples
    --------
    >>> import agrad
    >>> backend = agrad.get_backend("array_api_strict")
    >>> backend.name, backend.gpu
    ('array_api_strict', False)
    >>> backend.xp.__name__
    'array_api_strict'
    """

    name: str = ""
    #: whether arrays live on a GPU
    gpu: bool = False
    #: whether arrays take in-place writes (``x[i] = v``, ``x += y`` into the same buffer); agrad
    #: writes in place only into arrays it allocated itself, and only where this is True (JAX:
    #: False, its arrays are immutable)
    mutable_arrays: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _DEVICE_DRAWS:
            draw = cls.__dict__.get(name)
            if draw is not None and not hasattr(draw, "draw"):
                setattr(cls, name, _recorded_in_a_trace(name, draw))

    def __init__(self) -> None:
        self._probe: tuple[bool, str] | None = None
        #: warnings the library emitted while it was probed, as "Category: message"
        self.probe_warnings: list[str] = []

    # -- availability -----------------------------------------------------------------------
    def _check(self) -> None:
        """Import the library and touch the device; raise with the root cause if that fails."""
        raise NotImplementedError

    def probe(self) -> tuple[bool, str]:
        """Whether this backend is usable here, and why not; computed once and cached.

        Warnings emitted while probing (CuPy warns on first use about CUDA paths, say) never make
        the backend unusable, even where warnings are errors (as under this project's pytest
        settings); they are kept in ``probe_warnings`` and named in the reason on failure.

        Returns
        -------
        tuple of (bool, str)
            ``(True, '')`` when usable, else ``(False, reason)`` with the exception that stopped
            it as ``"Type: message"``.

        Examples
        --------
        >>> import agrad
        >>> agrad.get_backend("numpy").probe()
        (True, '')
        >>> from agrad.backends import Backend
        >>> class Missing(Backend):
        ...     name = "missing"
        ...
        ...     def _check(self):
        ...         raise ImportError("No module named 'missing'")
        >>> Missing().probe()
        (False, "ImportError: No module named 'missing'")
        """
        if self._probe is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    self._check()
                except Exception as exc:  # any failure means "not usable", with its reason
                    self._probe = (False, f"{type(exc).__name__}: {exc}")
                else:
                    self._probe = (True, "")
            self.probe_warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
            if not self._probe[0] and self.probe_warnings:
                self._probe = (
                    False,
                    f"{self._probe[1]} (warnings while probing: {'; '.join(self.probe_warnings)})",
                )
        return self._probe

    def install_hint(self) -> str:
        """What to do to make this backend usable here, in one sentence ('' if nothing helps).

        Returns
        -------
        str
            An install command or a hint, used in :class:`BackendUnavailableError`'s message.

        Examples
        --------
        >>> import agrad
        >>> agrad.get_backend("numpy").install_hint()
        ''
        >>> "pip install" in agrad.get_backend("cupy").install_hint()
        True
        """
        return ""

    @property
    def available(self) -> bool:
        """True when the library imports and its device answers.

        Examples
        --------
        >>> import agrad
        >>> agrad.get_backend("numpy").available
        True
        """
        return self.probe()[0]

    def require(self) -> None:
        """Raise ``BackendUnavailableError`` unless this backend is usable; the message gives the
        root cause and how to install the backend (:meth:`install_hint`).

        Raises
        ------
        BackendUnavailableError
            If :meth:`probe` found the backend unusable; the message names it and the cause.

        Examples
        --------
        >>> import agrad
        >>> agrad.get_backend("numpy").require()  # usable: returns None
        """
        ok, why = self.probe()
        if not ok:
            raise BackendUnavailableError(self.unusable_message(why))

    def unusable_message(self, why: str) -> str:
        """The message of :class:`BackendUnavailableError` for this backend: the root cause
        ``why`` and, where there is one, :meth:`install_hint` (as the fallback warning gives).

        Examples
        --------
        >>> import agrad
        >>> print(agrad.get_backend("numpy").unusable_message("RuntimeError: no memory"))
        agrad backend 'numpy' is not usable here: RuntimeError: no memory
        """
        hint = self.install_hint()
        return f"agrad backend {self.name!r} is not usable here: {why}" + (
            f"; to use it, {hint}" if hint else ""
        )

    # -- the library ------------------------------------------------------------------------
    def _load(self) -> tuple[Any, type]:
        """Return ``(namespace, array type)``; imports the library."""
        raise NotImplementedError

    #: the Array API namespace of this backend (loaded on first access)
    xp: Any
    #: the array class this backend computes on (loaded on first access)
    array_type: type

    def __getattr__(self, name: str) -> Any:
        # `xp` and `array_type` become plain attributes once loaded: the hot path reads them
        # at the cost of an attribute lookup, and `import agrad` imports no optional library
        if name in ("xp", "array_type"):
            self.xp, self.array_type = self._load()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def loaded(self) -> bool:
        """Whether the library has been imported (``xp`` touched) in this process.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> _ = backend.xp
        >>> backend.loaded
        True
        """
        return "xp" in self.__dict__

    def owns(self, x: Any) -> bool:
        """True if ``x`` is an array of this backend (never imports the library).

        Parameters
        ----------
        x : object
            Anything.

        Returns
        -------
        bool
            Whether ``x`` is an instance of this backend's array type.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> backend.owns(backend.asarray([1.0])), backend.owns([1.0])
        (True, False)
        """
        raise NotImplementedError

    # -- conversions ------------------------------------------------------------------------
    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """An array of this backend from Python data, a host array or another backend's array.

        An array of another backend goes through the host (:meth:`to_host`).

        Parameters
        ----------
        data : array_like
            Python numbers or nested lists, or an array of any agrad backend.
        dtype : str or dtype, optional
            A dtype name (``'float32'``), this backend's dtype, or another backend's dtype
            (translated by name); None keeps what ``xp.asarray`` infers.

        Returns
        -------
        array
            An array of this backend.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> x = backend.asarray([1, 2], dtype="float32")
        >>> backend.dtype_name(x.dtype)
        'float32'
        >>> y = backend.asarray(agrad.get_backend("array_api_strict").asarray([3.0]))
        >>> backend.owns(y)
        True
        """
        from agrad.backends import backend_of, get_backend

        source = backend_of(data, None)
        if source is not None and source is not self:
            data = source.to_host(data)
        if dtype is not None and not isinstance(dtype, str):
            dtype = self.dtype(get_backend("numpy").dtype_name(dtype))
        elif isinstance(dtype, str):
            dtype = self.dtype(dtype)
        return self.xp.asarray(data, dtype=dtype)

    def to_host(self, x: Any) -> Any:
        """A NumPy copy (or view) of ``x`` on the host.

        Parameters
        ----------
        x : array
            An array of this backend.

        Returns
        -------
        numpy.ndarray
            Its values in host memory (a copy from a GPU, possibly a view on the CPU).

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> backend.to_host(backend.asarray([1.0, 2.0])).tolist()
        [1.0, 2.0]
        """
        raise NotImplementedError

    def persist(self, arrays: list[Any]) -> list[Any]:
        """The same values, computed and held in memory where the library is lazy.

        Eager libraries return ``arrays`` unchanged. A lazy one (Dask) would otherwise let a
        training loop grow one task graph over every step it ran; the optimizers call this on
        the parameters and their state after each update, in one call so that work shared
        between the arrays (the forward and backward pass) is done once.

        Parameters
        ----------
        arrays : list of array
            Arrays of this backend.

        Returns
        -------
        list of array
            Arrays with the same values, in the same order.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> [backend.to_host(a).tolist() for a in backend.persist([backend.asarray([1.0]) * 2])]
        [[2.0]]
        """
        return arrays

    def from_result(self, value: Any) -> Any:
        """An array of this backend from what one of its operations returned: ``xp.asarray``.

        Needed because NumPy returns 0-d results as scalars; a backend may offer a faster
        equivalent (agrad's core calls this once per operation on 0-d data).

        Parameters
        ----------
        value : array or scalar
            What an operation of this backend's namespace returned.

        Returns
        -------
        array
            ``value`` as an array of this backend (0-d for a scalar).

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> total = backend.from_result(backend.xp.sum(backend.asarray([1.0, 2.0])))
        >>> backend.owns(total), total.shape
        (True, ())
        """
        return self.xp.asarray(value)

    def scalar_array(self, value: Any, dtype: Any) -> Any:
        """A new 0-d array of ``dtype`` holding the Python number ``value``: ``xp.full``.

        Backward's starting gradient (a 1 for a scalar loss) is made by this once per pass; a
        backend may offer a faster equivalent.

        Parameters
        ----------
        value : int or float
            The number.
        dtype : dtype
            A dtype of this backend.

        Returns
        -------
        array
            A writable 0-d array of this backend.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> one = backend.scalar_array(1, backend.dtype("float32"))
        >>> one.shape, backend.dtype_name(one.dtype), float(one)
        ((), 'float32', 1.0)
        """
        return self.xp.full((), value, dtype=dtype)

    def dtype(self, name: str) -> Any:
        """This backend's dtype object called ``name`` (``'float32'``, ``'int64'``, ...).

        Parameters
        ----------
        name : str
            A dtype name of the Array API standard.

        Returns
        -------
        dtype
            The namespace's dtype of that name.

        Raises
        ------
        AttributeError
            If the namespace has no dtype called ``name``.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> backend.dtype("float32") == backend.xp.float32
        True
        """
        return getattr(self.xp, name)

    def dtype_name(self, dtype: Any) -> str:
        """The standard name of a dtype of this backend.

        Parameters
        ----------
        dtype : dtype
            A dtype of this backend.

        Returns
        -------
        str
            Its name in the Array API standard, such as ``'float32'``.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> backend.dtype_name(backend.dtype("int64"))
        'int64'
        """
        return str(dtype).rsplit(".", 1)[-1]

    def device_name(self) -> str:
        """A human-readable description of the device new arrays are placed on.

        Returns
        -------
        str
            ``'CPU'`` for the CPU backends; the GPU's number and name for CuPy.

        Examples
        --------
        >>> import agrad
        >>> agrad.get_backend("numpy").device_name()
        'CPU'
        """
        return "CPU"

    def array_device(self, x: Any) -> str:
        """The device ``x`` lives on, as a short name: ``'cpu'``, or ``'0'`` for CuPy's first GPU.

        ``Variable.device`` puts the backend's name before it (``numpy:cpu``, ``cupy:0``).

        Parameters
        ----------
        x : array
            An array of this backend.

        Returns
        -------
        str
            The library's own name for the device.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.get_backend("numpy")
        >>> backend.array_device(backend.asarray([1.0]))
        'cpu'
        """
        return "cpu"

    def devices(self) -> list[str]:
        """Human-readable descriptions of every device this backend can use.

        Returns
        -------
        list of str
            One :meth:`device_name`-style entry per device.

        Examples
        --------
        >>> import agrad
        >>> agrad.get_backend("numpy").devices()
        ['CPU']
        """
        return [self.device_name()]

    def is_writable(self, x: Any) -> bool:
        """Whether writing into ``x`` in place is safe: not read-only, not a broadcast view.

        Parameters
        ----------
        x : array
            An array of this backend.

        Returns
        -------
        bool
            False when an in-place write would fail or change other arrays' values too.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.get_backend("numpy")
        >>> x = backend.asarray([1.0, 2.0])
        >>> backend.is_writable(x), backend.is_writable(backend.xp.broadcast_to(x, (2, 2)))
        (True, False)
        """
        return True

    #: whether operations only record work that runs when a value is needed (Dask)
    lazy: bool = False
    #: whether this is ``agrad.jit``'s recording twin of a backend (reading a value refuses)
    traced: bool = False
    #: whether one eager operation on a small array costs a millisecond or more of host time
    #: (Dask builds and runs a task graph; JAX dispatches each one through XLA, compiling it
    #: for each new shape): numerical gradient checks then go along random directions
    slow_dispatch: bool = False

    @property
    def checks_stay_on_device(self) -> bool:
        """Whether a check of values (labels in range) yields a NaN result instead of reading a
        flag on the host: a read would wait for the GPU, or compute a lazy graph so far."""
        return self.gpu or self.lazy

    #: whether every array's shape is known before it is computed (Dask: not after ``x[mask]``)
    known_shapes: bool = True

    # -- indexing: where the library's ``x[key]`` differs from NumPy's -----------------------
    #: whether arrays live in host memory, so that agrad may read an index array to check its
    #: bounds at no cost (NumPy); elsewhere the read would wait for a device or compute a graph
    host_memory: bool = False
    #: whether ``x[key]`` raises ``IndexError`` for an integer index array out of range (JAX
    #: clamps, Dask wraps its own index arrays, CuPy wraps)
    checks_index_bounds: bool = True
    #: whether slices may have a negative step (PyTorch: no; agrad flips the axis instead)
    negative_steps: bool = True
    #: whether a Python int among integer index arrays counts as an advanced index, as in NumPy
    #: (``x[0, :, [0, 1]]`` puts the array's axis first); PyTorch and Dask take it as a basic
    #: index, and agrad moves the axes to NumPy's places
    ints_are_advanced: bool = True

    def require_known_shape(self, x: Any, what: str) -> None:
        """Raise ``ValueError`` naming ``what`` if ``x``'s shape is not known (``known_shapes``
        backends never raise)."""

    # -- what the standard lacks ------------------------------------------------------------
    def set_at(self, target: Any, key: Any, value: Any) -> Any:
        """``target`` with ``target[key] = value``: written in place where arrays are mutable
        (the caller allocated ``target`` itself), a new array otherwise."""
        target[key] = value
        return target

    def add_at(self, target: Any, key: Any, value: Any) -> Any:
        """``target`` with ``value`` added to ``target[key]`` (a basic index: no repeats), in
        place where arrays are mutable (the caller allocated ``target``), a new array otherwise.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> out = backend.add_at(backend.xp.zeros(3), slice(1, 3), backend.asarray([1.0, 2.0]))
        >>> backend.to_host(out).tolist()
        [0.0, 1.0, 2.0]
        """
        return self.set_at(target, key, target[key] + value)

    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        """Return a copy of ``target`` with ``values`` added at ``indices``; repeats accumulate.

        The gradient of indexing needs it, and the Array API standard has no ``add.at``.

        Parameters
        ----------
        target : array
            The array to add into (left unchanged).
        indices : array or index
            Where each of ``values`` goes, along the first axis (an integer array) or as an
            index expression.
        values : array
            What to add, broadcastable to ``target[indices]``.

        Returns
        -------
        array
            A new array.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> target = backend.asarray([0.0, 0.0, 0.0])
        >>> out = backend.scatter_add(
        ...     target, backend.asarray([0, 2, 0]), backend.asarray([1.0, 2.0, 3.0])
        ... )
        >>> backend.to_host(out).tolist(), backend.to_host(target).tolist()
        ([4.0, 0.0, 2.0], [0.0, 0.0, 0.0])
        """
        raise NotImplementedError

    # -- sliding windows (convolution, pooling) ---------------------------------------------
    #: True where ``_as_strided`` makes views (the library has stride tricks)
    stride_tricks: bool = False

    def _as_strided(
        self, x: Any, shape: tuple[int, ...], strides: tuple[int, ...], writeable: bool
    ) -> Any:
        """A view of ``x``'s memory with ``shape`` and byte ``strides`` (``stride_tricks`` only)."""
        raise NotImplementedError(f"backend {self.name!r} has no strided views")

    def window_view(self, x: Any, window: tuple[int, int], stride: tuple[int, int]) -> Any:
        """Every ``window`` patch of the last two axes of ``x``, ``stride`` apart.

        Shape ``(..., KH, KW, OH, OW)`` with ``v[..., i, j, a, b] == x[..., a*SH + i, b*SW + j]``.
        A read-only view where the library has stride tricks; otherwise a copy stacked from
        ``KH * KW`` strided slices (the Array API standard has no views).

        Parameters
        ----------
        x : array
            At least 2-d; the windows slide over its last two axes.
        window : tuple of int
            ``(KH, KW)``, the window's height and width.
        stride : tuple of int
            ``(SH, SW)``, the step between windows.

        Returns
        -------
        array
            Shape ``(..., KH, KW, OH, OW)`` with ``OH = (H - KH) // SH + 1`` (likewise ``OW``).

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> xp = backend.xp
        >>> x = xp.reshape(xp.arange(16.0), (4, 4))
        >>> v = backend.window_view(x, (2, 2), (2, 2))
        >>> v.shape
        (2, 2, 2, 2)
        >>> backend.to_host(v[:, :, 1, 0]).tolist()  # the window at row 2, column 0
        [[8.0, 9.0], [12.0, 13.0]]
        """
        (KH, KW), (SH, SW) = window, stride
        H, W = x.shape[-2], x.shape[-1]
        OH, OW = (H - KH) // SH + 1, (W - KW) // SW + 1
        lead = tuple(x.shape[:-2])
        if self.stride_tricks:
            *outer, sh, sw = x.strides
            return self._as_strided(
                x, (*lead, KH, KW, OH, OW), (*outer, sh, sw, SH * sh, SW * sw), writeable=False
            )
        xp = self.xp
        pieces = [x[..., _span(i, SH, OH), _span(j, SW, OW)] for i in range(KH) for j in range(KW)]
        return xp.reshape(xp.stack(pieces, axis=-3), (*lead, KH, KW, OH, OW))

    def add_windows(self, col: Any, size: tuple[int, int], stride: tuple[int, int]) -> Any:
        """The adjoint of ``window_view``: a new array ``(..., *size)`` with every window of
        ``col`` (shape ``(..., KH, KW, OH, OW)``) added back where it came from.

        With stride tricks this is one strided copy (plus one sum over the kernel offsets when
        windows overlap) instead of a loop over the kernel positions.

        Parameters
        ----------
        col : array
            Windows, shape ``(..., KH, KW, OH, OW)``.
        size : tuple of int
            ``(H, W)``, the last two axes of the result.
        stride : tuple of int
            ``(SH, SW)``, the step between windows.

        Returns
        -------
        array
            A new array of shape ``(..., H, W)``; where windows overlap their values add up.

        Raises
        ------
        ValueError
            If the windows do not fit in ``size`` at that stride.

        Examples
        --------
        Each cell of a 3x3 array is counted once per 2x2 window (stride 1) that covers it:

        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> col = backend.xp.ones((2, 2, 2, 2))
        >>> backend.to_host(backend.add_windows(col, (3, 3), (1, 1))).tolist()
        [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
        """
        KH, KW, OH, OW = col.shape[-4:]
        (SH, SW), (H, W) = stride, size
        lead = tuple(col.shape[:-4])
        if SH * (OH - 1) + KH > H or SW * (OW - 1) + KW > W:  # strided writes must stay inside
            raise ValueError(
                f"add_windows: {(OH, OW)} windows of {(KH, KW)} at stride {(SH, SW)} do not fit "
                f"in size {(H, W)}"
            )
        xp = self.xp
        overlapping = SH < KH or SW < KW
        if self.stride_tricks and overlapping:
            # kernel row by kernel row: a plane per column offset, so that no element is written
            # twice, then their sum; KW planes at a time keep the peak below twice ``col``'s size
            out = xp.zeros((*lead, H, W), dtype=col.dtype)
            planes = xp.zeros((KW, *lead, H, W), dtype=col.dtype)
            pj, *outer, sh, sw = planes.strides
            shape, n = (KW, *lead, OH, OW), col.ndim
            for i in range(KH):
                if i:
                    planes[...] = 0
                target = self._as_strided(
                    planes[..., i:, :], shape, (pj + sw, *outer, SH * sh, SW * sw), writeable=True
                )
                target[...] = xp.permute_dims(
                    col[..., i, :, :, :], (n - 4, *range(n - 4), n - 3, n - 2)
                )
                out += xp.sum(planes, axis=0)
            return out
        out = xp.zeros((*lead, H, W), dtype=col.dtype)
        if self.stride_tricks:  # disjoint windows: one assignment
            *outer, sh, sw = out.strides
            shape = (*lead, KH, KW, OH, OW)
            target = self._as_strided(
                out, shape, (*outer, sh, sw, SH * sh, SW * sw), writeable=True
            )
            target[...] = col
            return out
        for i in range(KH):
            for j in range(KW):
                at = (..., _span(i, SH, OH), _span(j, SW, OW))
                piece = col[..., i, j, :, :]
                write = self.add_at if overlapping else self.set_at
                out = write(out, at, piece)
        return out

    def einsum_on_host(self, subscripts: str, *operands: Any) -> Any:
        """NumPy's ``einsum`` on host copies of ``operands``, back on this backend.

        For namespaces without an ``einsum`` (the Array API standard names none:
        array_api_strict); the others use their own.

        Parameters
        ----------
        subscripts : str
            As for ``numpy.einsum``.
        *operands : array
            Arrays of this backend.

        Returns
        -------
        array
            The result, on this backend, in the operands' result dtype.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> a = backend.asarray([1.0, 2.0])
        >>> backend.to_host(backend.einsum_on_host("i,i->", a, a)).tolist()
        5.0
        """
        from agrad.backends.numpy import host

        result = host.asarray(host.einsum(subscripts, *[self.to_host(x) for x in operands]))
        return self.xp.asarray(result, dtype=self.xp.result_type(*operands))

    def subtract_scaled(self, target: Any, scale: Any, x: Any) -> Any:
        """``target - scale * x`` written into ``target``, which is returned (an SGD update).

        Callers pass a writable ``target`` of a library with in-place operators. This default
        is ``target -= scale * x``; NumPy's makes one pass over a large ``target`` without a
        temporary of its size.

        Parameters
        ----------
        target : array
            A writable array of this backend, updated in place.
        scale : number or 0-d array
            The factor of ``x`` (a learning rate).
        x : array
            An array of this backend that broadcasts to ``target``'s shape.

        Returns
        -------
        array
            ``target``, holding ``target - scale * x`` cast to its dtype.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> w = backend.asarray([1.0, 2.0])
        >>> backend.to_host(backend.subtract_scaled(w, 0.5, backend.asarray([2.0, 2.0]))).tolist()
        [0.0, 1.0]
        """
        target -= scale * x
        return target

    def sigmoid(self, x: Any) -> Any:
        """The logistic sigmoid ``1 / (1 + exp(-x))``, elementwise, never overflowing.

        This default computes DeZero's ``tanh(x/2)/2 + 1/2``, which saturates where ``exp(-x)``
        would overflow; libraries with a faster overflow-free form use it (PyTorch's and JAX's
        own sigmoid; NumPy's ``exp`` form with its overflow to the right limit, 0, allowed).

        Parameters
        ----------
        x : array
            An array of this backend.

        Returns
        -------
        array
            ``sigmoid(x)``, of ``x``'s shape, in ``x``'s floating dtype.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> backend.to_host(backend.sigmoid(backend.asarray([-1000.0, 0.0, 1000.0]))).tolist()
        [0.0, 0.5, 1.0]
        """
        return self.xp.tanh(x * 0.5) * 0.5 + 0.5

    def erf(self, x: Any) -> Any:
        """The error function, elementwise (the Array API standard has none).

        This default computes on the host with Python's ``math.erf`` (correctly rounded in
        float64) and moves the result back; libraries that have one use their own.

        Parameters
        ----------
        x : array
            A floating-point array of this backend.

        Returns
        -------
        array
            ``erf(x)``, of ``x``'s shape and dtype.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> backend.to_host(backend.erf(backend.asarray([0.0]))).tolist()
        [0.0]
        """
        import math

        from agrad.backends.numpy import host

        values = host.asarray(self.to_host(x))
        out = host.vectorize(math.erf, otypes=[values.dtype])(values) if values.size else values
        return self.asarray(out, dtype=values.dtype.name)

    def compile(self, fn: Any) -> Any:
        """``fn`` compiled by this library's compiler, or None where agrad replays it in Python.

        :func:`agrad.jit` hands it a pure function of arrays and Python numbers (a replayed
        step with its random draws made beforehand); JAX compiles it with XLA.

        Parameters
        ----------
        fn : callable
            Arrays and numbers in, a tuple of arrays out; it reads and writes nothing else.

        Returns
        -------
        callable or None
            The compiled function, or None.

        Examples
        --------
        >>> import agrad
        >>> agrad.get_backend("numpy").compile(lambda x: (x + 1,)) is None
        True
        """
        return None

    def scratch_layout(self, x: Any) -> tuple | None:
        """``(shape, dtype)`` where :meth:`scratch` can hold a value like ``x``, else None.

        :func:`agrad.jit`'s generated replay keeps the large temporaries this accepts in
        buffers that last from one replay to the next (see :meth:`writing_into`). This default
        accepts none: the library allocates as it would eagerly (CuPy's memory pool and XLA's
        buffer assignment reuse device memory themselves).

        Parameters
        ----------
        x : array
            A value the traced step made.

        Returns
        -------
        tuple or None
            The layout of a buffer that can receive a value like ``x``, or None.

        Examples
        --------
        >>> import agrad
        >>> agrad.get_backend("array_api_strict").scratch_layout(None) is None
        True
        """
        return None

    def writing_into(self, fn: Any) -> Any:
        """``fn`` as a function ``g(*args, out=buffer)`` that writes its result into ``buffer``,
        where ``fn`` always returns a new array that shares no memory with its arguments; else
        None.

        Parameters
        ----------
        fn : callable
            A function or operator a traced step called (``operator.mul``, ``xp.tanh``).

        Returns
        -------
        callable or None
            The writing form (NumPy: the ufunc), or None.

        Examples
        --------
        >>> import agrad, operator
        >>> agrad.get_backend("array_api_strict").writing_into(operator.mul) is None
        True
        """
        return None

    def scratch(self, layouts: tuple) -> tuple:
        """Arrays of the given ``(shape, dtype)`` layouts, carved from one allocation.

        One allocation, not one per buffer: on glibc, buffers allocated one by one and kept
        between replays split the heap, and the temporaries still allocated around them are
        then returned to the system and faulted back at every step (benchmarks/README.md).

        Parameters
        ----------
        layouts : tuple of (shape, dtype)
            From :meth:`scratch_layout`.

        Returns
        -------
        tuple of arrays
            Uninitialized, C-contiguous, one per layout, sharing no memory with each other.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.get_backend("numpy")
        >>> layouts = (((2, 3), backend.dtype("float32")), ((4,), backend.dtype("int64")))
        >>> a, b = backend.scratch(layouts)
        >>> a.shape, b.dtype.name
        ((2, 3), 'int64')
        """
        raise NotImplementedError(f"the {self.name} backend keeps no buffers for agrad.jit")

    def seed(self, seed: int) -> None:
        """Seed this backend's random number generator.

        :func:`agrad.seed` seeds every backend in use; this seeds one.

        Parameters
        ----------
        seed : int
            The seed.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> backend.seed(1)
        >>> first = backend.to_host(backend.permutation(5)).tolist()
        >>> backend.seed(1)
        >>> backend.to_host(backend.permutation(5)).tolist() == first
        True
        """
        raise NotImplementedError

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Uniform samples in [0, 1).

        Parameters
        ----------
        shape : tuple of int
            The shape of the result.
        dtype : dtype, optional
            This backend's floating dtype (``backend.dtype('float32')``); default float64.

        Returns
        -------
        array
            An array of this backend.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> u = backend.random((1000,), dtype=backend.dtype("float32"))
        >>> backend.dtype_name(u.dtype), bool(backend.xp.all((u >= 0) & (u < 1)))
        ('float32', True)
        """
        raise NotImplementedError

    def randn(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Standard normal samples.

        Parameters
        ----------
        shape : tuple of int
            The shape of the result.
        dtype : dtype, optional
            This backend's floating dtype (``backend.dtype('float32')``); default float64.

        Returns
        -------
        array
            An array of this backend.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> z = backend.randn((2, 3))
        >>> z.shape, backend.dtype_name(z.dtype)
        ((2, 3), 'float64')
        """
        raise NotImplementedError

    def host_randn(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Standard normal samples drawn on the host, then moved to this backend once.

        The draw comes from the one host generator every backend shares (NumPy's global RNG,
        which :func:`agrad.seed` seeds and DeZero draws from), so the same seed gives the same
        numbers on every backend: layers initialise their parameters with it. :meth:`randn` draws
        on the device from the backend's own generator (faster for large arrays, different
        numbers per backend); dropout uses that one.

        Parameters
        ----------
        shape : tuple of int
            The shape of the result.
        dtype : str or dtype, optional
            A dtype name or this backend's floating dtype; default float64. The samples are
            drawn in float64 and rounded to ``dtype`` on the host.

        Returns
        -------
        array
            An array of this backend.

        Examples
        --------
        >>> import agrad
        >>> agrad.seed(0)
        >>> a = agrad.get_backend("numpy").host_randn((2, 3), "float32")
        >>> agrad.seed(0)
        >>> b = agrad.current_backend().host_randn((2, 3), "float32")
        >>> agrad.current_backend().to_host(b).tolist() == a.tolist()
        True
        """
        from agrad.backends.numpy import draw_normal, host

        if dtype is None:
            name = "float64"
        elif isinstance(dtype, str):
            name = dtype
        else:
            name = self.dtype_name(dtype)
        return self.asarray(draw_normal(shape, host.dtype(name)), name)

    def permutation(self, n: int) -> Any:
        """A random permutation of ``range(n)`` as an integer array of this backend.

        Parameters
        ----------
        n : int
            How many indices.

        Returns
        -------
        array
            Shape ``(n,)``, integer, each of ``0 .. n-1`` once.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> sorted(backend.to_host(backend.permutation(4)).tolist())
        [0, 1, 2, 3]
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<agrad backend {self.name!r}>"


def flat_positions(xp: Any, shape: tuple[int, ...], key: Any, device: Any = None) -> Any:
    """The flat (C-order) positions that ``x[key]`` reads, for ``x`` of ``shape``.

    Lets a library without an accumulating scatter on multi-axis keys add into one flat axis.

    Parameters
    ----------
    xp : namespace
        The array namespace to build the positions with.
    shape : tuple of int
        The shape of the indexed array.
    key : index
        Any index ``xp`` arrays accept.
    device : device, optional
        Where to make the positions.

    Returns
    -------
    array
        Integers of the shape of ``x[key]``.

    Examples
    --------
    >>> import agrad
    >>> from agrad.backends._base import flat_positions
    >>> xp = agrad.current_backend().xp
    >>> agrad.cuda.as_numpy(flat_positions(xp, (2, 3), (slice(None), 1))).tolist()
    [1, 4]
    """
    size = 1
    for n in shape:
        size *= n
    kwargs = {} if device is None else {"device": device}
    return xp.reshape(xp.arange(size, **kwargs), shape)[key]


def _span(start: int, step: int, count: int) -> slice:
    """The slice of ``count`` positions ``start, start + step, ...``."""
    return slice(start, start + step * (count - 1) + 1, step)


SCRATCH_ALIGN = 64  # bytes: each kept buffer starts on a cache line


def scratch_plan(layouts: tuple, base_address: int) -> tuple[int, list[tuple[int, int]]]:
    """For :meth:`Backend.scratch`: the bytes to allocate, and each buffer's ``(start, nbytes)``
    in that allocation, each start ``SCRATCH_ALIGN``-aligned once the allocation's address is
    ``base_address`` (pass 0 to size it, then the address to place the buffers).

    Examples
    --------
    >>> import agrad
    >>> from agrad.backends._base import scratch_plan
    >>> f32 = agrad.get_backend("numpy").dtype("float32")
    >>> scratch_plan((((3,), f32), ((2, 2), f32)), base_address=0)
    (192, [(0, 12), (64, 16)])
    >>> scratch_plan((((3,), f32),), base_address=16)[1]
    [(48, 12)]
    """
    spans = []
    at = -base_address % SCRATCH_ALIGN
    for shape, dtype in layouts:
        nbytes = math.prod(shape) * dtype.itemsize
        spans.append((at, nbytes))
        at += -(-nbytes // SCRATCH_ALIGN) * SCRATCH_ALIGN
    return at + SCRATCH_ALIGN, spans
