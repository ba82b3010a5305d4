"""What a traced function reads and writes besides its arguments: finding it, lifting it into
tracers for the trace, and the places a replay reads it from and writes it back to.

The search starts at the function (its closure cells, the globals its code names, ``self`` of a
bound method, its defaults) and its arguments, and follows Variables (``data``, ``grad``),
layers and models, optimizers (their hooks too), lists, dicts and plain objects' attributes.
Arrays found in a place that can be assigned become inputs of the program; the Python numbers of
optimizers and their hooks (``lr``, ``momentum``, Adam's ``t``) too, so that a schedule that
changes them takes effect without a new trace. Any other Python value is read once, at the trace.

A *place* is a container and a step (``('a', name)`` an attribute, ``('i', key)`` an item). A
container met before the trace is found again at each call by its *path* from the roots, so a
replay reads and writes the objects that are there then.
"""

from __future__ import annotations

import functools
import numbers
import sys
import types
from typing import Any

from agrad.backends import backend_for_type, backend_of
from agrad.core import Variable
from agrad.tracing.tracer import Tracer

ABSENT = object()
_MAX_ITEMS = 10_000  # longer lists and dicts are data, not state: never searched
_SKIP_MODULES = ("numpy", "cupy", "torch", "jax", "jaxlib", "dask", "array_api")


def _is_array(x: Any) -> bool:
    if backend_for_type(type(x)) is not None or isinstance(x, Tracer):
        return True
    return hasattr(x, "shape") and hasattr(x, "dtype") and backend_of(x, None) is not None


