"""``agrad.jit``: trace a function once per signature, then replay it as a flat array program."""

from __future__ import annotations

import enum
import functools
import gc
import inspect
import itertools
import re
import types
import warnings
from collections import OrderedDict
from typing import Any

from agrad import backends as _backends
from agrad.backends import backend_for_type
from agrad.config import (
    _active_trace,
    _autocast_dtype,
    _detect_anomaly,
    _enable_backprop,
    _train,
)
from agrad.core import Function, RemovableHandle, Variable
from agrad.layers import Layer
from agrad.tracing import program as _program
from agrad.tracing import state as _state
from agrad.tracing.tracer import (
    LARGE,
    Released,
    Trace,
    TraceError,
    Tracer,
    elements,
    traced_backend,
)

MISS = object()
_ROOTS = ("self", "closure", "globals", "args", "kwargs", "defaults")


class JitWarning(UserWarning):
    """``agrad.jit`` ran a function eagerly, or a trace changed Python state a replay will not.

    Examples
    --------
    >>> import agrad
    >>> issubclass(agrad.tracing.JitWarning, UserWarning)
    True
    """


_CALLABLES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)


def _arg_key(x: Any) -> Any:
    t = type(x)
    if backend_for_type(t) is not None:  # an array: the common case first
        return (t, tuple(x.shape), x.dtype)
    if t is Variable or isinstance(x, Variable):
        data = x.data
        return (t, None) if data is None else (t, type(data), tuple(data.shape), data.dtype)
    if t is tuple or t is list:
        return (t, *[_arg_key(item) for item in x])
    if t is dict:
        return (t, *[(k, _arg_key(v)) for k, v in x.items()])
    if _state._is_array(x):
        return (t, tuple(x.shape), x.dtype)
    if x is None or t in (int, float, bool, str, complex, bytes):
        return (t, x)
    if isinstance(x, (int, float, str)) or _state.is_library_scalar(x):  # NumPy's: by value
        return (t, x)
    if _is_namedtuple(x):
        return (t, *[_arg_key(item) for item in x])
    # a function, a class, an enum member, an object that compares by value (a frozen
    # dataclass): by value, as another one may take another path through the function
    if isinstance(x, (_CALLABLES, enum.Enum)) or (
        t.__eq__ is not object.__eq__ and t.__hash__ is not None
    ):
        try:
            hash(x)
            return (t, x)
        except TypeError:  # (holds an array, say)
            pass
    return (t,)  # any other object: read through, its settings checked as a layer's


def _lift_args(x: Any, trace: Trace, path: tuple, inputs: list, roots: list) -> Any:
    """``x`` with its arrays replaced by input tracers; Variables and objects kept (their state
    is searched from ``roots``)."""
    t = type(x)
    if t is tuple or t is list or _is_namedtuple(x):
        return _rebuilt(
            x, [_lift_args(v, trace, (*path, ("i", i)), inputs, roots) for i, v in enumerate(x)]
        )
    if t is dict:
        return {k: _lift_args(v, trace, (*path, ("i", k)), inputs, roots) for k, v in x.items()}
    if _state._is_array(x):
        tracer = trace.input(x)
        inputs.append((tracer._slot, path, None))
        return tracer
    if x is not None and not isinstance(x, (int, float, str, bytes, complex)):
        roots.append((path, x))
    return x


def _place_guard(value: Any) -> tuple:
    if value is _state.ABSENT:
        return ("absent",)
    if value is None:
        return ("none",)
    if isinstance(value, Tracer):
        value = value._value
    if isinstance(value, Variable):
        return ("var",)
    if _state._is_array(value):
        return ("array", type(value), tuple(value.shape), value.dtype)
    if isinstance(value, bool):
        return ("is", value)
    if _state._is_number(value):
        return ("num", type(value))
    return ("any",)


def _materialize(value: Any, done: set[int]) -> Any:
    """``value`` with tracers replaced by their values (in place in lists, dicts, Variables)."""
    if isinstance(value, Tracer):
        return value._value
    if id(value) in done:
        return value
    t = type(value)
    if t is tuple or _is_namedtuple(value):
        return _rebuilt(value, [_materialize(v, done) for v in value])
    if t is list:
        done.add(id(value))
        value[:] = [_materialize(v, done) for v in value]
    elif t is dict:
        done.add(id(value))
        for k, v in value.items():
            value[k] = _materialize(v, done)
    elif isinstance(value, Variable):
        done.add(id(value))
        value.data = _materialize(value.data, done)
        value.grad = _materialize(value.grad, done)
    return value


