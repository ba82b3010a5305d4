"""Anomaly mode: find the function whose forward or backward first produced a NaN or infinity.

Inside :func:`detect_anomaly` (or after ``set_detect_anomaly(True)``) every function records the
file and line of the user's code that called it, and its outputs, and during ``backward()`` the
gradients it returns, are checked for NaN and infinity. The first function that turns finite
values into non-finite ones raises :class:`AnomalyError` (a ``FloatingPointError``) naming
itself, the phase (forward or backward), the shapes and dtypes of what went in and came out,
and that file and line. A function whose inputs were already non-finite only propagated them and
is not blamed (masks made with ``-inf`` keep working).

Cost: one finiteness check per function, forward and backward, each ending in one read of a
single boolean on the host; on a GPU that is one synchronisation per function, so keep the mode
for debugging. Off, it costs nothing: the checking ``Function.__call__`` is installed only while
some context has the mode on, and ``backward`` tests one local flag per function.

The switch is context-local, like :func:`agrad.no_grad`: turning it on in one thread (or
asyncio task) does not turn it on in another.

Examples
--------
>>> import agrad
>>> import agrad.functions as F
>>> import warnings
>>> x = agrad.Variable(agrad.current_backend().asarray([0.0, 1.0]))
>>> with warnings.catch_warnings(), agrad.detect_anomaly():
...     warnings.simplefilter("ignore")  # the array library's own "divide by zero" warning
...     y = F.log(x)
Traceback (most recent call last):
  ...
agrad.anomaly.AnomalyError: Log forward produced inf ...
"""

from __future__ import annotations

import cmath
import contextlib
import contextvars
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from agrad.backends import backend_of
from agrad.config import _detect_anomaly
from agrad.core import (
    _FUNCTION_CALL,
    Function,
    Variable,
    _install_call,
    _is_number,
    _kept,
    is_differentiable_dtype,
)

__all__ = ["AnomalyError", "detect_anomaly", "is_anomaly_enabled", "set_detect_anomaly"]

_AGRAD_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_plain_call = _FUNCTION_CALL
_lock = threading.Lock()
_contexts_on = 0  # contexts with the mode on: the checking __call__ is installed while > 0


class AnomalyError(FloatingPointError):
    """A function produced NaN or infinity from finite values (raised in anomaly mode only).

    Attributes
    ----------
    function : Function
        The function that produced it.
    phase : str
        ``"forward"`` or ``"backward"``.
    site : tuple of (str, int) or None
        File and line of the user's code that called the function.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> import warnings
    >>> x = agrad.Variable(agrad.current_backend().asarray([-1.0, 1.0]))
    >>> with warnings.catch_warnings(), agrad.detect_anomaly():
    ...     warnings.simplefilter("ignore")  # the array library's own "invalid value" warning
    ...     try:
    ...         F.log(x)
    ...     except agrad.anomaly.AnomalyError as exc:
    ...         error = exc
    >>> type(error.function).__name__, error.phase
    ('Log', 'forward')
    >>> isinstance(error, FloatingPointError)
    True
    """

    def __init__(self, message: str, function: Function, phase: str, site: Any) -> None:
        super().__init__(message)
        self.function = function
        self.phase = phase
        self.site = site


def is_anomaly_enabled() -> bool:
    """Whether anomaly mode is on in this context.

    Returns
    -------
    bool
        True inside :func:`detect_anomaly` or after ``set_detect_anomaly(True)``.

    Examples
    --------
    >>> import agrad
    >>> with agrad.detect_anomaly():
    ...     print(agrad.anomaly.is_anomaly_enabled())
    True
    >>> agrad.anomaly.is_anomaly_enabled()
    False
    """
    return _detect_anomaly.get()


def _count(change: int) -> None:
    global _contexts_on
    with _lock:
        _contexts_on += change
        # on Function and on every subclass's own copy of its __call__
        _install_call(_checking_call if _contexts_on > 0 else None)


