"""A recorded trace as a straight-line Python function of its inputs.

The steps that no output, state write or side effect needs are dropped; the rest become one
line each of generated Python (``v7 = v3 * v5``, ``v8 = f2(v7, axis=c0)``), with ``del`` after a
value's last use so that a replay keeps arrays alive no longer than the eager run did. Calling
the function costs one Python call per array operation and nothing else: no Variables, no graph,
no heap, no weak references.
"""

from __future__ import annotations

import itertools
import operator
from typing import Any

from agrad.tracing.tracer import Op, Slot

_INFIX = {
    operator.add: "+",
    operator.sub: "-",
    operator.mul: "*",
    operator.truediv: "/",
    operator.floordiv: "//",
    operator.mod: "%",
    operator.pow: "**",
    operator.matmul: "@",
    operator.and_: "&",
    operator.or_: "|",
    operator.xor: "^",
    operator.lt: "<",
    operator.le: "<=",
    operator.gt: ">",
    operator.ge: ">=",
    operator.eq: "==",
    operator.ne: "!=",
}
_INPLACE = {
    operator.iadd: "+=",
    operator.isub: "-=",
    operator.imul: "*=",
    operator.itruediv: "/=",
    operator.ipow: "**=",
}
_PREFIX = {operator.neg: "-", operator.pos: "+", operator.invert: "~"}
_LITERALS = (int, str, bool, type(None))
_COUNTER = itertools.count()
_INF = float("inf")


def op_inputs(op: Op) -> list[int]:
    return op.ins


def op_outputs(op: Op) -> list[int]:
    return op.produced


def live_ops(ops: list[Op], needed: set[int]) -> list[Op]:
    """The steps that the slots in ``needed`` or a side effect depend on, in order."""
    live = set(needed)
    kept = []
    for op in reversed(ops):
        if op.effect or not live.isdisjoint(op.produced):
            kept.append(op)
            live.update(op.ins)
    kept.reverse()
    return kept


class _Writer:
    """Turns steps into lines of Python, naming functions and constants as globals."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}
        self._by_id: dict[int, str] = {}
        self.name_of: dict[int, str] = {}  # slot -> the local variable holding it

    def constant(self, value: Any, prefix: str = "c") -> str:
        name = self._by_id.get(id(value))
        if name is None:
            name = f"{prefix}{len(self.names)}"
            self.names[name] = value
            self._by_id[id(value)] = name
        return name

    def expr(self, template: Any) -> str:
        t = type(template)
        if t is Slot:
            return self.name_of[template.index]
        if t is tuple:
            inner = ", ".join(self.expr(item) for item in template)
            return f"({inner},)" if template else "()"
        if t is list:
            return "[" + ", ".join(self.expr(item) for item in template) + "]"
        if t is dict:
            items = ", ".join(f"{self.expr(k)}: {self.expr(v)}" for k, v in template.items())
            return "{" + items + "}"
        if t is slice:
            parts = (template.start, template.stop, template.step)
            return "slice(" + ", ".join(self.expr(p) for p in parts) + ")"
        if template is Ellipsis:
            return "..."
        if t in _LITERALS or (t is float and template == template and abs(template) != _INF):
            text = repr(template)
            # `-2.0 ** v` would parse as -(2.0 ** v)
            return f"({text})" if text.startswith("-") else text
        return self.constant(template)

    def call(self, op: Op) -> str:
        fn = op.fn
        args = op.args
        if not op.kwargs:
            symbol = _INFIX.get(fn)
            if symbol is not None and len(args) == 2:
                return f"{self.expr(args[0])} {symbol} {self.expr(args[1])}"
            symbol = _PREFIX.get(fn)
            if symbol is not None and len(args) == 1:
                return f"{symbol}{self.expr(args[0])}"
            if fn is operator.getitem and len(args) == 2:
                return f"{self.expr(args[0])}[{self.expr(args[1])}]"
        parts = [self.expr(a) for a in args]
        parts += [f"{k}={self.expr(v)}" for k, v in op.kwargs.items()]
        return f"{self.constant(fn, 'f')}({', '.join(parts)})"

    def lines(self, op: Op) -> list[str]:
        outs = op.outs
        symbol = _INPLACE.get(op.fn)
        if symbol is not None and not op.kwargs and type(op.args[0]) is Slot and outs is not None:
            # `out = a; out += b`: written into a's array where the library allows, a new
            # array bound to `out` alone where it does not (JAX), exactly as eagerly
            target = self.name_of[outs]
            return [
                f"{target} = {self.expr(op.args[0])}",
                f"{target} {symbol} {self.expr(op.args[1])}",
            ]
        call = self.call(op)
        if op.as_array:  # the library's function that makes a scalar result an array
            call = f"{self.constant(op.as_array, 'f')}({call})"
        if outs is None:
            return [call]
        if isinstance(outs, tuple):
            lines = [f"t_ = {call}"]
            lines += [f"{self.name_of[s]} = t_[{i}]" for i, s in enumerate(outs) if s is not None]
            return [*lines, "del t_"]
        return [f"{self.name_of[outs]} = {call}"]


def generate(
    ops: list[Op],
    inputs: list[int],
    outputs: list[int],
    name: str = "replay",
    small: Any = None,
) -> Any:
    """A Python function ``f(*inputs) -> tuple(outputs)`` running ``ops`` (already pruned).

    A value is dropped after its last use: a large one by ``del`` at once, a small one
    (``small(slot)`` true) when its local variable is reused by a later step, which keeps the
    generated code (and its compile time) short.
    """
    writer = _Writer()
    last_use: dict[int, int] = {}
    defined = set(inputs)
    for i, op in enumerate(ops):
        for s in op.ins:
            if s not in defined:
                raise AssertionError(f"agrad.jit: slot v{s} is read before it is made")
            last_use[s] = i
        defined.update(op.produced)
    missing = [s for s in outputs if s not in defined]
    if missing:
        raise AssertionError(f"agrad.jit: outputs {missing} are never made")
    keep = set(outputs)
    # the step after which each value is dead: its last reader, or its maker if none reads it
    kill_at: list[list[int]] = [[] for _ in ops]
    for s, i in last_use.items():
        if s not in keep:
            kill_at[i].append(s)
    for i, op in enumerate(ops):
        for s in op.produced:
            if s not in last_use and s not in keep:
                kill_at[i].append(s)
    free: list[str] = []
    counter = itertools.count()
    name_of = writer.name_of
    for s in inputs:
        name_of[s] = f"v{next(counter)}"
    body: list[str] = []
    lines = writer.lines
    for i, op in enumerate(ops):
        for s in op.produced:
            if s not in name_of:
                name_of[s] = free.pop() if free else f"v{next(counter)}"
        body += lines(op)
        dying = kill_at[i]
        if dying:
            names = [name_of[s] for s in dying]
            large = [n for s, n in zip(dying, names) if small is None or not small(s)]
            if large:
                body.append("del " + ", ".join(large))
            free.extend(names)
    result = ", ".join(name_of[s] for s in outputs)
    body.append(f"return ({result},)" if outputs else "return ()")
    params = ", ".join(name_of[s] for s in inputs)
    source = f"def {name}({params}):\n" + "".join(f"    {line}\n" for line in body)
    namespace = dict(writer.names)
    namespace["__builtins__"] = {"slice": slice}
    filename = f"<agrad.jit {name} #{next(_COUNTER)}>"
    exec(compile(source, filename, "exec"), namespace)
    fn = namespace[name]
    fn.source = source  # type: ignore[attr-defined]
    return fn