class _EntryBuilder:
    """Generates the function that checks one trace's guards, replays it and writes back."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {"MISS": MISS, "V": _new_variable}
        self.lines: list[Any] = []
        self.objects: dict[tuple, str] = {}
        self.paths: dict[int, tuple] = {}  # id of an object met before the trace -> its path
        for i, root in enumerate(_ROOTS):
            self.objects[(("r", root),)] = f"r{i}"

    def const(self, value: Any) -> str:
        name = f"k{len(self.names)}"
        self.names[name] = value
        return name

    def step_expr(self, base: str, step: tuple) -> str:
        kind, key = step
        if kind == "a":
            return f"{base}.{key}" if key.isidentifier() else f"getattr({base}, {key!r})"
        return f"{base}[{self._key(key)}]"

    def obj(self, path: tuple) -> str:
        name = self.objects.get(path)
        if name is None:
            base = self.obj(path[:-1])
            name = f"o{len(self.objects)}"
            self.lines.append(f"{name} = {self.step_expr(base, path[-1])}")
            self.objects[path] = name
        return name

    def guard(self, expr: str, spec: tuple, container: str, step: tuple) -> list[str]:
        kind = spec[0]
        if kind == "absent":
            if step[0] == "a":
                return [f"if hasattr({container}, {step[1]!r}): return MISS"]
            return [f"if {self._key(step[1])} in {container}: return MISS"]
        if kind == "none":
            return [f"if {expr} is not None: return MISS"]
        if kind == "notnone":
            return [f"if {expr} is None: return MISS"]
        if kind == "var":
            return [f"if not isinstance({expr}, {self.const(Variable)}): return MISS"]
        if kind == "array":
            _, t, shape, dtype = spec
            return [
                f"if type({expr}) is not {self.const(t)} or tuple({expr}.shape) != {shape!r} "
                f"or {expr}.dtype != {self.const(dtype)}: return MISS"
            ]
        if kind == "num":
            return [f"if type({expr}) is not {self.const(spec[1])}: return MISS"]
        if kind == "is":
            return [f"if {expr} is not {spec[1]!r}: return MISS"]
        if kind == "same":  # the very object (a function, or what another path reaches)
            return [f"if {expr} is not {spec[1]}: return MISS"]
        if kind == "type":
            return [f"if type({expr}) is not {self.const(spec[1])}: return MISS"]
        if kind == "eq":
            value = spec[1]
            literal = repr(value) if type(value) in (int, float, str) else self.const(value)
            return [
                f"if type({expr}) is not {self.const(type(value))} or {expr} != {literal}: "
                "return MISS"
            ]
        if kind == "len":
            return [f"if len({expr}) != {spec[1]}: return MISS"]
        return []

    def _key(self, key: Any) -> str:
        if type(key) in (int, str):
            return repr(key)
        path = self.paths.get(id(key))
        if path is not None:
            # an object key (an optimizer's slots are keyed by Parameter): the object found
            # at the same place at this call, so that another model's call uses its own
            return self.obj(path)
        return self.const(key)


def _structure_guards(b: _EntryBuilder, pre: Any, post: Any, placed: dict) -> list[tuple]:
    """Guards that the layers and optimizers the trace went through are arranged as they were:
    the same settings (``training``, a number, a string, an activation function), the same
    sub-layers, parameters and hooks in the same places, lists and dicts of the same length.

    Without them a replay would silently run the old program after ``model.layers.append``,
    ``optimizer.add_hook`` or ``model.activation = F.tanh``. What the trace itself rebinds (a
    layer's last inputs) is a write, not a guard; what the program reads is guarded as an input.
    """
    owners = {
        cid
        for cid, (obj, path, _) in pre.containers.items()
        if isinstance(obj, Layer) or _state._optimizer_like(obj) or _argument_object(obj, path)
    }
    held = {  # the lists and dicts they hold: a model's layers, the hooks, a layer's registry
        id(value)
        for (cid, _), value in pre.places.items()
        if cid in owners and type(value) in (list, dict) and id(value) in pre.containers
    }
    guards: list[tuple] = []
    for cid in owners:
        owner, path, _ = pre.containers[cid]
        expr = b.obj(path)  # (another class there, an Adam for an SGD, runs another program)
        guards.append((expr, ("type", type(owner)), expr, ("type", None)))
        if isinstance(owner, Layer) and "training" not in vars(owner):
            # the class's default until train() or eval() sets the layer's own: read either way
            expr = b.obj((*path, ("a", "training")))
            guards.append((expr, ("is", owner.training), expr, ("structure", None)))
    for place in pre.order:
        cid, step = place
        value = pre.places[place]
        # (an optimizer's hooks lift their numbers, as optimizers do: their other settings
        # are checked as a layer's are)
        lifts_numbers = pre.containers[cid][2]
        if (cid not in owners and cid not in held and not lifts_numbers) or place in placed:
            continue
        if post.places.get(place, _state.ABSENT) is not value:
            continue  # rebound by the trace: written back, not checked
        if cid in held and type(pre.containers[cid][0]) is dict and id(value) not in pre.containers:
            continue  # a registry's entries: its length is checked
        here = (*pre.containers[cid][1], step)
        size = pre.sizes.get(id(value))  # a list's or dict's length before the trace
        same_size = size is not None and len(value) == size  # (what the trace appends, replays do)
        specs: list[tuple] = []
        if value is None or isinstance(value, bool):
            specs.append(("is", value))
        elif type(value) in (int, float, str) or _state.is_library_scalar(value):
            # (a library's scalar, an `lr` of NumPy's float32 say, is not an input as a Python
            # number is: it keeps its dtype in arithmetic, so the program depends on its type)
            if value == value:  # (NaN equals nothing)
                specs.append(("eq", value))
        elif isinstance(value, _CALLABLES):
            specs.append(("same", b.const(value)))
        elif id(value) in pre.containers and not isinstance(value, Variable):
            canonical = pre.containers[id(value)][1]
            if canonical != here:
                specs.append(("same", b.obj(canonical)))
            elif size is None:
                specs.append(("type", type(value)))
            if same_size:  # (what is in it is checked item by item)
                specs.append(("len", size))
        if specs:
            expr = b.obj(here)
            guards += [(expr, spec, expr, (spec[0], None)) for spec in specs]
    # a list or dict of Variables or arrays (a hand-written parameter list) is state too: one
    # more or one fewer item is another program
    holders = {
        cid
        for (cid, _), value in pre.places.items()
        if cid not in held and (isinstance(value, Variable) or _state._is_array(value))
    }
    for cid in holders:
        obj, path, _ = pre.containers[cid]
        size = pre.sizes.get(cid)
        if size is not None and len(path) > 1 and len(obj) == size:
            expr = b.obj(path)
            guards.append((expr, ("len", size), expr, ("len", None)))
    guards += _identity_guards(b, pre, post)
    return guards


def _argument_object(obj: Any, path: tuple) -> bool:
    """An object of the user's passed as an argument (a config, a namespace): its settings are
    checked as a layer's, since another call may pass one set otherwise."""
    return (
        path[0] in (("r", "args"), ("r", "kwargs"))
        and hasattr(obj, "__dict__")
        and not isinstance(obj, (Variable, types.FunctionType, types.MethodType, type))
    )


def _identity_guards(b: _EntryBuilder, pre: Any, post: Any) -> list[tuple]:
    """Guards that the Variables the trace reached are the same objects, one per place as at
    the trace: weights tied (``b.W = a.W``) or untied between calls change the program."""
    variables = {
        cid: path for cid, (obj, path, _) in pre.containers.items() if isinstance(obj, Variable)
    }
    guards: list[tuple] = []
    for place in pre.order:
        value = pre.places[place]
        canonical = variables.get(id(value))
        if canonical is None or post.places.get(place, _state.ABSENT) is not value:
            continue
        here = (*pre.containers[place[0]][1], place[1])
        if canonical != here:  # a second place of one Variable (tied weights)
            expr = b.obj(here)
            guards.append((expr, ("same", b.obj(canonical)), expr, ("same", None)))
    for path, first in pre.root_aliases:  # one object passed as two arguments, say
        expr = b.obj(path)
        guards.append((expr, ("same", b.obj(first)), expr, ("same", None)))
    if len(variables) > 1:  # and distinct ones still distinct
        ids = ", ".join(f"id({b.obj(path)})" for path in variables.values())
        guards.append((f"{{{ids}}}", ("len", len(variables)), "variables", ("distinct", None)))
    return guards


def _new_variable(data: Any, name: Any) -> Variable:
    v = Variable.__new__(Variable)
    v.data, v.name, v.grad, v.node = data, name, None, None
    return v


class Entry:
    """One trace: its guards, program and write-back, as one generated function.

    The function is compiled at its first replay, not at the trace: a first call pays only
    for recording, and a signature that is never replayed never pays for compiling.
    """

    def __init__(self, source: str, namespace: dict, filename: str, program: Any, n_ops: int):
        self.source = source
        self.program = program
        self.n_ops = n_ops
        self._namespace = namespace  # (the compiled function's globals)
        self._filename = filename

    def run(self, *roots: Any) -> Any:
        """Compile the entry, then call it (the compiled function replaces this method)."""
        if "run" not in self._namespace:  # (two threads may both compile it: same function)
            exec(compile(self.source, self._filename, "exec"), self._namespace)
        self.run = self._namespace["run"]  # type: ignore[method-assign]
        return self.run(*roots)


class Jitted:
    """A function compiled by :func:`agrad.jit`; call it as the function itself."""

    def __init__(self, fn: Any, max_cache: int = 64) -> None:
        if not callable(fn):
            raise TypeError(f"agrad.jit: expected a function, not {type(fn).__name__}")
        if inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn):
            # (a call only makes the generator: the trace would record nothing it runs)
            kind = "a generator" if inspect.isgeneratorfunction(fn) else "a coroutine"
            raise TypeError(
                f"agrad.jit: {getattr(fn, '__qualname__', fn)!s} is {kind} function, whose "
                "body runs after the call returns; jit a function that computes the step"
            )
        if isinstance(max_cache, bool) or not isinstance(max_cache, int) or max_cache < 1:
            raise ValueError(f"agrad.jit: max_cache must be a positive int, not {max_cache!r}")
        self.fn = fn
        self.max_cache = max_cache
        self._cache: OrderedDict[Any, list[Entry]] = OrderedDict()
        self.traces = 0
        functools.update_wrapper(self, fn)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)

    def __repr__(self) -> str:
        return f"<agrad.jit of {getattr(self.fn, '__qualname__', self.fn)!r}>"

    # -- the cache ----------------------------------------------------------------------------
    def cache_info(self) -> dict[str, int]:
        """How many signatures and traces the cache holds, and how often it traced.

        Examples
        --------
        >>> import agrad
        >>> f = agrad.jit(lambda x: x * 2)
        >>> _ = f(agrad.current_backend().asarray([1.0]))
        >>> f.cache_info()["traces"]
        1
        """
        return {
            "signatures": len(self._cache),
            "entries": sum(len(v) for v in self._cache.values()),
            "traces": self.traces,
            "max_cache": self.max_cache,
        }

    def cache_clear(self) -> None:
        """Forget every trace: the next call traces again."""
        self._cache.clear()

    def _signature(self, args: tuple, kwargs: dict) -> Any:
        return (
            _enable_backprop.get(),
            _train.get(),
            _autocast_dtype.get(),
            _backends.current_backend().name,
            RemovableHandle.changes,
            tuple([_arg_key(a) for a in args]),
            tuple([(k, _arg_key(v)) for k, v in kwargs.items()]) if kwargs else (),
        )

    def _function_roots(self) -> tuple:
        """``(owner, closure cells, globals, defaults)`` of the function: where its state is."""
        fn = self.fn
        owner = fn.__self__ if isinstance(fn, types.MethodType) else None
        func = fn.__func__ if isinstance(fn, types.MethodType) else fn
        if not isinstance(func, types.FunctionType):  # a callable object: its __call__
            owner, func = func, vars(type(func)).get("__call__")
            # (a Function's own copy of Function.__call__ is agrad's code, not the user's)
            if not isinstance(func, types.FunctionType) or getattr(func, "_own_call", False):
                return (owner, (), {}, ())
        return (owner, func.__closure__ or (), func.__globals__, func.__defaults__ or ())

    def _roots(self, args: tuple, kwargs: dict) -> tuple:
        owner, closure, globals_, defaults = self._function_roots()
        return (owner, closure, globals_, args, kwargs, defaults)

    # -- calling ------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _active_trace.get() is not None:  # inside another jit: becomes part of its trace
            return self.fn(*args, **kwargs)
        if _detect_anomaly.get():
            warnings.warn(
                "agrad.jit: anomaly detection is on, so the function runs eagerly (its checks "
                "read every result on the host)",
                JitWarning,
                stacklevel=2,
            )
            return self.fn(*args, **kwargs)
        key = self._signature(args, kwargs)
        entries = self._cache.get(key)
        if entries is not None:
            owner, closure, globals_, defaults = self._function_roots()
            for entry in entries:
                result = entry.run(owner, closure, globals_, args, kwargs, defaults)
                if result is not MISS:
                    return result
        # Everything a trace allocates (tracers, steps, the first call's arrays) lives until
        # its program is built, so the cyclic collector's passes over it free nothing and cost
        # up to twice an eager call on long traces: it waits until the program is built.
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            return self._trace(key, args, kwargs, self._roots(args, kwargs))
        finally:
            if collecting:
                gc.enable()

    def _trace(self, key: Any, args: tuple, kwargs: dict, roots: tuple) -> Any:
        owner, closure, globals_, _, _, defaults = roots
        trace = Trace()
        inputs: list[tuple[int, tuple, Any]] = []  # (slot, container path, step or None)
        walk_roots: list[tuple[tuple, Any]] = []
        targs = _lift_args(args, trace, (("r", "args"),), inputs, walk_roots)
        tkwargs = _lift_args(kwargs, trace, (("r", "kwargs"),), inputs, walk_roots)
        # the lists and dicts passed are copies holding tracers: what the function changes in
        # them would not reach the caller's (checked after the call)
        passed = _mutable_parts(targs, [])
        for value in tkwargs.values():
            _mutable_parts(value, passed)
        n_arg_inputs = len(inputs)
        if owner is not None:
            walk_roots.insert(0, ((("r", "self"),), owner))
        walk_roots += [((("r", "closure"),), closure), ((("r", "defaults"),), defaults)]
        fn_obj = self.fn.__func__ if isinstance(self.fn, types.MethodType) else self.fn
        if isinstance(fn_obj, types.FunctionType):
            walk_roots.append(((("r", "function"),), fn_obj))
        pre = _state.walk(walk_roots, globals_)
        pre.containers.pop(id(fn_obj), None)
        # lift the arrays found in assignable places, and the optimizers' numbers
        lifted: dict[int, Tracer] = {}
        placed: dict[tuple, tuple[Tracer, int]] = {}
        numbers = set(_state.number_places(pre))
        for place in pre.order:
            cid, step = place
            container, path, _ = pre.containers[cid]
            value = pre.places[place]
            if _state._is_array(value) or place in numbers:
                tracer = lifted.get(id(value)) if place not in numbers else None
                if tracer is None:
                    tracer = trace.input(value)
                    inputs.append((tracer._slot, path, step))
                    if place not in numbers:
                        lifted[id(value)] = tracer
                _state.assign(container, step, tracer)
                placed[place] = (tracer, tracer._slot)
        # A state Variable with a history (an RNN's hidden state, made by the previous call)
        # is a leaf of this trace: the program's gradient stops at it, and the call's node
        # passes that gradient on to the history, as eager backward does.
        detached = [
            (v, v.node, v.grad)
            for (cid, step) in placed
            if step == ("a", "data")
            and isinstance(v := pre.containers[cid][0], Variable)
            and v.node is not None
            and v.node.creator is not None
        ]
        for v, _, _ in detached:
            v.node = None
        default = _backends._default.get() or _backends.current_backend()
        token = _backends._default.set(traced_backend(default))  # type: ignore[arg-type]
        try:
            try:
                with trace:
                    result = self.fn(*targs, **tkwargs)
                    if any(_changed(container, items) for container, items in passed):
                        raise TraceError(
                            "agrad.jit: the function changed a list or dict it was passed "
                            "(an append, an item set); a jitted function gets a copy of those "
                            "arguments, whose arrays are the program's inputs, so the change "
                            "would not reach yours: return the new values instead"
                        )
                    if trace.refused is not None:  # raised, and caught by the function
                        raise TraceError(
                            f"{trace.refused} (The function caught this error and went on, "
                            "so what it did instead would be replayed as if it were always "
                            "right.)"
                        ) from trace.refused
                    post = _state.walk([*walk_roots, ((("r", "ret"),), result)], globals_)
                    diff = None
                    if trace.backward_calls == 0 and _enable_backprop.get():
                        stored = _stored_variables(post, pre)
                        if stored or _connected(result):
                            # the build reads the values this backward reads: they stay
                            trace.sweeping = False
                            diff = _trace_backward(trace, result, stored, pre, placed)
            finally:
                reached = False
                for v, node, grad in detached:
                    v.node = node
                    if trace.backward_calls and v.grad is not grad:
                        reached, v.grad = True, grad  # (a leaf's gradient only in this trace)
            if reached:
                raise TraceError(
                    "agrad.jit: backward inside the jitted function reached a Variable made "
                    "before the call that has a history of its own (an RNN's hidden state, "
                    "say), which a replay cannot follow; cut it first (h.unchain() or "
                    "reset_state()), or call backward outside the jitted function"
                )
        except BaseException:
            _backends._default.reset(token)
            self._restore(_state.walk(walk_roots, globals_), None, pre, placed)
            raise
        _backends._default.reset(token)
        try:
            entry = self._build(trace, pre, post, placed, inputs, n_arg_inputs, result, diff)
        finally:
            # the places after the trace are those the build saw: no need to walk them again
            result = self._restore(post, result, pre, placed)
        if diff is not None:  # the first call's outputs hang on the same node as replays'
            result = _substitute(result, self._first_outputs)
            for place in post.order:  # (and so does the state the call stored: RNN's `h`)
                new = self._first_outputs.get(id(post.places[place]))
                if new is not None:
                    _state.assign(post.containers[place[0]][0], place[1], new)
            self._first_outputs = {}
        self.traces += 1
        entries = self._cache.setdefault(key, [])
        entries.insert(0, entry)
        self._cache.move_to_end(key)
        while sum(len(v) for v in self._cache.values()) > self.max_cache:
            oldest = next(iter(self._cache))
            self._cache[oldest].pop()
            if not self._cache[oldest]:
                del self._cache[oldest]
        return result

    def _restore(self, snap: _state.Snapshot, result: Any, pre: Any, placed: dict) -> Any:
        """Put the first call's real arrays back where the trace left tracers: in what the
        function reaches now (``snap``), and where tracers were put before it ran (``placed``),
        which it may no longer reach (a gradient it cleared, that the caller still holds)."""
        done: set[int] = set()
        for cid, step in placed:
            container = pre.containers[cid][0]
            value = _state.read(container, step)
            if isinstance(value, Tracer):
                _state.assign(container, step, value._value)
        for place in snap.order:
            cid, step = place
            container = snap.containers[cid][0]
            value = snap.places[place]
            if isinstance(value, (Tracer, tuple, list, dict, Variable)):
                new = _materialize(value, done)
                if new is not value:
                    _state.assign(container, step, new)
        return _materialize(result, done)

    # -- building the replay ------------------------------------------------------------------
    def _build(self, trace, pre, post, placed, inputs, n_arg_inputs, result, diff) -> Entry:
        b = _EntryBuilder()
        b.paths = {cid: path for cid, (_, path, _) in pre.containers.items()}
        outputs: list[int] = []
        out_index: dict[int, int] = {}

        def out(slot: int) -> str:
            if slot not in out_index:
                out_index[slot] = len(outputs)
                outputs.append(slot)
            return f"outs[{out_index[slot]}]"

        new_vars: dict[int, str] = {}
        store: list[str] = []

        node_outputs = {id(v): i for i, v in enumerate(diff.outputs)} if diff else {}

        def build(value: Any) -> str:
            if isinstance(value, Tracer):
                return out(value._slot)
            if id(value) in node_outputs:
                return f"ys[{node_outputs[id(value)]}]"
            if isinstance(value, Variable):
                if id(value) in pre.containers:
                    return b.obj(pre.containers[id(value)][1])
                name = new_vars.get(id(value))
                if name is None:
                    if value.grad is not None:
                        raise TraceError(
                            "agrad.jit: a Variable made inside the function has a gradient "
                            "of its own; agrad.jit cannot replay that"
                        )
                    data = build(value.data)
                    name = f"n{len(new_vars)}"
                    new_vars[id(value)] = name
                    store.append(f"{name} = V({data}, {value.name!r})")
                return name
            if value is None or type(value) in (int, float, bool, str):
                return (
                    repr(value)
                    if not isinstance(value, float) or value == value
                    else b.const(value)
                )
            if id(value) in pre.containers:
                return b.obj(pre.containers[id(value)][1])
            t = type(value)
            if t is tuple:
                return "(" + "".join(f"{build(v)}, " for v in value) + ")"
            if _is_namedtuple(value):
                return f"{b.const(t)}(" + ", ".join(build(v) for v in value) + ")"
            if t is list:
                return "[" + ", ".join(build(v) for v in value) + "]"
            if t is dict:
                return "{" + ", ".join(f"{b._key(k)}: {build(v)}" for k, v in value.items()) + "}"
            if _holds_traced(value, pre.containers):
                # its attributes would be the first call's at every replay
                raise TraceError(
                    f"agrad.jit: the function returned a {t.__name__} made while it ran that "
                    "holds Variables or arrays it computed; a replay rebuilds tuples "
                    "(namedtuples too), lists and dicts of them: return one of those, or "
                    "build the object from what the call returns"
                )
            return b.const(value)

        # guards: the state each input is read from, every Variable's data and grad, and every
        # place written (what was there before)
        guards: list[tuple[str, tuple, str, tuple]] = []
        state_reads: dict[int, tuple[str, str, tuple]] = {}  # slot -> (expr, container, step)
        for slot, path, step in inputs[n_arg_inputs:]:
            container = b.obj(path)
            expr = b.step_expr(container, step)
            b.lines.append(("read", slot, expr))
            state_reads[slot] = (expr, container, step)
        for slot, path, _ in inputs[:n_arg_inputs]:
            b.lines.append(("read", slot, b.obj(path)))
        for cid, (obj, path, _) in pre.containers.items():
            if isinstance(obj, Variable):
                container = b.obj(path)
                for attr in ("data", "grad"):
                    step = ("a", attr)
                    value = pre.places.get((cid, step))
                    if (cid, step) in placed:
                        continue  # guarded as an input
                    guards.append(
                        (b.step_expr(container, step), _place_guard(value), container, step)
                    )
        guards += _structure_guards(b, pre, post, placed)
        # an array found at several places (two Parameters given one array) is one input, read
        # at the first: each other place must still hold that very array, or a replay would
        # read the first one's value for it
        first_places: dict[int, tuple] = {}
        aliases: list[tuple[int, tuple, tuple]] = []  # (slot, place, first place)
        for place, (_, slot) in placed.items():
            first = first_places.setdefault(slot, place)
            if first != place:
                aliases.append((slot, place, first))
        writes: list[tuple[str, tuple, Any]] = []
        replaced: list[tuple[str, str, Any]] = []  # (Variable, old gradient, its data's slot)
        side_effects = []
        for place in post.order:
            cid, step = place
            if cid not in pre.containers:
                continue
            container_obj, path, _ = pre.containers[cid]
            if (
                not isinstance(container_obj, (Variable, dict, list))
                and not hasattr(container_obj, "__dict__")
                and type(container_obj) is not types.CellType
            ):
                continue
            new = post.places[place]
            old = pre.places.get(place, _state.ABSENT)
            original = placed.get(place)
            if isinstance(new, Tracer):
                if original is not None and new is original[0] and new._slot == original[1]:
                    continue
            elif new is old or (original is not None and new is original[0]):
                continue
            if _state._is_number(old) and _state._is_number(new) and original is None:
                side_effects.append((path, step, old, new))
                continue
            if not (new is None or _replayable(new, pre.containers)):
                if _holds_traced(new, pre.containers) and not isinstance(new, Layer):
                    # (a layer made while tracing is rebuilt by tracing again: the lengths of
                    # its owner's registries are checked)
                    raise TraceError(
                        f"agrad.jit: the function stored a {type(new).__name__} made while it "
                        f"ran that holds Variables or arrays it computed, at "
                        f"{_describe(path, step)}: replays would leave the first call's there. "
                        "Store a tuple (a namedtuple too), list or dict of them, or return "
                        "the values and store them after the call"
                    )
                # a Python object the trace stored (a layer's weak references to its last
                # inputs, say, or a setting made once: `in_size`, None before): Python state,
                # which replays leave as the trace left it. A plain value appended to a list (a
                # log) or replacing another (a string, a tuple) is reported, as numbers are
                appended = type(container_obj) is list and old is _state.ABSENT
                if _plain(new) and (appended or (old is not None and _plain(old) and old != new)):
                    side_effects.append((path, step, old, new))
                continue
            container = b.obj(path)
            if type(container_obj) is list and old is _state.ABSENT:
                writes.append((container, ("append", None), new))  # list.append, replayed
                continue
            guards.append((b.step_expr(container, step), _place_guard(old), container, step))
            writes.append((container, step, new))
            if (
                step == ("a", "grad")
                and isinstance(container_obj, Variable)
                and isinstance(old, Variable)
                and id(old) in pre.containers
            ):
                # a gradient the step replaces: where the program does not read it (after
                # cleargrad), dropped before the replay, not after it, so that it is not held
                # beside the new one (eager frees it at cleargrad)
                read = placed.get((id(old), ("a", "data")))
                old_name = b.obj(pre.containers[id(old)][1])
                replaced.append((container, old_name, None if read is None else read[1]))
        for place in pre.order:
            if place not in post.places and place[0] in post.containers:
                container_obj, path, _ = pre.containers[place[0]]
                container = b.obj(path)
                guards.append(
                    (
                        b.step_expr(container, place[1]),
                        _place_guard(pre.places[place]),
                        container,
                        place[1],
                    )
                )
                writes.append((container, place[1], _state.ABSENT))
        if side_effects:
            named = ", ".join(
                f"{_describe(p, s)} {'(new)' if o is _state.ABSENT else repr(o)} -> {n!r}"
                for p, s, o, n in side_effects[:3]
            )
            warnings.warn(
                f"agrad.jit: tracing changed Python values ({named}); a replay does not "
                "repeat Python side effects, only array operations (keep such counters "
                "and logs outside the jitted function)",
                JitWarning,
                stacklevel=4,
            )
        for container, step, new in writes:
            if new is _state.ABSENT:
                if step[0] == "a":
                    store.append(f"delattr({container}, {step[1]!r})")
                else:
                    store.append(f"del {container}[{b._key(step[1])}]")
                continue
            value = build(new)
            if step[0] == "append":
                store.append(f"{container}.append({value})")
            else:
                store.append(f"{b.step_expr(container, step)} = {value}")
        returned = build(result)
        all_ops = trace.ops
        if diff is not None:
            all_ops = trace.ops[: diff.boundary]
            backward_ops, dying, reads = _program.prune(trace.ops[diff.boundary :], diff.grad_slots)
            residuals = sorted(reads.difference(diff.gy_slots))
            backward_program = _compiled(
                trace, backward_ops, residuals + diff.gy_slots, diff.grad_slots
            ) or _program.Replay(
                backward_ops,
                dying,
                residuals + diff.gy_slots,
                diff.grad_slots,
                len(trace.values),
                *_large(trace.values, dying),
                name="backward",
            )
            # tuple displays, each element followed by a comma ("()" when there is none)
            res = "".join(f"{out(s)}, " for s in residuals)
            ys = "".join(f"{out(v.data._slot)}, " for v in diff.outputs)
            wrt = "".join(f"{b.obj(path)}, " for path in diff.wrt_paths)
            maker = b.const(functools.partial(_replayed_node, backward_program, diff))
            store.insert(0, f"ys = {maker}(({res}), ({ys}), ({wrt}))")
            # the first call's result: the same node over the values the trace computed
            first = _replayed_node(
                backward_program,
                diff,
                [trace.values[s] for s in residuals],
                [v.data._value for v in diff.outputs],
                [_find(pre, path) for path in diff.wrt_paths],
            )
            self._first_outputs = {id(v): y for v, y in zip(diff.outputs, first)}
        # the program: inputs in order, the outputs the writes and the result need
        ops, dying, reads = _program.prune(all_ops, outputs)
        used = reads.union(outputs)
        input_slots = [slot for slot, _, _ in inputs if slot in used]
        unmade = reads.difference(input_slots)
        if unmade:
            raise AssertionError(f"agrad.jit: slots {sorted(unmade)} are read but never made")
        # a state input the program does not read is only checked to be there
        read_guards = []
        for slot, (expr, container, step) in state_reads.items():
            spec = _place_guard(trace.values[slot])
            if slot in used:
                read_guards.append((f"a{slot}", spec, container, step))
            elif spec[0] == "array":
                read_guards.append((expr, ("notnone",), container, step))
        replay = _compiled(trace, ops, input_slots, outputs) or _program.Replay(
            ops, dying, input_slots, outputs, len(trace.values), *_large(trace.values, dying)
        )
        b.names["replay"] = replay
        params = ", ".join(f"r{i}" for i in range(len(_ROOTS)))
        # (before the body: the objects these guards name become lines of it)
        for slot, (cid, step), (first_cid, first_step) in aliases:
            if slot in used:  # (an input the program does not read may be anything)
                container = b.obj(pre.containers[cid][1])
                first = b.step_expr(b.obj(pre.containers[first_cid][1]), first_step)
                expr = b.step_expr(container, step)
                guards.append((expr, ("same", first), container, ("alias", step)))
        body = ["try:"]
        for line in b.lines:
            if isinstance(line, tuple):
                if line[1] not in used:
                    continue
                line = f"a{line[1]} = {line[2]}"
            body.append(f"    {line}")
        # the guards are inside the `try` too: a place that changed may hold what a guard's
        # expression cannot read (a gradient that is None now), which is a miss as well
        seen_guards = set()
        for expr, spec, container, step in read_guards + guards:
            if (container, step) in seen_guards:
                continue
            seen_guards.add((container, step))
            body += [f"    {line}" for line in b.guard(expr, spec, container, step)]
        body += ["except (AttributeError, LookupError, TypeError, ValueError):", "    return MISS"]
        written = "\n".join(store)
        dropped = set()
        for variable, old, data_slot in replaced:
            if data_slot in used or old in dropped or re.search(rf"\b{old}\b", written):
                continue  # (the program or the write-back reads it, or it is dropped already)
            dropped.add(old)
            body += [f"{variable}.grad = None", f"del {old}"]
        body.append(f"outs = replay({', '.join(f'a{s}' for s in input_slots)})")
        body += store
        body.append(f"return {returned}")
        source = f"def run({params}):\n" + "".join(f"    {line}\n" for line in body)
        name = getattr(self.fn, "__qualname__", None) or type(self.fn).__name__  # (a partial)
        filename = f"<agrad.jit entry of {name}>"
        return Entry(source, dict(b.names), filename, replay, len(ops))