def set_detect_anomaly(mode: bool) -> None:
    """Turn anomaly mode on or off in this context from now on.

    Parameters
    ----------
    mode : bool
        True to check every function's forward and backward for NaN and infinity.

    Raises
    ------
    TypeError
        If ``mode`` is not a bool.

    Examples
    --------
    >>> import agrad
    >>> agrad.set_detect_anomaly(True)
    >>> agrad.anomaly.is_anomaly_enabled()
    True
    >>> agrad.set_detect_anomaly(False)
    """
    if not isinstance(mode, bool):
        raise TypeError(f"set_detect_anomaly: mode must be True or False, not {mode!r}")
    was = _detect_anomaly.get()
    if mode != was:
        _detect_anomaly.set(mode)
        _count(1 if mode else -1)


@contextlib.contextmanager
def detect_anomaly(enabled: bool = True) -> Iterator[None]:
    """Check every function's forward and backward for NaN and infinity inside the block.

    Parameters
    ----------
    enabled : bool, default True
        False turns the mode off inside the block (in a block where it was on).

    Yields
    ------
    None

    Raises
    ------
    AnomalyError
        From the first function whose forward or backward turned finite values into NaN or
        infinity; the message names the function, the phase, the shapes and dtypes, and the
        file and line of the user's code that called it.
    TypeError
        If ``enabled`` is not a bool.

    Examples
    --------
    The forward of ``sqrt`` is finite at 0, its gradient is not:

    >>> import agrad
    >>> import agrad.functions as F
    >>> import warnings
    >>> x = agrad.Variable(agrad.current_backend().asarray([0.0, 4.0]))
    >>> with warnings.catch_warnings(), agrad.detect_anomaly():
    ...     warnings.simplefilter("ignore")  # the array library's own "divide by zero" warning
    ...     y = F.sum(F.sqrt(x))
    ...     y.backward()
    Traceback (most recent call last):
      ...
    agrad.anomaly.AnomalyError: Sqrt backward produced inf ...
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"detect_anomaly: enabled must be True or False, not {enabled!r}")
    was = _detect_anomaly.get()
    token = _detect_anomaly.set(enabled)
    if enabled != was:
        _count(1 if enabled else -1)
    try:
        yield
    finally:
        _detect_anomaly.reset(token)
        if enabled != was:
            _count(-1 if enabled else 1)


def _checking_call(self: Function, *inputs: Any) -> Any:
    """``Function.__call__`` while some context has anomaly mode on."""
    if not _detect_anomaly.get():
        return _plain_call(self, *inputs)
    self.anomaly_site = _user_site()
    outputs = _plain_call(self, *inputs)
    results = outputs if isinstance(outputs, list) else [outputs]
    if not _all_finite([v.data for v in results]) and _all_finite(list(inputs)):
        raise _forward_error(self, inputs, results)
    return outputs


def check_backward(func: Function, gys: Any, gxs: tuple) -> None:
    """Raise :class:`AnomalyError` if ``func``'s gradients ``gxs`` are the first non-finite ones.

    Called by the backward loop for each function while anomaly mode is on.
    """
    if _all_finite(list(gxs)):
        return
    read = [*gys, *(_kept(func._saved_inputs) or ()), *(_kept(func._saved_outputs) or ())]
    if _all_finite(read):
        raise _error(func, "backward", func.input_nodes, gys, gys, gxs)


_INSIDE_AGRAD: dict[str, bool] = {}  # a code object's file name -> whether it is agrad's


def _user_site() -> tuple[str, int] | None:
    """File and line of the innermost frame outside agrad (the user's call)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        inside = _INSIDE_AGRAD.get(filename)
        if inside is None:
            inside = _INSIDE_AGRAD[filename] = os.path.abspath(filename).startswith(_AGRAD_DIR)
        if not inside:
            return filename, frame.f_lineno
        frame = frame.f_back
    return None


def _all_finite(values: list) -> bool:
    """Whether every float of ``values`` (arrays, Variables, numbers, None) is finite.

    One read on the host for the arrays of one backend: the flags are combined on the device.
    """
    flags: dict[Any, Any] = {}
    for value in values:
        data = value.data if isinstance(value, Variable) else value
        if data is None:
            continue
        if _is_number(data):
            if not cmath.isfinite(data):
                return False
            continue
        if not hasattr(data, "dtype") or not is_differentiable_dtype(data.dtype):
            continue  # integer and boolean arrays are always finite
        backend = backend_of(data)
        xp = backend.xp
        flag = xp.all(xp.isfinite(data))
        previous = flags.get(backend)
        flags[backend] = flag if previous is None else xp.logical_and(previous, flag)
    return all(bool(flag) for flag in flags.values())


def _describe(values: Any) -> str:
    """Dtype and shape of each value, as ``float32[2, 3], float32[3]``."""
    parts = []
    for value in values:
        data = value.data if isinstance(value, Variable) else value
        if data is None:
            parts.append("None")
        elif hasattr(data, "shape") and hasattr(data, "dtype"):
            dims = ", ".join(str(n) for n in data.shape)
            parts.append(f"{str(data.dtype).rsplit('.', 1)[-1]}[{dims}]")
        else:
            parts.append(repr(data))
    return ", ".join(parts)


def _what(values: Any) -> str:
    """``"NaN"``, ``"inf"`` or ``"NaN and inf"``: what the non-finite values of ``values`` are."""
    nan = inf = False
    for value in values:
        data = value.data if isinstance(value, Variable) else value
        if data is None or not hasattr(data, "dtype") or not is_differentiable_dtype(data.dtype):
            continue
        xp = backend_of(data).xp
        nan = nan or bool(xp.any(xp.isnan(data)))
        inf = inf or bool(xp.any(xp.isinf(data)))
    return " and ".join([w for w, found in (("NaN", nan), ("inf", inf)) if found]) or "NaN"


def _where(site: Any) -> str:
    if site is None:
        return "called from inside agrad"
    return f"called at {site[0]}:{site[1]}"


def _forward_error(func: Function, inputs: tuple, outputs: list) -> AnomalyError:
    """The error for ``func``'s forward; inside a backward it is blamed on that backward."""
    outer, gys = _backward_in_progress()
    if outer is not None:
        return _error(
            outer,
            "backward",
            outer.input_nodes,
            gys,
            None,
            [v.data for v in outputs],
            detail=f" (in its {type(func).__name__}: {_describe(inputs)} -> {_describe(outputs)})",
        )
    return _error(func, "forward", inputs, [v.data for v in outputs], None, None)


#: (function, its output gradients) whose gradient the backward loop is computing, set by the
#: loop only while anomaly mode is on
_IN_BACKWARD: contextvars.ContextVar[tuple[Function | None, Any]] = contextvars.ContextVar(
    "agrad_anomaly_in_backward", default=(None, ())
)


def entering_backward(func: Function, gys: Any) -> None:
    """Called by the backward loop (anomaly mode only) before it computes ``func``'s gradient."""
    _IN_BACKWARD.set((func, gys))


def _backward_in_progress() -> tuple[Function | None, Any]:
    """The function whose gradient the backward loop is computing, and its output gradients."""
    func, gys = _IN_BACKWARD.get()
    return func, gys or ()


def _error(
    func: Function,
    phase: str,
    inputs: Any,
    outputs: Any,
    gys: Any,
    gxs: Any,
    detail: str = "",
) -> AnomalyError:
    site = getattr(func, "anomaly_site", None)
    bad = _what(gxs if gxs is not None else outputs)
    message = (
        f"{type(func).__name__} {phase} produced {bad} from finite values{detail}; "
        f"inputs: {_describe(inputs)}; outputs: {_describe(outputs)}"
    )
    if gys is not None:
        message += f"; input gradients: {_describe(gxs)}"
    message += f"; the function was {_where(site)}"
    if site is None and phase == "backward":
        message += " (or before anomaly mode was turned on)"
    return AnomalyError(message, func, phase, site)
