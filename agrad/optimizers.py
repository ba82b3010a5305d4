"""Optimizers and their hooks, with DeZero's names and defaults.

``optimizer = Adam().setup(model)``; after ``loss.backward()``, ``optimizer.update()`` runs the
hooks on every parameter that has a gradient, then updates each one. Per-parameter state (moments,
accumulators) lives on the parameter's backend and follows it when the model moves.

As in DeZero, updates write into ``param.data`` in place where the array allows it (NumPy, CuPy
and array-api-strict all have in-place operators; it saves an allocation per step, about 30% of
an SGD step on large arrays); a read-only array is replaced by a new one instead.

Examples
--------
>>> import agrad
>>> import agrad.functions as F
>>> from agrad import optimizers
>>> model = agrad.models.MLP((5, 1))
>>> optimizer = optimizers.Adam().setup(model)
>>> optimizer.add_hook(optimizers.WeightDecay(1e-4))
>>> x = agrad.current_backend().asarray([[1.0, 2.0]], dtype="float32")
>>> loss = F.sum(model(x) ** 2)
>>> model.cleargrads()
>>> loss.backward()
>>> optimizer.update()
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from agrad.backends import Backend, backend_for_type, backend_of
from agrad.core import Parameter

__all__ = [
    "Optimizer",
    "SGD",
    "MomentumSGD",
    "AdaGrad",
    "AdaDelta",
    "Adam",
    "WeightDecay",
    "ClipGrad",
    "FreezeParam",
]


def _setting(
    owner: str,
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    *,
    open_high: bool = False,
    open_low: bool = False,
) -> Any:
    """``value`` if it is a real number in the allowed range, else an error naming it; checked
    once, when the optimizer or hook is made, so that updates pay nothing for it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, not {value!r}")
    above = value > low if open_low else value >= low
    below = value < high if open_high else value <= high
    if not (above and below):  # NaN fails both
        left = f"{low} < {name}" if open_low else f"{low} <= {name}"
        right = "" if high == math.inf else (f" < {high}" if open_high else f" <= {high}")
        raise ValueError(f"{owner}: {name}={value!r} is out of range (allowed: {left}{right})")
    return value


def _writable_backend(a: Any) -> Backend | None:
    """``a``'s backend if ``a`` takes an in-place update (its library has mutable arrays and
    ``a`` is no read-only array or broadcast view: PyTorch raises RuntimeError writing into
    one), else None."""
    backend = backend_for_type(type(a)) or backend_of(a)
    return backend if backend.mutable_arrays and backend.is_writable(a) else None


def _cast_like(out: Any, a: Any) -> Any:
    """``out`` in ``a``'s dtype, so that a parameter updated out of place keeps its own."""
    return out if out.dtype == a.dtype else backend_of(out).xp.astype(out, a.dtype)


def _iadd(a: Any, b: Any) -> Any:
    """``a + b``, written into ``a`` when its array allows (saves an allocation), else new.

    A read-only array, or a library without in-place operators, gets a new array, cast back to
    ``a``'s dtype so parameters keep theirs.
    """
    if _writable_backend(a) is not None:
        try:
            a += b
            return a
        except (TypeError, ValueError):
            pass
    return _cast_like(a + b, a)


def _isub(a: Any, b: Any) -> Any:
    """``a - b``, in place where possible (see ``_iadd``)."""
    if _writable_backend(a) is not None:
        try:
            a -= b
            return a
        except (TypeError, ValueError):
            pass
    return _cast_like(a - b, a)


def _isub_scaled(a: Any, scale: Any, b: Any) -> Any:
    """``a - scale * b``, written into ``a`` by its backend's ``subtract_scaled`` where
    possible (see ``_iadd``)."""
    backend = _writable_backend(a)
    if backend is not None:
        try:
            return backend.subtract_scaled(a, scale, b)
        except (TypeError, ValueError):
            pass
    return _cast_like(a - scale * b, a)


def _imul(a: Any, b: float) -> Any:
    """``a * b``, in place where possible (see ``_iadd``)."""
    if _writable_backend(a) is not None:
        try:
            a *= b
            return a
        except (TypeError, ValueError):
            pass
    return a * b


# dtype -> whether it is floating point (real or complex)
_FLOATING: dict[tuple[type, Any], bool] = {}


def _slot(store: dict, param: Parameter, init: str = "zeros") -> Any:
    """The state array of ``param`` in ``store``, created (zeros) on the parameter's backend, and
    moved there if the parameter moved since the last update."""
    state = store.get(param)
    data = param.data
    if state is None:
        state = store[param] = backend_of(data).xp.zeros_like(data)
    elif type(state) is not type(data):
        state = store[param] = backend_of(data).asarray(state)
    return state


