"""The interface every backend module implements."""

from __future__ import annotations

import warnings
from typing import Any


class BackendUnavailableError(RuntimeError):
    """A backend was requested that cannot run on this machine."""


class Backend:
    """One array library agrad can compute on: its namespace, probes and the gaps in the standard.

    Subclasses live one per module in ``agrad.backends``; they import their array library lazily
    so that ``import agrad`` never imports CuPy or array-api-strict.
    """

    name: str = ""
    #: where new arrays live, in words (filled in by ``describe``)
    gpu: bool = False

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
        """What to do to make this backend usable here, in one sentence ('' if nothing helps)."""
        return ""

    @property
    def available(self) -> bool:
        """True when the library imports and its device answers."""
        return self.probe()[0]

    def require(self) -> None:
        """Raise ``BackendUnavailableError`` (with the root cause) unless this backend is usable."""
        ok, why = self.probe()
        if not ok:
            raise BackendUnavailableError(f"agrad backend {self.name!r} is not usable here: {why}")

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
        """Whether the library has been imported (``xp`` touched) in this process."""
        return "xp" in self.__dict__

    def owns(self, x: Any) -> bool:
        """True if ``x`` is an array of this backend (never imports the library)."""
        raise NotImplementedError

    # -- conversions ------------------------------------------------------------------------
    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """An array of this backend from Python data, a host array or another backend's array."""
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
        """A NumPy copy (or view) of ``x`` on the host."""
        raise NotImplementedError

    def from_result(self, value: Any) -> Any:
        """An array of this backend from what one of its operations returned: ``xp.asarray``.

        Needed because NumPy returns 0-d results as scalars; a backend may offer a faster
        equivalent (agrad's core calls this once per operation on 0-d data).
        """
        return self.xp.asarray(value)

    def dtype(self, name: str) -> Any:
        """This backend's dtype object called ``name`` (``'float32'``, ``'int64'``, ...)."""
        return getattr(self.xp, name)

    def dtype_name(self, dtype: Any) -> str:
        """The standard name of a dtype of this backend."""
        return str(dtype).rsplit(".", 1)[-1]

    def device_name(self) -> str:
        """A human-readable description of the device new arrays are placed on."""
        return "CPU"

    def devices(self) -> list[str]:
        """Human-readable descriptions of every device this backend can use."""
        return [self.device_name()]

    def is_writable(self, x: Any) -> bool:
        """Whether writing into ``x`` in place is safe: not read-only, not a broadcast view."""
        return True

    # -- what the standard lacks ------------------------------------------------------------
    def scatter_add(self, target: Any, indices: Any, values: Any) -> Any:
        """Return a copy of ``target`` with ``values`` added at ``indices``; repeats accumulate."""
        raise NotImplementedError

    def seed(self, seed: int) -> None:
        """Seed this backend's random number generator."""
        raise NotImplementedError

    def random(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Uniform samples in [0, 1)."""
        raise NotImplementedError

    def randn(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Standard normal samples."""
        raise NotImplementedError

    def permutation(self, n: int) -> Any:
        """A random permutation of ``range(n)`` as an integer array of this backend."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<agrad backend {self.name!r}>"