def _describe(path: tuple, step: tuple) -> str:
    parts = [p[1] if p[0] != "i" else f"[{p[1]!r}]" for p in (*path, step)]
    return ".".join(str(p) for p in parts).replace(".[", "[")


def _connected(result: Any) -> bool:
    """Whether ``result`` holds a Variable with a creator that wants gradients."""
    if isinstance(result, Variable):
        node = result.node
        return node is not None and node.creator is not None and node.requires_grad
    if isinstance(result, (tuple, list)):
        return any(_connected(v) for v in result)
    if isinstance(result, dict):
        return any(_connected(v) for v in result.values())
    return False


def _compiled(trace: Trace, ops: list, input_slots: list, outputs: list) -> Any:
    """The replay handed to the backend's compiler where it has one (JAX: XLA), else None.

    The compiled part is a pure function of arrays: arithmetic on traced Python numbers (an
    optimizer's step count and rates) runs before it in Python, and so do random draws, so that
    each call draws anew from agrad's generator and the numbers written back stay Python
    numbers. Where compiling fails (a library call that reads values on the host), the step
    replays uncompiled, with a warning.
    """
    values = trace.values
    made = (values[s] for op in ops for s in op[8])
    first = next((v for v in made if not _is_host(v)), None)
    if first is None:
        return None
    backend = _backend_of(first)
    compiler = getattr(backend, "compile", None)
    if compiler is None or compiler(lambda: ()) is None:
        return None  # (asked first: most backends have none, and then no step is looked at)
    # one value per type made: a backend is looked up once per array type, not once per step
    # (the rest of `made`: the values before `first` are host values, `first` is `backend`'s)
    one_of_type = {
        (type(v), getattr(v, "backend", None) if type(v) is Released else None): v for v in made
    }
    if any(_backend_of(v) is not backend for v in one_of_type.values() if not _is_host(v)):
        return None
    # (a step: fn, args, kwargs, outs, effect, as_array, random, ins, produced)
    host_ops = [op for op in ops if op[8] and not op[6] and all(_is_host(values[s]) for s in op[8])]
    early = [op for op in ops if op[6]]  # random draws
    on_host = {id(op) for op in host_ops}
    device_ops = [op for op in ops if id(op) not in on_host and not op[6]]
    device_defined = set()
    for op in device_ops:
        device_defined.update(op[8])
    device_reads: list[int] = []
    for op in device_ops:
        for s in op[7]:
            if s not in device_defined and s not in device_reads:
                device_reads.append(s)
    device_outputs = [s for s in outputs if s in device_defined or not _is_host(values[s])]
    device_outputs = [s for s in device_outputs if s in device_defined or s in device_reads]
    host_needed = [s for s in device_reads if _is_host(values[s])]
    early_slots = [s for op in early for s in op[8]]
    host_inputs = [s for s in input_slots if _is_host(values[s])]
    before_outputs = list(
        dict.fromkeys(host_needed + early_slots + [s for s in outputs if _is_host(values[s])])
    )
    position = {s: i for i, s in enumerate(input_slots)}
    host_positions = [position[s] for s in host_inputs]
    before_index = {s: i for i, s in enumerate(before_outputs)}
    device_index = {s: i for i, s in enumerate(device_outputs)}
    # where each device input comes from: the call's inputs or the code run before
    sources = [
        ("b", before_index[s]) if s in before_index else ("i", position[s]) for s in device_reads
    ]
    picks = [
        ("d", device_index[s])
        if s in device_index
        else ("b", before_index[s])
        if s in before_index
        else ("i", position[s])
        for s in outputs
    ]
    state: dict[str, Any] = {}

    def run(*inputs: Any) -> tuple:
        if "fn" not in state:  # the first replay writes the code (XLA compiles it at its call)
            state["before"] = _program.generate(
                host_ops + early, host_inputs, before_outputs, name="before"
            )
            state["device"] = _program.generate(
                device_ops, device_reads, device_outputs, name="device"
            )
            state["fn"] = compiler(state["device"])  # (last: another thread may be reading)
        early_values = state["before"](*[inputs[i] for i in host_positions])
        args = [early_values[i] if k == "b" else inputs[i] for k, i in sources]
        try:
            out = state["fn"](*args)
        except Exception as exc:
            device = state["device"]
            if state["fn"] is device:
                raise
            warnings.warn(
                f"agrad.jit: {backend.name} could not compile the step ({type(exc).__name__}: "
                f"{exc}); it replays uncompiled",
                JitWarning,
                stacklevel=3,
            )
            state["fn"] = device
            out = device(*args)
        return tuple(
            out[i] if k == "d" else early_values[i] if k == "b" else inputs[i] for k, i in picks
        )

    return run


