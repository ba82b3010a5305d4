"""Mixed precision: float16 matrix products under :func:`autocast`, and a :class:`GradScaler`.

Inside ``with autocast():`` the functions that are almost all arithmetic — ``matmul``,
``linear``, ``conv2d`` and ``deconv2d`` (and so the layers built on them) — cast their float32
operands to float16, compute in float16 and hand back float32 results. Everything else
(reductions, ``exp``, ``log``, ``softmax``, the losses, normalisation) therefore keeps running in
float32, as PyTorch's autocast keeps them. The casts are differentiable (``F.astype``): the
backward pass of those products also runs in float16, and the parameters stay float32 ("master"
weights) with float32 gradients. float64 operands are left alone.

float16 gradients underflow (anything under 6e-8 is zero) unless the loss is scaled up before
``backward()``; :class:`GradScaler` does that, unscales the gradients before the optimizer step,
skips the step when the scaled gradients overflowed, and adjusts the scale (dynamic loss scaling,
with PyTorch's defaults).

The speed win is for GPUs with float16 matrix units; NumPy computes float16 products in software,
slower than float32, and is for checking correctness. Backends without float16
(array-api-strict) raise a ``TypeError`` naming the backend from the first product under
``autocast``; :class:`GradScaler` works on every backend.

Examples
--------
>>> import agrad
>>> import agrad.functions as F
>>> from agrad import amp
>>> model = agrad.models.MLP((8, 2))
>>> optimizer = agrad.optimizers.SGD(lr=0.1).setup(model)
>>> scaler = amp.GradScaler()
>>> x = agrad.current_backend().asarray([[0.5, -1.0], [1.5, 2.0]], dtype="float32")
>>> t = agrad.current_backend().asarray([0, 1])
>>> with amp.autocast(enabled=amp.autocast_available()):
...     loss = F.softmax_cross_entropy(model(x), t)
>>> loss.dtype == x.dtype  # the loss is computed in float32
True
>>> model.cleargrads()
>>> scaler.scale(loss).backward()
>>> scaler.step(optimizer)
True
>>> scaler.update()
>>> scaler.get_scale()
65536.0
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from agrad.backends import Backend, backend_of, current_backend
from agrad.config import _autocast_dtype
from agrad.core import Variable, is_differentiable_dtype
from agrad.functions.casting import astype
from agrad.tracing.tracer import TraceError, active_trace

__all__ = ["GradScaler", "autocast", "autocast_available", "is_autocast_enabled"]

_LOW_PRECISION = ("float16", "bfloat16")


def _dtype_of(backend: Backend, name: str) -> Any:
    """``backend``'s dtype ``name``, or ``TypeError`` saying the backend lacks it."""
    try:
        return backend.dtype(name)
    except AttributeError:
        raise TypeError(
            f"autocast: backend {backend.name!r} has no {name} dtype; mixed precision needs a "
            "backend with it (numpy, cupy)"
        ) from None


def autocast_available(dtype: str = "float16", backend: str | Backend | None = None) -> bool:
    """Whether ``backend`` (default: the current one) has ``dtype`` for :func:`autocast`.

    Parameters
    ----------
    dtype : str, default "float16"
        The low-precision dtype's name.
    backend : str or Backend, optional
        The backend to ask; the current default backend when omitted.

    Returns
    -------
    bool
        False for array-api-strict, which has no float16.

    Examples
    --------
    >>> from agrad import amp
    >>> amp.autocast_available(backend="numpy")
    True
    >>> amp.autocast_available(backend="array_api_strict")
    False
    """
    from agrad.backends import get_backend

    target = current_backend() if backend is None else get_backend(backend)
    return hasattr(target.xp, dtype)


def is_autocast_enabled() -> bool:
    """Whether this context is inside an enabled :func:`autocast` block.

    Returns
    -------
    bool
        True inside ``with autocast():``.

    Examples
    --------
    >>> from agrad import amp
    >>> amp.is_autocast_enabled()
    False
    """
    return _autocast_dtype.get() is not None