def _real_backend(x: Any) -> Any:
    backend = backend_for_type(type(x))
    return backend if backend is not None else backend_of(x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and type(x).__module__ == "builtins"


def is_library_scalar(x: Any) -> bool:
    """A library's scalar (NumPy's ``float32(0.1)``, ``int64(3)``, ``bool_(True)``): a value, not
    an array of a backend. Unlike a Python number it keeps its own dtype in arithmetic."""
    if type(x) in (int, float, bool, str) or x is None:
        return False
    if isinstance(x, numbers.Number):
        return True
    return getattr(x, "shape", None) == () and hasattr(x, "dtype") and not _is_array(x)


class Snapshot:
    """The containers reached (id -> (object, path, lifts numbers)), their places' values, the
    length of each list and dict reached, and the roots that are one object (one Variable
    passed as two arguments): (path, path of its first root)."""

    def __init__(self) -> None:
        self.containers: dict[int, tuple[Any, tuple, bool]] = {}
        self.places: dict[tuple[int, tuple], Any] = {}
        self.order: list[tuple[int, tuple]] = []
        self.sizes: dict[int, int] = {}
        self.root_aliases: list[tuple[tuple, tuple]] = []

    def add_place(self, container: Any, step: tuple, value: Any) -> None:
        key = (id(container), step)
        if key not in self.places:
            self.order.append(key)
        self.places[key] = value


class _Kinds:
    """Classes the walk tells apart, imported at its first use (they import agrad.core)."""

    def __init__(self) -> None:
        from agrad.amp import GradScaler
        from agrad.dataloaders import DataLoader
        from agrad.datasets import Dataset
        from agrad.optimizers import Optimizer

        # never searched: modules, classes, and data (a loader's batches are not state)
        self.opaque = (types.ModuleType, type, DataLoader, Dataset)
        self.optimizer_like = (Optimizer, GradScaler)


@functools.cache
def _kinds() -> _Kinds:
    return _Kinds()


def _code_names(code: types.CodeType, into: set[str]) -> None:
    into.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_names(const, into)


def _user_class(cls: type) -> bool:
    module = cls.__module__ or ""
    return not (module == "builtins" or module.startswith(("agrad", *_SKIP_MODULES)))


def children(obj: Any) -> tuple[list[tuple[tuple, Any]], bool, bool]:
    """``(steps and values, assignable, is_optimizer)`` of a container; ``None`` steps for a
    leaf. Assignable: its places can be written (not a tuple)."""
    if isinstance(obj, Variable):
        return [(("a", "data"), obj.data), (("a", "grad"), obj.grad)], True, False
    t = type(obj)
    if t is dict:
        if len(obj) > _MAX_ITEMS:
            return [], False, False
        return [(("i", k), v) for k, v in obj.items()], True, False
    if t is list:
        if len(obj) > _MAX_ITEMS:
            return [], False, False
        return [(("i", i), v) for i, v in enumerate(obj)], True, False
    if t is tuple:
        return [(("i", i), v) for i, v in enumerate(obj)], False, False
    if t is types.CellType:
        try:
            return [(("a", "cell_contents"), obj.cell_contents)], True, False
        except ValueError:  # an empty cell
            return [], False, False
    if t is types.MethodType:
        return [(("a", "__self__"), obj.__self__), (("a", "__func__"), obj.__func__)], False, False
    if t is functools.partial:  # the arguments it binds are the function's state too
        return (
            [
                (("a", "args"), obj.args),
                (("a", "keywords"), obj.keywords),
                (("a", "func"), obj.func),
            ],
            False,
            False,
        )
    if t is types.FunctionType:
        steps: list[tuple[tuple, Any]] = []
        if obj.__closure__:
            steps.append((("a", "__closure__"), obj.__closure__))
        if obj.__defaults__:
            steps.append((("a", "__defaults__"), obj.__defaults__))
        return steps, False, False
    if isinstance(obj, _kinds().opaque) or (callable(obj) and (t.__module__ == "builtins")):
        return [], False, False
    if t.__module__ and t.__module__.startswith(_SKIP_MODULES):
        return [], False, False
    attrs = getattr(obj, "__dict__", None)
    if attrs is None:
        return [], False, False
    module = t.__module__ or ""
    if module.startswith("agrad") and not module.startswith(
        ("agrad.layers", "agrad.models", "agrad.optimizers", "agrad.amp")
    ):
        return [], False, False
    return (
        [(("a", k), v) for k, v in attrs.items() if not isinstance(v, (set, frozenset))],
        True,
        _optimizer_like(obj),
    )


def walk(roots: list[tuple[tuple, Any]], globals_: dict | None) -> Snapshot:
    """Every container reachable from ``roots`` (path, object) and the value of each place."""
    snap = Snapshot()
    first_roots: dict[int, tuple] = {}
    for path, obj in roots:  # (not tuples: an empty closure and no defaults are one `()`)
        if (
            obj is not None
            and type(obj) is not tuple
            and not _is_array(obj)
            and not _is_number(obj)
        ):
            first = first_roots.setdefault(id(obj), path)
            if first != path:
                snap.root_aliases.append((path, first))
    # (path, object, lifts its numbers)
    stack: list[tuple[tuple, Any, bool]] = [(path, obj, False) for path, obj in reversed(roots)]
    seen_globals: set[str] = set()
    while stack:
        path, obj, lift = stack.pop()
        if id(obj) in snap.containers or obj is None or _is_array(obj) or _is_number(obj):
            continue
        steps, assignable, is_optimizer = children(obj)
        t = type(obj)
        code_owner = obj if t is types.FunctionType else None
        keeps = isinstance(obj, (types.FunctionType, Variable)) or t in (dict, list)
        # (an object with no attributes yet is kept too: what the function sets on it is a
        # write like any other)
        if code_owner is None and not steps and not keeps and not assignable:
            continue
        snap.containers[id(obj)] = (obj, path, lift and assignable)
        if t is list or t is dict:
            snap.sizes[id(obj)] = len(obj)
        for step, value in steps:
            if assignable:
                snap.add_place(obj, step, value)
            child_lift = (is_optimizer and step == ("a", "hooks")) or (lift and t is list)
            if is_optimizer and _is_number(value):
                continue
            stack.append(((*path, step), value, child_lift))
        # the globals a function's code names, and those of a user class's methods
        names: set[str] = set()
        if code_owner is not None:
            _code_names(obj.__code__, names)
            scope = obj.__globals__
        elif _user_class(t):
            for member in vars(t).values():
                if isinstance(member, types.FunctionType):
                    _code_names(member.__code__, names)
            scope = getattr(sys.modules.get(t.__module__), "__dict__", None)
        else:
            continue
        if scope is not globals_:
            continue  # another module's globals: read at the trace, not watched
        for name in sorted(names - seen_globals):
            if name in scope:
                seen_globals.add(name)
                value = scope[name]
                snap.add_place(scope, ("i", name), value)
                stack.append(((("r", "globals"), ("i", name)), value, False))
    if globals_ is not None:
        snap.containers.setdefault(id(globals_), (globals_, (("r", "globals"),), False))
    return snap


def number_places(snap: Snapshot) -> list[tuple[int, tuple]]:
    """The places holding numbers that are inputs: those of optimizers and their hooks."""
    out = []
    for key in snap.order:
        cid, _step = key
        obj, _, lift = snap.containers[cid]
        value = snap.places[key]
        if _is_number(value) and not isinstance(value, bool) and (lift or _optimizer_like(obj)):
            out.append(key)
    return out


def _optimizer_like(obj: Any) -> bool:
    """Objects whose numbers change between steps by design: optimizers (rates, step count)
    and loss scalers (the scale)."""
    return isinstance(obj, _kinds().optimizer_like)


def assign(container: Any, step: tuple, value: Any) -> None:
    """``container.<name> = value`` or ``container[key] = value``."""
    kind, key = step
    if kind == "a":
        setattr(container, key, value)
    else:
        container[key] = value


def read(container: Any, step: tuple) -> Any:
    """``container.<name>`` or ``container[key]``; ``ABSENT`` when there is none."""
    kind, key = step
    try:
        return getattr(container, key) if kind == "a" else container[key]
    except (AttributeError, LookupError, TypeError):
        return ABSENT


def remove(container: Any, step: tuple) -> None:
    kind, key = step
    if kind == "a":
        delattr(container, key)
    else:
        del container[key]