def _backend_of(value: Any) -> Any:
    """The backend of a value the trace made (or of its :class:`Released` record)."""
    return value.backend if type(value) is Released else _state._real_backend(value)


def _is_host(value: Any) -> bool:
    return isinstance(value, (int, float, complex)) and type(value).__module__ == "builtins"


def jit(fn: Any = None, *, max_cache: int = 64) -> Any:
    """Trace ``fn`` once per signature and replay it as a flat array program.

    The first call with a new signature (the backend, shape and dtype of each array or Variable
    argument, the value of every other argument, the ``Config`` switches) runs ``fn`` and
    records every array operation it makes, forward, backward and optimizer update alike; later
    calls run only those operations, reading the state they need (parameters, gradients,
    optimizer slots and hyperparameters) from where it lives and writing it back.

    Parameters
    ----------
    fn : callable
        The function; also usable as ``@agrad.jit`` or ``@agrad.jit(max_cache=8)``.
    max_cache : int, default 64
        How many traces to keep; the least recently used goes first.

    Returns
    -------
    Jitted
        Call it as ``fn``; ``cache_info()`` and ``cache_clear()`` inspect and empty the cache.

    Raises
    ------
    TraceError
        From a call, if ``fn`` reads a traced value in Python (``float(loss)``, ``if x > 0:``).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> x = agrad.Variable(agrad.current_backend().asarray([1.0, 2.0]))
    >>> @agrad.jit
    ... def step():
    ...     x.cleargrad()
    ...     y = F.sum(x * x)
    ...     y.backward()
    ...     x.data -= 0.25 * x.grad.data
    ...     return y
    >>> [float(step().data) for _ in range(3)]
    [5.0, 1.25, 0.3125]
    """
    if fn is None:
        return functools.partial(jit, max_cache=max_cache)
    return Jitted(fn, max_cache=max_cache)