@contextlib.contextmanager
def autocast(enabled: bool = True, dtype: str = "float16") -> Iterator[None]:
    """Run ``matmul``, ``linear``, ``conv2d`` and ``deconv2d`` in ``dtype`` inside the block.

    Their float32 operands are cast to ``dtype`` (differentiably) and their results cast back to
    float32, so everything else runs in float32. Context-local, like :func:`agrad.no_grad`.

    Parameters
    ----------
    enabled : bool, default True
        False runs the block in full precision (handy to switch mixed precision with a flag).
    dtype : {"float16", "bfloat16"}, default "float16"
        The low-precision dtype; the backend must have it.

    Yields
    ------
    None

    Raises
    ------
    ValueError
        If ``dtype`` is not a low-precision floating dtype name.
    TypeError
        If ``enabled`` is not a bool; and from a product inside the block whose operands live
        on a backend without ``dtype`` (array-api-strict has no float16);
        :func:`autocast_available` tells beforehand.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad import amp
    >>> backend = agrad.get_backend("numpy")
    >>> x = agrad.Variable(backend.asarray([[1.0, 2.0]], dtype="float32"))
    >>> W = agrad.Variable(backend.asarray([[0.5], [0.25]], dtype="float32"))
    >>> with amp.autocast():
    ...     y = F.matmul(x, W)
    >>> y.dtype, y.creator.input_nodes[0].dtype  # computed in float16, returned in float32
    (dtype('float32'), dtype('float16'))
    >>> y.backward()
    >>> W.grad.dtype
    dtype('float32')
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"autocast: enabled must be True or False, not {enabled!r}")
    if dtype not in _LOW_PRECISION:
        raise ValueError(
            f"autocast: dtype must be one of {', '.join(_LOW_PRECISION)}, not {dtype!r}"
        )
    token = _autocast_dtype.set(dtype if enabled else None)
    try:
        yield
    finally:
        _autocast_dtype.reset(token)


def autocast_call(func: Any, *args: Any) -> Any:
    """``func(*args)`` with float32 operands cast to the autocast dtype; float32 result.

    Used by ``matmul``, ``linear``, ``conv2d`` and ``deconv2d`` inside :func:`autocast` (None
    arguments, such as an absent bias, are dropped).
    """
    name = _autocast_dtype.get()
    args = tuple(a for a in args if a is not None)
    cast = []
    full = low = None
    for a in args:
        dtype = getattr(a, "dtype", None)
        if dtype is not None and str(dtype).rsplit(".", 1)[-1] == "float32":
            full = dtype
            backend = backend_of(a.data if isinstance(a, Variable) else a)
            low = _dtype_of(backend, name)
            # a data batch (a raw array) needs no graph node for its cast
            a = astype(a, low) if isinstance(a, Variable) else backend.xp.astype(a, low)
        cast.append(a)
    y = func(*cast)
    if low is not None and y.dtype == low:  # not when a float64 operand made it float64
        y = astype(y, full)
    return y


def _check_settings(owner: str, settings: dict[str, Any]) -> None:
    """The constructor's rules for a scaler's settings (also applied to a loaded state)."""
    for name, value in settings.items():
        integral = name in ("growth_interval", "_growth_tracker")
        kinds = (int,) if integral else (int, float)
        if isinstance(value, bool) or (
            not isinstance(value, kinds)
            and not (hasattr(value, "item") and isinstance(value.item(), kinds))
        ):
            kind = "an int" if integral else "a number"
            raise TypeError(f"{owner}: {name} must be {kind}, not {value!r}")
    checks = {
        "init_scale": (lambda v: v > 0, "> 0"),
        "scale": (lambda v: v > 0, "> 0"),
        "growth_factor": (lambda v: v > 1.0, "> 1"),
        "backoff_factor": (lambda v: 0.0 < v < 1.0, "between 0 and 1"),
        "growth_interval": (lambda v: v >= 1, ">= 1"),
        "_growth_tracker": (lambda v: v >= 0, ">= 0"),
    }
    for name, value in settings.items():
        ok, allowed = checks[name]
        if not ok(value):  # NaN fails every check
            raise ValueError(f"{owner}: {name} must be {allowed}, not {value!r}")


class GradScaler:
    """Dynamic loss scaling for float16 training, with PyTorch's ``GradScaler`` interface.

    Each step: ``scaler.scale(loss).backward()``, ``scaler.step(optimizer)``,
    ``scaler.update()``. ``step`` divides the gradients by the scale, checks them for inf/NaN
    (one check per step: one host read per backend), and runs ``optimizer.update()`` — hooks
    included, which so see true gradients — only if they are finite. ``update`` halves the
    scale after a skipped step and doubles it after ``growth_interval`` clean steps in a row.

    Parameters
    ----------
    init_scale : float, default 2.0**16
        The first scale.
    growth_factor : float, default 2.0
        Multiplies the scale after ``growth_interval`` steps without inf/NaN.
    backoff_factor : float, default 0.5
        Multiplies the scale after a step with inf/NaN gradients.
    growth_interval : int, default 2000
        Clean steps between two growths.
    enabled : bool, default True
        False makes every method a pass-through (``step`` just updates).

    Raises
    ------
    ValueError
        If ``init_scale`` is not positive, ``growth_factor`` not above 1, ``backoff_factor`` not
        between 0 and 1, or ``growth_interval`` below 1.
    TypeError
        If ``growth_interval`` is not an int.

    Examples
    --------
    A step whose gradients overflowed is skipped and the scale backs off:

    >>> import agrad
    >>> from agrad import amp
    >>> backend = agrad.current_backend()
    >>> p = agrad.Parameter(backend.asarray([1.0, 2.0]))
    >>> optimizer = agrad.optimizers.SGD(lr=0.5).setup(p)
    >>> scaler = amp.GradScaler(init_scale=4.0)
    >>> p.grad = agrad.Variable(backend.asarray([float("inf"), 4.0]))
    >>> scaler.step(optimizer), p
    (False, variable([1. 2.]))
    >>> scaler.update()
    >>> scaler.get_scale()
    2.0
    >>> p.grad = agrad.Variable(backend.asarray([2.0, 4.0]))  # d(2 * loss)
    >>> scaler.step(optimizer), p
    (True, variable([0.5 1. ]))
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ) -> None:
        _check_settings(
            "GradScaler",
            {
                "init_scale": init_scale,
                "growth_factor": growth_factor,
                "backoff_factor": backoff_factor,
                "growth_interval": growth_interval,
            },
        )
        self._scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = growth_interval
        self._enabled = bool(enabled)
        self._growth_tracker = 0  # clean steps since the last growth or backoff
        # id(optimizer) -> whether its gradients had inf/NaN, for the step in progress
        self._found_inf: dict[int, bool] = {}
        # ids of the optimizers stepped since the last update (a second step would apply the
        # same gradients twice)
        self._stepped: set[int] = set()

    # -- the three calls of a step ---------------------------------------------------------------
    def scale(self, outputs: Any) -> Any:
        """``outputs`` (a Variable, or a list/tuple of them) times the current scale.

        A float16 output is cast to float32 first, where the scale cannot overflow it.

        Parameters
        ----------
        outputs : Variable or sequence of Variable
            The loss (or losses).

        Returns
        -------
        Variable or list of Variable
            The scaled loss, to call ``backward()`` on (a tuple for a tuple); ``outputs``
            unchanged when the scaler is disabled.

        Raises
        ------
        TypeError
            If ``outputs`` (or one of them) is not a Variable.

        Examples
        --------
        >>> import agrad
        >>> from agrad import amp
        >>> loss = agrad.Variable(agrad.current_backend().asarray(1.5))
        >>> amp.GradScaler(init_scale=8.0).scale(loss)
        variable(12.0)
        """
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(v) for v in outputs)
        if not isinstance(outputs, Variable):
            raise TypeError(f"GradScaler.scale: expected a Variable, not {type(outputs).__name__}")
        if not self._enabled:
            return outputs
        if str(outputs.dtype).rsplit(".", 1)[-1] in _LOW_PRECISION:
            outputs = astype(outputs, outputs.backend.dtype("float32"))
        return outputs * self._scale

    def unscale_(self, optimizer: Any) -> bool:
        """Divide the gradients of ``optimizer``'s parameters by the scale, once per step.

        ``step`` calls it when you have not; call it yourself to read or edit true gradients
        between ``backward`` and ``step`` (gradient clipping by hand, logging).

        Parameters
        ----------
        optimizer : agrad.optimizers.Optimizer
            Set up with its parameters.

        Returns
        -------
        bool
            Whether the gradients are all finite.

        Raises
        ------
        RuntimeError
            If called twice for the same optimizer in one step.
        NotImplementedError
            If ``optimizer`` is an ``agrad.distributed`` multi-node optimizer: it averages the
            gradients after this check, so processes could disagree on skipping a step.

        Examples
        --------
        >>> import agrad
        >>> from agrad import amp
        >>> p = agrad.Parameter(agrad.current_backend().asarray([1.0]))
        >>> p.grad = agrad.Variable(agrad.current_backend().asarray([8.0]))
        >>> scaler = amp.GradScaler(init_scale=4.0)
        >>> scaler.unscale_(agrad.optimizers.SGD().setup(p)), p.grad
        (True, variable([2.]))
        """
        if not self._enabled:
            return True
        if "actual_optimizer" in vars(optimizer):
            # agrad.distributed averages the gradients inside update(), after this check: each
            # process would decide alone whether to skip, and the processes would fall apart
            raise NotImplementedError(
                f"GradScaler: {type(optimizer).__name__} averages gradients inside update(), "
                "after the scaler's inf/NaN check, so processes could disagree on skipping a "
                "step; loss scaling with agrad.distributed is not supported yet"
            )
        key = id(optimizer)
        if key in self._found_inf:
            raise RuntimeError(
                "GradScaler.unscale_: already called for this optimizer since the last update()"
            )
        if active_trace() is not None:
            raise TraceError(
                "agrad.jit: GradScaler skips a step on inf/NaN gradients by reading a flag on "
                "the host, which a replay cannot repeat; jit the forward and backward (scaled "
                "loss included) and call scaler.step(optimizer) and scaler.update() after the "
                "jitted call"
            )
        inverse = 1.0 / self._scale
        flags: dict[Backend, Any] = {}
        for param in optimizer._params():
            grad = param.grad
            if grad is None:
                continue
            data = grad.data if isinstance(grad, Variable) else grad
            if not is_differentiable_dtype(data.dtype):
                continue
            backend = backend_of(data)
            xp = backend.xp
            # a new Variable: one gradient Variable may be shared by several parameters
            data = backend.from_result(data * inverse)
            param.grad = Variable(data)
            flag = xp.all(xp.isfinite(data))
            previous = flags.get(backend)
            flags[backend] = flag if previous is None else xp.logical_and(previous, flag)
        finite = all(bool(flag) for flag in flags.values())  # the step's one host read
        self._found_inf[key] = not finite
        return finite

    def step(self, optimizer: Any) -> bool:
        """Unscale the gradients (unless ``unscale_`` did) and update if they are finite.

        Parameters
        ----------
        optimizer : agrad.optimizers.Optimizer
            Any optimizer; its hooks run inside ``update()`` on unscaled gradients.

        Returns
        -------
        bool
            True if the optimizer updated the parameters, False if the step was skipped.

        Raises
        ------
        NotImplementedError
            If ``optimizer`` is an ``agrad.distributed`` multi-node optimizer (see
            :meth:`unscale_`).
        RuntimeError
            If ``step(optimizer)`` already ran since the last :meth:`update` (as PyTorch).

        Examples
        --------
        More in :class:`GradScaler`:

        >>> import agrad
        >>> from agrad import amp
        >>> p = agrad.Parameter(agrad.current_backend().asarray([1.0]))
        >>> p.grad = agrad.Variable(agrad.current_backend().asarray([4.0]))  # d(4 * loss)
        >>> amp.GradScaler(init_scale=4.0).step(agrad.optimizers.SGD(lr=0.5).setup(p)), p
        (True, variable([0.5]))
        """
        if not self._enabled:
            optimizer.update()
            return True
        key = id(optimizer)
        if key in self._stepped:
            raise RuntimeError(
                "GradScaler.step: step(optimizer) was already called for this optimizer since "
                "the last update(); call scaler.update() once after each step (a second step "
                "would apply the same gradients again)"
            )
        if key not in self._found_inf:
            self.unscale_(optimizer)
        self._stepped.add(key)
        if self._found_inf[key]:
            return False
        optimizer.update()
        return True

    def update(self, new_scale: float | None = None) -> None:
        """Adjust the scale for the next step, from what this step's ``step`` calls found.

        Parameters
        ----------
        new_scale : float, optional
            Set the scale to this instead (the growth count restarts).

        Raises
        ------
        RuntimeError
            If no ``step``/``unscale_`` ran since the last update (and ``new_scale`` is None).
        ValueError
            If ``new_scale`` is not positive.

        Examples
        --------
        >>> from agrad import amp
        >>> scaler = amp.GradScaler()
        >>> scaler.update(new_scale=1024.0)
        >>> scaler.get_scale()
        1024.0
        """
        if not self._enabled:
            return
        if new_scale is not None:
            if not new_scale > 0:
                raise ValueError(f"GradScaler.update: new_scale must be > 0, not {new_scale!r}")
            self._scale = float(new_scale)
            self._growth_tracker = 0
            self._found_inf.clear()
            self._stepped.clear()
            return
        if not self._found_inf:
            raise RuntimeError(
                "GradScaler.update: no step(optimizer) or unscale_(optimizer) since the last "
                "update(), so there is no inf/NaN check to adjust the scale from"
            )
        if any(self._found_inf.values()):
            self._scale *= self._backoff_factor
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self._growth_interval:
                self._scale *= self._growth_factor
                self._growth_tracker = 0
        self._found_inf.clear()
        self._stepped.clear()

    # -- state -----------------------------------------------------------------------------------
    def get_scale(self) -> float:
        """The current scale (1.0 when disabled).

        Returns
        -------
        float
            What :meth:`scale` multiplies the loss by.

        Examples
        --------
        >>> from agrad import amp
        >>> amp.GradScaler().get_scale(), amp.GradScaler(enabled=False).get_scale()
        (65536.0, 1.0)
        """
        return self._scale if self._enabled else 1.0

    def is_enabled(self) -> bool:
        """Whether the scaler scales (``enabled`` at construction).

        Returns
        -------
        bool
            The ``enabled`` argument it was made with.

        Examples
        --------
        >>> from agrad import amp
        >>> amp.GradScaler(enabled=False).is_enabled()
        False
        """
        return self._enabled

    def state_dict(self) -> dict[str, Any]:
        """The scale and its schedule, for a checkpoint (PyTorch's keys).

        Returns
        -------
        dict
            ``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval`` and
            ``_growth_tracker``; empty when the scaler is disabled.

        Examples
        --------
        >>> from agrad import amp
        >>> state = amp.GradScaler(init_scale=128.0).state_dict()
        >>> state["scale"], state["growth_interval"]
        (128.0, 2000)
        """
        if not self._enabled:
            return {}
        return {
            "scale": self._scale,
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._growth_tracker,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Parameters
        ----------
        state : dict
            A :meth:`state_dict` of an enabled scaler (PyTorch's ``GradScaler`` has the same
            keys).

        Raises
        ------
        RuntimeError
            If ``state`` is empty (saved from a disabled scaler).
        KeyError
            If one of the keys is missing.
        TypeError, ValueError
            If a value is one the constructor refuses (a scale <= 0, say); nothing is changed.

        Examples
        --------
        >>> from agrad import amp
        >>> saved = amp.GradScaler(init_scale=128.0).state_dict()
        >>> scaler = amp.GradScaler()
        >>> scaler.load_state_dict(saved)
        >>> scaler.get_scale()
        128.0
        """
        if not state:
            raise RuntimeError("GradScaler.load_state_dict: the state is empty (saved disabled?)")
        names = ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
        # everything checked before anything is assigned: a bad state leaves the scaler as it was
        _check_settings("GradScaler.load_state_dict", {name: state[name] for name in names})
        self._scale = float(state["scale"])
        self._growth_factor = float(state["growth_factor"])
        self._backoff_factor = float(state["backoff_factor"])
        self._growth_interval = int(state["growth_interval"])
        self._growth_tracker = int(state["_growth_tracker"])