class Optimizer:
    """Base class: ``setup(target)``, ``update()``, ``add_hook(f)``; subclasses define
    ``update_one(param)``.

    Attributes
    ----------
    target : Layer, Parameter, iterable of Parameter or None
        What ``setup`` was given.
    hooks : list of callable
        Called with the list of parameters that have a gradient, in order, before each update.

    Examples
    --------
    A new rule needs only ``update_one``; it is called for each parameter that has a gradient:

    >>> import agrad
    >>> from agrad.optimizers import Optimizer
    >>> class SignSGD(Optimizer):
    ...     def __init__(self, lr=0.01):
    ...         super().__init__()
    ...         self.lr = lr
    ...
    ...     def update_one(self, param):
    ...         xp = param.xp
    ...         param.data = param.data - self.lr * xp.sign(param.grad.data)
    >>> backend = agrad.current_backend()
    >>> p = agrad.Parameter(backend.asarray([1.0, 2.0]))
    >>> p.grad = agrad.Variable(backend.asarray([3.0, -0.5]))
    >>> SignSGD(lr=0.5).setup(p).update()
    >>> p
    variable([0.5 2.5])
    """

    def __init__(self) -> None:
        self.target: Any = None
        self.hooks: list[Callable[[list[Parameter]], None]] = []

    def setup(self, target: Any) -> Optimizer:
        """Optimize the parameters of ``target`` (a Layer, or an iterable of Parameters).

        Parameters must be floating point: an integer one would be truncated by every update
        (``TypeError`` naming it, here for the initialised ones and in ``update`` for the rest).

        Parameters
        ----------
        target : Layer, Parameter or iterable of Parameter
            A model or layer (its ``params()`` are read at every update, so lazily created
            weights are included), one Parameter, or a list of them.

        Returns
        -------
        Optimizer
            ``self``, so that ``optimizer = SGD().setup(model)`` works.

        Examples
        --------
        >>> import agrad
        >>> model = agrad.models.MLP((3, 1))
        >>> optimizer = agrad.optimizers.SGD().setup(model)
        >>> optimizer.target is model
        True
        """
        if not (
            isinstance(target, Parameter)
            or callable(getattr(target, "params", None))
            or isinstance(target, Iterable)
        ):
            raise TypeError(
                f"{type(self).__name__}.setup: target must be a Layer/Model, a Parameter or an "
                f"iterable of Parameters, not {type(target).__name__} ({target!r:.60})"
            )
        if not isinstance(target, (Iterator, Parameter)) and not hasattr(target, "params"):
            for item in target:
                if not isinstance(item, Parameter):
                    raise TypeError(
                        f"{type(self).__name__}.setup: target holds {type(item).__name__} "
                        f"({item!r:.60}); expected Parameters only"
                    )
        self.target = target
        if not isinstance(target, Iterator):  # checking would use up a one-shot iterator
            self._check_floating([p for p in self._params() if p.data is not None])
        return self

    def _check_floating(self, params: list[Parameter]) -> None:
        """``TypeError`` naming the first parameter that is not floating point."""
        for param in params:
            dtype = param.data.dtype
            key = (type(dtype), dtype)  # the type first: backends' dtypes may hash alike
            floating = _FLOATING.get(key)
            if floating is None:  # isdtype costs microseconds; a step sees few distinct dtypes
                xp = backend_of(param.data).xp
                floating = xp.isdtype(dtype, ("real floating", "complex floating"))
                _FLOATING[key] = floating
            if not floating:
                raise TypeError(
                    f"{type(self).__name__}: parameter {self._describe(param)} has dtype "
                    f"{dtype}; optimizers update floating-point parameters only (an integer "
                    "parameter would be truncated at every step): make it floating, or keep "
                    "it out of the optimizer (a plain Variable, or FreezeParam)"
                )

    def _describe(self, param: Parameter) -> str:
        named = getattr(self.target, "named_params", None)
        if named is not None:
            for key, candidate in named():
                if candidate is param:
                    return repr(key)
        return repr(param.name) if param.name is not None else f"of shape {tuple(param.shape)}"

    def _params(self) -> Iterable[Parameter]:
        target = self.target
        if target is None:
            raise RuntimeError(f"{type(self).__name__}.update(): call setup(model) first")
        if isinstance(target, Parameter):
            return [target]
        params = getattr(target, "params", None)
        return params() if params is not None else target

    def update(self) -> None:
        """Run the hooks, then update every parameter that has a gradient.

        Parameters without a gradient (unused in the last backward, or dropped by a hook such as
        :class:`FreezeParam`) are left as they are.

        Raises
        ------
        RuntimeError
            If ``setup`` was not called.
        TypeError
            If a parameter with a gradient is not floating point (nothing is updated then).

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> p = agrad.Parameter(backend.asarray([1.0, 2.0]))
        >>> q = agrad.Parameter(backend.asarray([5.0]))  # no gradient: not updated
        >>> p.grad = agrad.Variable(backend.asarray([1.0, 1.0]))
        >>> agrad.optimizers.SGD(lr=0.5).setup([p, q]).update()
        >>> p, q
        (variable([0.5 1.5]), variable([5.]))
        >>> agrad.optimizers.SGD().update()
        Traceback (most recent call last):
          ...
        RuntimeError: SGD.update(): call setup(model) first
        """
        params = [p for p in self._params() if p.grad is not None]
        self._check_floating(params)
        self._begin_step()
        for hook in self.hooks:
            hook(params)
        # hooks may drop gradients (FreezeParam): those parameters stay as they are
        for param in params:
            if param.grad is not None:
                self.update_one(param)
        if params:
            backend = backend_of(params[0].data)
            if backend.lazy:
                self._persist(backend)

    def _persist(self, backend: Backend) -> None:
        """Compute every parameter (running statistics too) and every state array now, so that
        a lazy backend's graph covers one step rather than every step so far."""
        params = [p for p in self._params() if p.data is not None and backend.owns(p.data)]
        stores = [v for v in vars(self).values() if isinstance(v, dict)]
        slots = [(store, key) for store in stores for key, v in store.items() if backend.owns(v)]
        done = backend.persist([p.data for p in params] + [store[key] for store, key in slots])
        for param, data in zip(params, done[: len(params)]):
            param.data = data
        for (store, key), value in zip(slots, done[len(params) :]):
            store[key] = value

    def _begin_step(self) -> None:
        """Per-step bookkeeping, once the parameters are known to be updatable."""

    def update_one(self, param: Parameter) -> None:
        """Update one parameter from its gradient; every optimizer implements it.

        Parameters
        ----------
        param : Parameter
            A parameter whose ``grad`` is not None; its ``data`` is replaced or written in place.

        Raises
        ------
        NotImplementedError
            In the base class.
        """
        raise NotImplementedError(f"{type(self).__name__}.update_one is not implemented")

    # -- PyTorch's names --------------------------------------------------------------------
    def step(self) -> None:
        """PyTorch's name for :meth:`update`.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> p = agrad.Parameter(backend.asarray([1.0]))
        >>> p.grad = agrad.Variable(backend.asarray([2.0]))
        >>> agrad.optimizers.SGD(lr=0.5).setup(p).step()
        >>> p
        variable([0.])
        """
        self.update()

    def zero_grad(self) -> None:
        """Forget the gradient of every parameter of the target (PyTorch's name).

        Raises
        ------
        RuntimeError
            If ``setup`` was not called.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> p = agrad.Parameter(backend.asarray([1.0]))
        >>> p.grad = agrad.Variable(backend.asarray([2.0]))
        >>> agrad.optimizers.SGD().setup(p).zero_grad()
        >>> p.grad is None
        True
        """
        for param in self._params():
            param.cleargrad()

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state, to resume training later in this process (PyTorch's name).

        ``{"type": class name, "hyperparameters": {name: number}, "state": {slot: {param:
        array}}}``: the hyperparameters are every number the optimizer holds (learning rate,
        step count ``t``, ...); a slot is a per-parameter state (``vs``: MomentumSGD's
        velocities; ``ms``/``vs``: Adam's moments), keyed by the parameter's dotted name in
        the target (``l0.W``), or its position when the target is a list of Parameters. The
        arrays are copies on the parameters' backend.

        Returns
        -------
        dict
            For :meth:`load_state_dict`.

        Raises
        ------
        RuntimeError
            If ``setup`` was not called.
        ValueError
            If the state holds a parameter that is not in the target.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> p = agrad.Parameter(backend.asarray([1.0]))
        >>> p.grad = agrad.Variable(backend.asarray([2.0]))
        >>> optimizer = agrad.optimizers.MomentumSGD(lr=0.5).setup([p])
        >>> optimizer.update()
        >>> state = optimizer.state_dict()
        >>> state["type"], state["hyperparameters"], list(state["state"]["vs"])
        ('MomentumSGD', {'lr': 0.5, 'momentum': 0.9}, [0])
        >>> backend.to_host(state["state"]["vs"][0]).tolist()  # the velocity of parameter 0
        [-1.0]
        """
        names = self._param_names()
        hyperparameters, slots = _split_state(self)
        state: dict[str, dict] = {}
        for slot, store in slots.items():
            entries = state[slot] = {}
            for param, array in store.items():
                name = names.get(id(param))
                if name is None:
                    raise ValueError(
                        f"{type(self).__name__}.state_dict: state {slot!r} holds a parameter "
                        f"{self._describe(param)} that is not in the target"
                    )
                entries[name] = backend_of(array).xp.asarray(array, copy=True)
        return {"type": type(self).__name__, "hyperparameters": hyperparameters, "state": state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave, all or nothing (PyTorch's name).

        Everything is checked before anything changes: the optimizer type, the names of the
        hyperparameters and slots, the hyperparameters' values (number types, and whatever
        the constructor refuses), that each entry names a parameter of the target (run the
        model once, or load its ``state_dict``, so that its parameters exist), and each
        array's shape and dtype (cast to the parameter's dtype where NumPy's ``same_kind``
        rule allows, as ``load_weights``). The arrays are copied onto each parameter's
        backend.

        Parameters
        ----------
        state : dict
            As :meth:`state_dict` returns.

        Raises
        ------
        TypeError
            If ``state`` has the wrong structure, was saved from another optimizer type, or
            holds a value of the wrong type.
        ValueError
            If a name, a shape or a hyperparameter's value does not fit.
        RuntimeError
            If ``setup`` was not called.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> p = agrad.Parameter(backend.asarray([1.0]))
        >>> p.grad = agrad.Variable(backend.asarray([2.0]))
        >>> first = agrad.optimizers.Adam().setup([p])
        >>> first.update()
        >>> second = agrad.optimizers.Adam().setup([p])
        >>> second.load_state_dict(first.state_dict())
        >>> second.t
        1
        >>> agrad.optimizers.SGD().setup([p]).load_state_dict(first.state_dict())
        Traceback (most recent call last):
          ...
        TypeError: SGD.load_state_dict: the state was saved from 'Adam', not from 'SGD' ...
        """
        hyperparameters, slots = _checked_state(self, state)
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        for slot, store in slots.items():
            setattr(self, slot, store)

    def _param_names(self) -> dict[int, Any]:
        """id(param) -> its dotted name in the target, or its position in a list."""
        named = getattr(self.target, "named_parameters", None)
        if named is not None:
            return {id(param): name for name, param in named()}
        return {id(param): i for i, param in enumerate(self._params())}

    def add_hook(self, f: Callable[[list[Parameter]], None]) -> None:
        """Call ``f(params)`` before each update (``WeightDecay``, ``ClipGrad``, ...).

        Parameters
        ----------
        f : callable
            Receives the list of parameters that have a gradient. Hooks run in the order they
            were added; one may change ``param.grad`` (rebind ``param.grad.data`` rather than
            writing into it: a gradient array can be shared by several parameters) or set it to
            None to skip that parameter.

        Examples
        --------
        >>> import agrad
        >>> seen = []
        >>> backend = agrad.current_backend()
        >>> p = agrad.Parameter(backend.asarray([1.0]))
        >>> p.grad = agrad.Variable(backend.asarray([1.0]))
        >>> optimizer = agrad.optimizers.SGD().setup(p)
        >>> optimizer.add_hook(lambda params: seen.append(len(params)))
        >>> optimizer.update()
        >>> seen
        [1]
        """
        if not callable(f):
            raise TypeError(
                f"{type(self).__name__}.add_hook: f must be a callable taking the list of "
                f"parameters (WeightDecay(1e-4), ClipGrad(1.0), ...), not {f!r}"
            )
        self.hooks.append(f)


# -- state_dict ---------------------------------------------------------------------------------
# What an optimizer's state is, read from its attributes (so a new optimizer needs nothing more):
# plain numbers are hyperparameters and counters; dicts keyed by Parameter are per-parameter
# slots. ``target`` and ``hooks`` are the setup, not the state.
_NOT_STATE = ("target", "hooks")


def _split_state(optimizer: Optimizer) -> tuple[dict[str, Any], dict[str, dict]]:
    """(hyperparameters, slots) of ``optimizer``: ``name -> number`` and ``name -> dict``."""
    hyperparameters, slots = {}, {}
    for name, value in vars(optimizer).items():
        if name in _NOT_STATE:
            continue
        if isinstance(value, dict) and all(isinstance(k, Parameter) for k in value):
            slots[name] = value
        elif isinstance(value, (bool, int, float)) or value is None:
            hyperparameters[name] = value
    return hyperparameters, slots


def _checked_state(optimizer: Optimizer, state: Any) -> tuple[dict[str, Any], dict[str, dict]]:
    """The hyperparameters and slots ``state`` gives ``optimizer``, every entry checked and its
    array converted (a copy on its parameter's backend and dtype); raises naming the first
    problem, and changes nothing."""
    from agrad.layers import _cast_for_loading  # the rules of load_weights

    kind = type(optimizer).__name__
    where = f"{kind}.load_state_dict"
    if not isinstance(state, dict) or set(state) != {"type", "hyperparameters", "state"}:
        raise TypeError(
            f"{where}: state must be a dict with the keys 'type', 'hyperparameters' and "
            f"'state', as state_dict() returns, not {_describe_value(state)}"
        )
    if state["type"] != kind:
        raise TypeError(
            f"{where}: the state was saved from {state['type']!r}, not from {kind!r} (an "
            "optimizer loads only its own type's state)"
        )
    own_hyper, own_slots = _split_state(optimizer)
    given_hyper, given_slots = state["hyperparameters"], state["state"]
    if not isinstance(given_hyper, dict) or not isinstance(given_slots, dict):
        raise TypeError(f"{where}: 'hyperparameters' and 'state' must be dicts")
    for what, own, given in (
        ("hyperparameters", own_hyper, given_hyper),
        ("state slots", own_slots, given_slots),
    ):
        if set(own) != set(given):
            raise ValueError(
                f"{where}: the {what} differ: missing {sorted(set(own) - set(given))}, "
                f"unexpected {sorted(set(given) - set(own))}"
            )
    settings = _constructor_parameters(optimizer)
    for name, value in given_hyper.items():
        current = own_hyper[name]
        if current is None or isinstance(current, bool):
            fits = value is None or isinstance(value, bool)
        elif isinstance(current, int) and name not in settings:
            # a counter the optimizer keeps itself (Adam's step t)
            fits = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        else:
            fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not fits:
            allowed = (
                "a count (an int >= 0)"
                if isinstance(current, int)
                and not isinstance(current, bool)
                and name not in settings
                else f"of the type the optimizer holds ({type(current).__name__})"
            )
            raise TypeError(f"{where}: hyperparameter {name!r} must be {allowed}, not {value!r}")
    _constructor_accepts(optimizer, given_hyper, where)
    params = {name: param for param, name in _names_to_params(optimizer)}
    slots: dict[str, dict] = {}
    for slot, entries in given_slots.items():
        if not isinstance(entries, dict):
            raise TypeError(f"{where}: state {slot!r} must be a dict of parameter -> array")
        store = slots[slot] = {}
        for name, value in entries.items():
            param = params.get(name)
            if param is None:
                raise ValueError(
                    f"{where}: state {slot!r} names {name!r}, which is not a parameter of the "
                    f"target (its parameters: {', '.join(map(repr, params)) or 'none'})"
                )
            if param.data is None:
                raise ValueError(
                    f"{where}: parameter {name!r} is not initialised yet; run the model once "
                    "(or load its state_dict) before the optimizer's state"
                )
            source = backend_of(value, None)
            if source is None:
                raise TypeError(
                    f"{where}: state {slot!r} of {name!r} must be an array, not "
                    f"{_describe_value(value)}"
                )
            array = source.to_host(value)
            if tuple(array.shape) != tuple(param.data.shape):
                raise ValueError(
                    f"{where}: state {slot!r} of {name!r} has shape {tuple(array.shape)}, the "
                    f"parameter {tuple(param.data.shape)}"
                )
            target = param.backend
            dtype_name = target.dtype_name(param.data.dtype)
            array = _cast_for_loading(where, f"{slot}/{name}", array, dtype_name)
            store[param] = target.asarray(array.copy())  # never shared with the caller's dict
    return dict(given_hyper), slots


def _names_to_params(optimizer: Optimizer) -> list[tuple[Parameter, Any]]:
    names = optimizer._param_names()
    return [(param, names[id(param)]) for param in optimizer._params() if id(param) in names]


def _constructor_parameters(optimizer: Optimizer, required: bool = False) -> set[str]:
    """The names the optimizer's constructor takes by keyword (only those without a default
    when ``required``)."""
    try:
        signature = inspect.signature(type(optimizer).__init__)
    except (TypeError, ValueError):
        return set()
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = {
        name
        for name, p in signature.parameters.items()
        if p.kind in keyword and (not required or p.default is inspect.Parameter.empty)
    }
    return names - {"self"}


def _constructor_accepts(optimizer: Optimizer, hyperparameters: dict, where: str) -> None:
    """Build a new optimizer of the same type from the hyperparameters its constructor takes,
    so that a value the constructor refuses is refused here too (skipped when the constructor
    needs an argument the state does not hold under the same name)."""
    settings = _constructor_parameters(optimizer)
    kwargs = {name: value for name, value in hyperparameters.items() if name in settings}
    if not _constructor_parameters(optimizer, required=True) <= set(kwargs):
        return
    try:
        type(optimizer)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from exc


def _describe_value(value: Any) -> str:
    return repr(value) if isinstance(value, (bool, int, float, str)) else type(value).__name__


# -- hooks --------------------------------------------------------------------------------------
# Hooks rebind ``grad.data`` instead of writing into it: one gradient array can be shared by
# several parameters (``x + y`` passes the same gradient to both).


class WeightDecay:
    """L2 regularisation: adds ``rate * param`` to each gradient.

    Parameters
    ----------
    rate : float
        The coefficient; ``rate * param`` is the gradient of ``rate / 2 * sum(param ** 2)``.

    Examples
    --------
    >>> import agrad
    >>> from agrad import optimizers
    >>> backend = agrad.current_backend()
    >>> p = agrad.Parameter(backend.asarray([10.0]))
    >>> p.grad = agrad.Variable(backend.asarray([1.0]))
    >>> optimizer = optimizers.SGD(lr=0.1).setup(p)
    >>> optimizer.add_hook(optimizers.WeightDecay(0.5))
    >>> optimizer.update()  # grad 1 + 0.5 * 10 = 6
    >>> p
    variable([9.4])
    """

    def __init__(self, rate: float) -> None:
        self.rate = _setting("WeightDecay", "rate", rate, 0.0)

    def __call__(self, params: list[Parameter]) -> None:
        """Add ``rate * param.data`` to the gradient of each of ``params``."""
        for param in params:
            param.grad.data = param.grad.data + self.rate * param.data


class ClipGrad:
    """Scale all gradients down together when their global L2 norm exceeds ``max_norm``.

    Parameters
    ----------
    max_norm : float
        The largest L2 norm of all gradients taken together; larger ones are scaled by
        ``max_norm / norm``, which keeps their direction.

    Examples
    --------
    >>> import agrad
    >>> from agrad import optimizers
    >>> backend = agrad.current_backend()
    >>> p = agrad.Parameter(backend.asarray([0.0, 0.0]))
    >>> p.grad = agrad.Variable(backend.asarray([3.0, 4.0]))  # norm 5
    >>> optimizer = optimizers.SGD(lr=1.0).setup(p)
    >>> optimizer.add_hook(optimizers.ClipGrad(1.0))
    >>> optimizer.update()
    >>> [round(v, 4) for v in agrad.cuda.as_numpy(p).tolist()]
    [-0.6, -0.8]
    """

    def __init__(self, max_norm: float) -> None:
        self.max_norm = _setting("ClipGrad", "max_norm", max_norm, 0.0)

    def __call__(self, params: list[Parameter]) -> None:
        """Scale the gradients of ``params`` so that their global norm is at most ``max_norm``."""
        if not params:
            return
        grads = [param.grad.data for param in params]
        backends = {backend_of(g) for g in grads}
        if len(backends) > 1:
            self._clip_across_backends(params)
            return
        # On one backend the scale is computed where the gradients are and always applied
        # (min(rate, 1)), as PyTorch's clip_grad_norm_ does: deciding "rate < 1" on the host
        # would wait for the GPU at every step.
        xp = backends.pop().xp
        total = xp.sum(grads[0] * grads[0])
        for g in grads[1:]:
            total = total + xp.sum(g * g)
        rate = self.max_norm / (xp.sqrt(total) + 1e-6)
        rate = xp.minimum(rate, xp.ones_like(rate))
        for param, g in zip(params, grads):
            param.grad.data = g * xp.astype(rate, g.dtype)

    def _clip_across_backends(self, params: list[Parameter]) -> None:
        # one partial sum per backend, so each device is waited for once, not once per parameter
        partial: dict[Any, Any] = {}
        for param in params:
            g = param.grad.data
            backend = backend_of(g)
            s = backend.xp.sum(g * g)
            partial[backend] = s if backend not in partial else partial[backend] + s
        total_norm = math.sqrt(sum(float(s) for s in partial.values()))
        rate = self.max_norm / (total_norm + 1e-6)
        if rate < 1:
            for param in params:
                param.grad.data = param.grad.data * rate


class FreezeParam:
    """Keep the parameters of the given layers (or Parameters) fixed: their gradients are dropped
    before the update.

    Parameters
    ----------
    *layers : Layer or Parameter
        What to freeze. A layer's parameters are collected when the hook is created, so a
        layer whose weights are created lazily must have run on an input first.

    Examples
    --------
    >>> import agrad
    >>> from agrad import optimizers
    >>> backend = agrad.current_backend()
    >>> frozen = agrad.Parameter(backend.asarray([1.0]))
    >>> trained = agrad.Parameter(backend.asarray([1.0]))
    >>> for p in (frozen, trained):
    ...     p.grad = agrad.Variable(backend.asarray([1.0]))
    >>> optimizer = optimizers.SGD(lr=0.5).setup([frozen, trained])
    >>> optimizer.add_hook(optimizers.FreezeParam(frozen))
    >>> optimizer.update()
    >>> frozen, trained
    (variable([1.]), variable([0.5]))
    """

    def __init__(self, *layers: Any) -> None:
        self.freeze_params: list[Parameter] = []
        for item in layers:
            if isinstance(item, Parameter):
                self.freeze_params.append(item)
            else:
                self.freeze_params.extend(item.params())

    def __call__(self, params: list[Parameter]) -> None:
        """Drop the gradients of the frozen parameters."""
        for param in self.freeze_params:
            param.grad = None


# -- optimizers ---------------------------------------------------------------------------------


class SGD(Optimizer):
    """Stochastic gradient descent: ``param -= lr * grad``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.

    Examples
    --------
    >>> import agrad
    >>> backend = agrad.current_backend()
    >>> p = agrad.Parameter(backend.asarray([1.0, 2.0]))
    >>> p.grad = agrad.Variable(backend.asarray([10.0, -10.0]))
    >>> agrad.optimizers.SGD(lr=0.01).setup(p).update()
    >>> p
    variable([0.9 2.1])
    """

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.lr = _setting("SGD", "lr", lr, 0.0)

    def update_one(self, param: Parameter) -> None:
        """``param -= lr * grad``."""
        param.data = _isub_scaled(param.data, self.lr, param.grad.data)


class MomentumSGD(Optimizer):
    """SGD with momentum: ``v = momentum * v - lr * grad; param += v``.

    Parameters
    ----------
    lr : float, default 0.01
        The learning rate.
    momentum : float, default 0.9
        How much of the previous step is kept.

    Examples
    --------
    >>> import agrad
    >>> backend = agrad.current_backend()
    >>> p = agrad.Parameter(backend.asarray([0.0]))
    >>> optimizer = agrad.optimizers.MomentumSGD(lr=0.1, momentum=0.5).setup(p)
    >>> for _ in range(2):  # the same gradient twice: the second step is 1.5 times the first
    ...     p.grad = agrad.Variable(backend.asarray([1.0]))
    ...     optimizer.update()
    >>> p
    variable([-0.25])
    """

    def __init__(self, lr: float = 0.01, momentum: float = 0.9) -> None:
        super().__init__()
        self.lr = _setting("MomentumSGD", "lr", lr, 0.0)
        self.momentum = _setting("MomentumSGD", "momentum", momentum, 0.0)
        self.vs: dict[Parameter, Any] = {}

    def update_one(self, param: Parameter) -> None:
        """One momentum step for ``param``."""
        v = _imul(_slot(self.vs, param), self.momentum)
        v = self.vs[param] = _isub_scaled(v, self.lr, param.grad.data)
        param.data = _iadd(param.data, v)


class AdaGrad(Optimizer):
    """AdaGrad: the step shrinks with the sum of squared gradients seen so far.

    ``h += grad * grad; param -= lr * grad / (sqrt(h) + eps)``, elementwise.

    Parameters
    ----------
    lr : float, default 0.001
        The learning rate.
    eps : float, default 1e-8
        Keeps the division finite.

    Examples
    --------
    >>> import agrad
    >>> backend = agrad.current_backend()
    >>> p = agrad.Parameter(backend.asarray([1.0, 1.0]))
    >>> p.grad = agrad.Variable(backend.asarray([100.0, 0.01]))
    >>> agrad.optimizers.AdaGrad(lr=0.1).setup(p).update()  # a first step of lr, at any scale
    >>> [round(v, 4) for v in agrad.cuda.as_numpy(p).tolist()]
    [0.9, 0.9]
    """

    def __init__(self, lr: float = 0.001, eps: float = 1e-8) -> None:
        super().__init__()
        self.lr = _setting("AdaGrad", "lr", lr, 0.0)
        self.eps = _setting("AdaGrad", "eps", eps, 0.0)
        self.hs: dict[Parameter, Any] = {}

    def update_one(self, param: Parameter) -> None:
        """One AdaGrad step for ``param``."""
        grad = param.grad.data
        h = self.hs[param] = _iadd(_slot(self.hs, param), grad * grad)
        xp = backend_of(grad).xp
        param.data = _isub(param.data, self.lr * grad / (xp.sqrt(h) + self.eps))


class AdaDelta(Optimizer):
    """AdaDelta: step sizes from running averages of squared gradients and squared steps.

    It has no learning rate: the step is ``sqrt(E[dx**2] + eps) / sqrt(E[g**2] + eps) * grad``.

    Parameters
    ----------
    rho : float, default 0.95
        The decay of both running averages.
    eps : float, default 1e-6
        Sets the size of the first steps and keeps the division finite.

    Examples
    --------
    >>> import agrad
    >>> backend = agrad.current_backend()
    >>> p = agrad.Parameter(backend.asarray([1.0]))
    >>> p.grad = agrad.Variable(backend.asarray([1.0]))
    >>> agrad.optimizers.AdaDelta().setup(p).update()
    >>> 0.99 < float(p.data[0]) < 1.0
    True
    """

    def __init__(self, rho: float = 0.95, eps: float = 1e-6) -> None:
        super().__init__()
        self.rho = _setting("AdaDelta", "rho", rho, 0.0, 1.0)
        self.eps = _setting("AdaDelta", "eps", eps, 0.0)
        self.msg: dict[Parameter, Any] = {}
        self.msdx: dict[Parameter, Any] = {}

    def update_one(self, param: Parameter) -> None:
        """One AdaDelta step for ``param``."""
        rho, eps = self.rho, self.eps
        grad = param.grad.data
        xp = backend_of(grad).xp
        msg = _imul(_slot(self.msg, param), rho)
        msg = self.msg[param] = _iadd(msg, (1 - rho) * grad * grad)
        msdx = _slot(self.msdx, param)
        dx = xp.sqrt((msdx + eps) / (msg + eps)) * grad
        msdx = _imul(msdx, rho)
        self.msdx[param] = _iadd(msdx, (1 - rho) * dx * dx)
        param.data = _isub(param.data, dx)


class Adam(Optimizer):
    """Adam with bias correction folded into the learning rate (the ``lr`` property).

    Parameters
    ----------
    alpha : float, default 0.001
        The step size.
    beta1 : float, default 0.9
        Decay of the running mean of the gradients.
    beta2 : float, default 0.999
        Decay of the running mean of the squared gradients.
    eps : float, default 1e-8
        Keeps the division finite.

    Examples
    --------
    Adam's first step moves every parameter by about ``alpha``, whatever its gradient's scale:

    >>> import agrad
    >>> backend = agrad.current_backend()
    >>> p = agrad.Parameter(backend.asarray([1.0, 1.0]))
    >>> p.grad = agrad.Variable(backend.asarray([1000.0, -0.001]))
    >>> optimizer = agrad.optimizers.Adam(alpha=0.1).setup(p)
    >>> optimizer.update()
    >>> [round(v, 4) for v in agrad.cuda.as_numpy(p).tolist()]
    [0.9, 1.1]
    >>> optimizer.t
    1
    """

    def __init__(
        self, alpha: float = 0.001, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ) -> None:
        super().__init__()
        self.t = 0
        self.alpha = _setting("Adam", "alpha", alpha, 0.0)
        self.beta1 = _setting("Adam", "beta1", beta1, 0.0, 1.0, open_high=True)
        self.beta2 = _setting("Adam", "beta2", beta2, 0.0, 1.0, open_high=True)
        self.eps = _setting("Adam", "eps", eps, 0.0)
        self.ms: dict[Parameter, Any] = {}
        self.vs: dict[Parameter, Any] = {}
        self._lr = alpha

    def _begin_step(self) -> None:
        """Count the step (``t``) before the hooks run and every parameter is updated."""
        self.t += 1
        self._lr = self._rate(self.t)  # the same for every parameter of this step

    def _rate(self, t: Any) -> Any:
        # operators only (no math.sqrt, no max): under agrad.jit ``t`` and the betas are
        # traced numbers, and the rate is recomputed at each replay
        fix1 = 1.0 - self.beta1**t
        fix2 = 1.0 - self.beta2**t
        return self.alpha * fix2**0.5 / fix1

    @property
    def lr(self) -> float:
        """``alpha * sqrt(1 - beta2**t) / (1 - beta1**t)``, the step size with bias correction.

        Before the first update (``t == 0``, where the formula divides by zero; DeZero raises
        ``ZeroDivisionError``) it is the rate the first update will use.

        Examples
        --------
        >>> import agrad
        >>> adam = agrad.optimizers.Adam(alpha=0.1)
        >>> round(adam.lr, 5)  # sqrt(1 - 0.999) / (1 - 0.9) * alpha, for the first step
        0.03162
        """
        return self._rate(max(self.t, 1))

    def update_one(self, param: Parameter) -> None:
        """One Adam step for ``param``, with the learning rate of the current step."""
        beta1, beta2 = self.beta1, self.beta2
        grad = param.grad.data
        xp = backend_of(grad).xp
        m = _slot(self.ms, param)
        m = self.ms[param] = _iadd(m, (1 - beta1) * (grad - m))
        v = _slot(self.vs, param)
        v = self.vs[param] = _iadd(v, (1 - beta2) * (grad * grad - v))
        param.data = _isub(param.data, self._lr * m / (xp.sqrt(v) + self.eps))