class _BackwardTrace:
    """What differentiating through a jitted function needs: the outputs to differentiate, the
    Variables read (by path), and the recorded backward program's boundary, seeds and results."""

    def __init__(
        self, outputs, wrt_paths, boundary, gy_slots, grad_slots, wants, intermediate=()
    ) -> None:
        self.outputs = outputs
        self.intermediate = intermediate  # positions of the outputs the others were made from
        self.wrt_paths = wrt_paths
        self.boundary = boundary
        self.gy_slots = gy_slots
        self.grad_slots = grad_slots
        self.wants = wants  # for each wrt Variable: its position among grad_slots, or None


def _flatten_variables(value: Any, into: list) -> None:
    if isinstance(value, Variable):
        if (
            value.node is not None
            and value.node.creator is not None
            and all(v is not value for v in into)
        ):
            into.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _flatten_variables(item, into)
    elif isinstance(value, dict):
        for item in value.values():
            _flatten_variables(item, into)


def _stored_variables(post: Any, pre: Any) -> list[Variable]:
    """The Variables the call made and stored in its state (an RNN's new hidden state) that
    are in the graph: outputs of the call's node, like the ones it returns."""
    stored: list[Variable] = []
    for place in post.order:
        value = post.places[place]
        if place[0] in pre.containers and id(value) not in pre.containers and _connected(value):
            _flatten_variables(value, stored)
    return stored


