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


def slots_in(template: Any, into: list[int]) -> None:
    """Append the slot numbers referenced by ``template`` to ``into``."""
    t = type(template)
    if t is Slot:
        into.append(template.index)
    elif t is tuple or t is list:
        for item in template:
            slots_in(item, into)
    elif t is dict:
        for item in template.values():
            slots_in(item, into)
    elif t is slice:
        slots_in(template.start, into)
        slots_in(template.stop, into)
        slots_in(template.step, into)


def op_inputs(op: Op) -> list[int]:
    used: list[int] = []
    slots_in(op.args, used)
    slots_in(op.kwargs, used)
    return used


def op_outputs(op: Op) -> list[int]:
    if op.outs is None:
        return []
    if isinstance(op.outs, tuple):
        return [s for s in op.outs if s is not None]
    return [op.outs]


def live_ops(ops: list[Op], needed: set[int]) -> list[Op]:
    """The steps that the slots in ``needed`` or a side effect depend on, in order."""
    live = set(needed)
    kept = []
    for op in reversed(ops):
        if op.effect or any(s in live for s in op_outputs(op)):
            kept.append(op)
            live.update(op_inputs(op))
    kept.reverse()
    return kept


class _Writer:
    """Turns steps into lines of Python, naming functions and constants as globals."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}
        self._by_id: dict[int, str] = {}

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
            return f"v{template.index}"
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
        if t in _LITERALS:
            return repr(template)
        if t is float and template == template and abs(template) != float("inf"):
            return repr(template)
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
            target = f"v{outs}"
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
            lines += [f"v{s} = t_[{i}]" for i, s in enumerate(outs) if s is not None]
            return lines
        return [f"v{outs} = {call}"]


def generate(
    ops: list[Op],
    inputs: list[int],
    outputs: list[int],
    name: str = "replay",
) -> Any:
    """A Python function ``f(*inputs) -> tuple(outputs)`` running ``ops`` (already pruned)."""
    writer = _Writer()
    last_use: dict[int, int] = {}
    defined = set(inputs)
    for i, op in enumerate(ops):
        for s in op_inputs(op):
            if s not in defined:
                raise AssertionError(f"agrad.jit: slot v{s} is read before it is made")
            last_use[s] = i
        defined.update(op_outputs(op))
    missing = [s for s in outputs if s not in defined]
    if missing:
        raise AssertionError(f"agrad.jit: outputs {missing} are never made")
    keep = set(outputs)
    body: list[str] = []
    for i, op in enumerate(ops):
        body += writer.lines(op)
        dead = [s for s in set(op_inputs(op)) if last_use.get(s) == i and s not in keep]
        # a result nobody reads can go at once (an in-place write's alias, say)
        dead += [s for s in op_outputs(op) if s not in last_use and s not in keep]
        if dead:
            body.append("del " + ", ".join(f"v{s}" for s in sorted(set(dead))))
    result = ", ".join(f"v{s}" for s in outputs)
    body.append(f"return ({result},)" if outputs else "return ()")
    params = ", ".join(f"v{s}" for s in inputs)
    source = f"def {name}({params}):\n" + "".join(f"    {line}\n" for line in body)
    namespace = dict(writer.names)
    namespace["__builtins__"] = {"slice": slice}
    filename = f"<agrad.jit {name} #{next(_COUNTER)}>"
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own generated code
    fn = namespace[name]
    fn.source = source  # type: ignore[attr-defined]
    return fn
