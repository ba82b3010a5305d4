"""Run-time switches (DeZero's ``Config``), held per context so threads do not share them."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

_enable_backprop = contextvars.ContextVar("agrad_enable_backprop", default=True)
_train = contextvars.ContextVar("agrad_train", default=True)
_SWITCHES = {"enable_backprop": _enable_backprop, "train": _train}
# set through agrad.anomaly (detect_anomaly / set_detect_anomaly), which also installs the checks
_detect_anomaly = contextvars.ContextVar("agrad_detect_anomaly", default=False)
# the dtype name matmul, linear and conv compute in; None outside agrad.amp.autocast
_autocast_dtype: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agrad_autocast_dtype", default=None
)
# the agrad.tracing.Trace being recorded in this context (agrad.jit), if any
_active_trace: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "agrad_active_trace", default=None
)


class _Config:
    """DeZero's ``Config`` with the same attribute names, but each value is context-local.

    Set a switch for a block with :func:`using_config` (or :func:`no_grad`, :func:`test_mode`);
    assigning an attribute sets it for the current thread or task from then on.

    Examples
    --------
    >>> import agrad
    >>> agrad.Config
    Config(enable_backprop=True, train=True)
    """

    __slots__ = ()

    @property
    def enable_backprop(self) -> bool:
        """Whether functions record the graph needed for ``backward``."""
        return _enable_backprop.get()

    @enable_backprop.setter
    def enable_backprop(self, value: bool) -> None:
        _enable_backprop.set(bool(value))

    @property
    def train(self) -> bool:
        """Training mode: read by ``dropout`` and ``batch_norm``."""
        return _train.get()

    @train.setter
    def train(self, value: bool) -> None:
        _train.set(bool(value))

    def __repr__(self) -> str:
        return f"Config(enable_backprop={self.enable_backprop}, train={self.train})"


Config = _Config()
"""The run-time switches ``enable_backprop`` and ``train`` (an instance of ``_Config``)."""


@contextlib.contextmanager
def using_config(name: str, value: Any) -> Iterator[None]:
    """Set config switch ``name`` to ``value`` inside a ``with`` block (this context only).

    Parameters
    ----------
    name : str
        A switch of :data:`Config`: ``"enable_backprop"`` or ``"train"``.
    value : bool
        Its value inside the block; the previous value comes back when the block ends, also on
        an exception.

    Yields
    ------
    None

    Raises
    ------
    AttributeError
        If ``name`` is not a switch; the message lists the known ones.

    Examples
    --------
    >>> import agrad
    >>> with agrad.using_config("train", False):
    ...     print(agrad.Config.train)
    False
    >>> agrad.Config.train
    True
    """
    try:
        var = _SWITCHES[name]
    except KeyError:
        raise AttributeError(
            f"agrad.Config has no switch {name!r}; known: {', '.join(_SWITCHES)}"
        ) from None
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def no_grad() -> contextlib.AbstractContextManager[None]:
    """Do not record the graph inside the block (inference, parameter updates).

    Returns
    -------
    contextlib.AbstractContextManager[None]
        ``using_config("enable_backprop", False)``.

    Examples
    --------
    >>> import agrad
    >>> x = agrad.Variable(agrad.as_array(2.0))
    >>> with agrad.no_grad():
    ...     y = x * x
    >>> print(y.creator)
    None
    """
    return using_config("enable_backprop", False)


def test_mode() -> contextlib.AbstractContextManager[None]:
    """Evaluation mode inside the block: dropout off, batch norm uses running statistics.

    Returns
    -------
    contextlib.AbstractContextManager[None]
        ``using_config("train", False)``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([1.0, 2.0, 3.0]))
    >>> with agrad.test_mode():
    ...     F.dropout(x, dropout_ratio=0.5)
    variable([1. 2. 3.])
    """
    return using_config("train", False)


test_mode.__test__ = False  # keep pytest from collecting it when a test module imports it