def _trace_backward(
    trace: Trace, result: Any, stored: list[Variable], pre: Any, placed: dict
) -> _BackwardTrace:
    """Record the gradients of the function's outputs (returned, or stored in its state) with
    respect to every Variable it read (parameters and Variable arguments alike), seeded by new
    inputs of the program."""
    from agrad.backprop import grad
    from agrad.core import is_differentiable_dtype

    outputs: list[Variable] = []
    _flatten_variables(result, outputs)
    returned = len(outputs)
    for v in stored:
        _flatten_variables(v, outputs)
    # a stored output the returned ones were computed from (an RNN's new `h`, under its
    # output layer) is what eager's unchain_backward from the loss would have cut
    upstream = _upstream_nodes([v.node for v in outputs[:returned]])
    intermediate = tuple(
        i for i in range(returned, len(outputs)) if id(outputs[i].node) in upstream
    )
    wrt, wrt_paths = [], []
    for place in pre.order:
        cid, step = place
        container, path, _ = pre.containers[cid]
        read = step == ("a", "data") and isinstance(container, Variable) and place in placed
        if read and is_differentiable_dtype(container.data.dtype):
            wrt.append(container)
            wrt_paths.append(path)
    boundary = len(trace.ops)
    seeds = [trace.input(v.data._value) for v in outputs]
    found = grad(outputs, wrt, grad_outputs=[Variable(g) for g in seeds])
    grad_slots, wants = [], []
    for g in found:
        if g is None or not isinstance(g.data, Tracer):
            wants.append(None)
        else:
            wants.append(len(grad_slots))
            grad_slots.append(g.data._slot)
    return _BackwardTrace(
        outputs, wrt_paths, boundary, [t._slot for t in seeds], grad_slots, wants, intermediate
    )


def _upstream_nodes(nodes: list) -> set[int]:
    """The ids of the graph nodes the given nodes were computed from (not theirs)."""
    seen: set[int] = set()
    pending = [node.creator for node in nodes if node.creator is not None]
    done: set[int] = set()
    while pending:
        func = pending.pop()
        if id(func) in done:
            continue
        done.add(id(func))
        for x in func.input_nodes:
            if x is not None and id(x) not in seen:
                seen.add(id(x))
                if x.creator is not None:
                    pending.append(x.creator)
    return seen


def _find(pre: Any, path: tuple) -> Any:
    for obj, p, _ in pre.containers.values():
        if p == path:
            return obj
    raise LookupError(path)


class _Replayed(Function):
    """A jitted function as one node of the caller's graph: its backward replays the recorded
    backward program on the residuals its forward program kept."""

    retain_inputs = ()
    retain_outputs = ()
    retain_attributes = ("residuals",)

    def __init__(self, program: Any, diff: _BackwardTrace, residuals: Any, ys: Any) -> None:
        self.program = program
        self.diff = diff
        self.intermediate_outputs = diff.intermediate
        self.residuals = residuals
        self._ys = ys
        self._shapes = [(tuple(y.shape), y.dtype) for y in ys]

    def forward(self, *xs: Any) -> Any:
        ys, self._ys = self._ys, None
        return tuple(ys) if len(ys) > 1 else ys[0]

    def vjp(self, d: Any, xs: tuple, ys: tuple, gys: tuple) -> Any:
        if isinstance(d, types.ModuleType):
            raise TraceError(
                "agrad.jit: backward(create_graph=True) through a jitted function is not "
                "supported (its backward is a recorded array program); differentiate the "
                "function without agrad.jit for higher-order gradients"
            )
        xp = self.xp
        seeds = [
            g if g is not None else xp.zeros(shape, dtype=dtype)
            for g, (shape, dtype) in zip(gys, self._shapes)
        ]
        found = self.program(*self.residuals, *seeds)
        return tuple(None if i is None else found[i] for i in self.diff.wants)


def _replayed_node(program: Any, diff: _BackwardTrace, residuals, ys, wrt) -> list:
    node = _Replayed(program, diff, tuple(residuals), tuple(ys))
    out = node(*wrt)
    return out if isinstance(out, list) else [out]


def _mutable_parts(value: Any, into: list) -> list:
    """(list or dict, its items) for every list and dict in ``value``, nested ones too."""
    t = type(value)
    if t is list:
        into.append((value, list(value)))
    elif t is dict:
        into.append((value, list(value.items())))
    if t is list or t is tuple or _is_namedtuple(value):
        for item in value:
            _mutable_parts(item, into)
    elif t is dict:
        for item in value.values():
            _mutable_parts(item, into)
    return into


def _changed(container: Any, items: list) -> bool:
    now = list(container.items()) if type(container) is dict else list(container)
    if len(now) != len(items):
        return True
    if type(container) is dict:
        return any(k1 != k2 or v1 is not v2 for (k1, v1), (k2, v2) in zip(now, items))
    return any(a is not b for a, b in zip(now, items))


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def _rebuilt(value: Any, items: list) -> Any:
    """A tuple, list or namedtuple of ``value``'s type holding ``items``."""
    return type(value)(*items) if _is_namedtuple(value) else type(value)(items)


def _holds_traced(value: Any, known: dict, depth: int = 0) -> bool:
    """Whether an object of another kind holds, a few levels down, a traced array or a Variable
    the trace made (a dataclass or a namespace of results); ``known``: the objects that were
    there before."""
    if isinstance(value, Tracer):
        return True
    if isinstance(value, Variable):
        return id(value) not in known
    if depth > 3:
        return False
    if isinstance(value, (tuple, list)):
        items: Any = value
    elif isinstance(value, dict):
        items = value.values()
    else:
        attrs = getattr(value, "__dict__", None)
        slots = [getattr(value, n, None) for n in getattr(type(value), "__slots__", ())]
        items = [*(attrs.values() if isinstance(attrs, dict) else ()), *slots]
    # (a look at the first items: results are small, and a large collection of data is not
    # worth a walk on every trace)
    return any(_holds_traced(v, known, depth + 1) for v in itertools.islice(items, 64))


def _substitute(value: Any, mapping: dict) -> Any:
    if id(value) in mapping:
        return mapping[id(value)]
    t = type(value)
    if t is tuple or t is list or _is_namedtuple(value):
        return _rebuilt(value, [_substitute(v, mapping) for v in value])
    if t is dict:
        return {k: _substitute(v, mapping) for k, v in value.items()}
    return value


def _large(values: list, dying: list[tuple]) -> tuple:
    """``(large, layouts, backend)`` for a :class:`~agrad.tracing.program.Replay`: the
    dying slots whose values are too large to wait for their variable's reuse in generated code
    (more than ``LARGE`` elements, or of a size not known), and the layouts of those that the
    backend of the first can keep in buffers (:meth:`~agrad.backends.Backend.scratch_layout`).
    """
    large = set()
    layouts = {}
    backend = None
    for dead in dying:
        for s in dead:
            value = values[s]
            released = type(value) is Released
            if (value.size if released else elements(value)) <= LARGE:
                continue
            large.add(s)
            if backend is None:
                backend = _backend_of(value)
            if not released:
                layout = backend.scratch_layout(value)
            elif value.backend is backend:
                layout = value.layout
            else:
                continue
            if layout is not None:
                layouts[s] = layout
    return large, layouts, backend


def _plain(value: Any) -> bool:
    """A plain Python value (a number, a string, None) or a tuple or list of them."""
    if value is None or type(value) in (int, float, complex, bool, str):
        return True
    if type(value) in (tuple, list):
        return all(_plain(v) for v in value)
    return _state.is_library_scalar(value)


def _replayable(value: Any, known: dict) -> bool:
    """Whether a value written during the trace is made of what a replay can rebuild: traced
    arrays, Variables, objects that were there before, and tuples, lists and dicts of them."""
    if isinstance(value, (Tracer, Variable)) or id(value) in known:
        return True
    if type(value) in (tuple, list) or _is_namedtuple(value):
        return any(_replayable(v, known) for v in value)
    if type(value) is dict:
        return any(_replayable(v, known) for v in value.values())
    return False
