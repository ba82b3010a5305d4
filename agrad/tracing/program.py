"""A recorded trace as a flat program: first interpreted, then generated as Python code.

The steps that no output, state write or side effect needs are dropped (:func:`prune`), and
every value dies after its last use, so that a replay keeps arrays alive no longer than the
eager run did. The program runs in two forms:

- :func:`interpret`: a loop over the steps, each coded as a tuple, with the values in a list
  indexed by slot; a dead value's entry is cleared at once. Building it costs a microsecond or
  two a step.
- :func:`generate`: one line of generated Python per step (``v7 = v3 * v5``,
  ``v8 = f2(v7, axis=c0)``), compiled, with freed local variables reused by later steps
  (:class:`Plan`). A replay costs one Python call per array operation and nothing else, but
  writing and compiling the source costs several eager calls. Where the backend can write a
  call's result into a given array (NumPy's ufuncs), large temporaries go into buffers kept
  from one replay to the next (:func:`scratch_slots`): ``v7 = w1(v3, v5, out=b2)``.

:class:`Replay` builds the interpreter at its first call (not when the trace ends) and
generates the code once it has been replayed :data:`GENERATE_AFTER` times: a step called a
few times never pays for the code, a training loop does once. Neither form has Variables, a
graph, a heap or weak references.
"""

from __future__ import annotations

import functools
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
_CONTAINERS = (tuple, list, dict, slice)
_COUNTER = itertools.count()
_INF = float("inf")
# Replays of a program after which its interpreter gives way to generated code. Writing and
# compiling the code costs 4-6 eager calls of a step of tiny operations, and each generated
# replay saves a ninth to a sixth of one (benchmarks/jit.py): it pays for itself in 30-40 calls.
GENERATE_AFTER = 32


def prune(ops: list[Op], outputs: list[int]) -> tuple[list[Op], list[tuple], set[int]]:
    """``(steps, dying, reads)``: the steps that ``outputs`` or a side effect need, in order;
    for each, the slots whose values die there (read for the last time, or made and never
    read); and the slots they read that none of them makes (the program's inputs).

    One pass backwards: the first time a slot is met as an input is its last use (a first
    call pays for this pass, once per array call, so it reads the steps by index).
    """
    live = set(outputs)
    kept: list[Op] = []
    dying: list[tuple] = []
    for op in reversed(ops):
        produced = op[8]
        if not op[4] and live.isdisjoint(produced):  # (op[4]: it has an effect)
            continue  # no effect, and nothing later reads what it makes
        dead = []
        for s in produced:
            if s in live:
                live.remove(s)
            else:
                dead.append(s)
        for s in op[7]:  # (the slots it reads)
            if s not in live:
                live.add(s)
                dead.append(s)
        kept.append(op)
        dying.append(tuple(dead))
    kept.reverse()
    dying.reverse()
    return kept, dying, live


def scratch_slots(ops: list[Op], outputs: list[int], layouts: dict, backend: Any) -> dict:
    """``{slot: writer}``: the values a generated replay writes into kept buffers, and the
    function (``writer(*args, out=buffer)``) that makes each.

    A value qualifies when ``layouts`` has it (a large array the backend can hold), a call the
    backend can write into a buffer makes it, it is not returned, and every step that reads it
    makes a new array or writes into another one: so no view of a buffer, and no buffer,
    outlives its value (``a += v`` reads ``v``; ``v += a`` makes ``v``'s array the result).
    """
    writers = {}
    escaping = set(outputs)
    writing_into = backend.writing_into
    for fn, args, kwargs, outs, effect, as_array, random, ins, _ in ops:
        writer = None if kwargs else writing_into(fn)
        if writer is None:
            if fn in _INPLACE and not kwargs:
                if type(args[0]) is Slot:
                    escaping.add(int(args[0]))
            else:
                escaping.update(ins)
        elif type(outs) is int and outs in layouts and not (as_array or random or effect):
            writers[outs] = writer
    return {s: w for s, w in writers.items() if s not in escaping}


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
            return self.name_of[template]
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
        fn, args, kwargs = op[0], op[1], op[2]
        if not kwargs:
            symbol = _INFIX.get(fn)
            if symbol is not None and len(args) == 2:
                return f"{self.expr(args[0])} {symbol} {self.expr(args[1])}"
            symbol = _PREFIX.get(fn)
            if symbol is not None and len(args) == 1:
                return f"{symbol}{self.expr(args[0])}"
            if fn is operator.getitem and len(args) == 2:
                return f"{self.expr(args[0])}[{self.expr(args[1])}]"
        parts = [self.expr(a) for a in args]
        parts += [f"{k}={self.expr(v)}" for k, v in kwargs.items()]
        return f"{self.constant(fn, 'f')}({', '.join(parts)})"

    def lines(self, op: Op, buffer: str | None = None, writer: Any = None) -> list[str]:
        fn, args, kwargs, outs, _, as_array, *_ = op
        if buffer is not None:  # (a plain call, one array result: see scratch_slots)
            parts = ", ".join(self.expr(a) for a in args)
            return [f"{self.name_of[outs]} = {self.constant(writer, 'w')}({parts}, out={buffer})"]
        symbol = _INPLACE.get(fn)
        if symbol is not None and not kwargs and type(args[0]) is Slot and outs is not None:
            # `out = a; out += b`: written into a's array where the library allows, a new
            # array bound to `out` alone where it does not (JAX), exactly as eagerly
            target = self.name_of[outs]
            return [
                f"{target} = {self.expr(args[0])}",
                f"{target} {symbol} {self.expr(args[1])}",
            ]
        call = self.call(op)
        if as_array:  # the library's function that makes a scalar result an array
            call = f"{self.constant(as_array, 'f')}({call})"
        if outs is None:
            return [call]
        if isinstance(outs, tuple):
            lines = [f"t_ = {call}"]
            lines += [f"{self.name_of[s]} = t_[{i}]" for i, s in enumerate(outs) if s is not None]
            return [*lines, "del t_"]
        return [f"{self.name_of[outs]} = {call}"]


class Plan:
    """Registers for the generated code: a freed local variable is reused by a later step.

    Input ``i`` is register ``i``; a step's results take a freed register or a new one; after
    step ``i``, ``release[i]`` lists the registers whose values die there, with whether they
    are large (in ``large``, or every one when it is None: dropped at once by ``del``) or small
    (dropped when the register is reused, which keeps the source, and its compile time, short).
    """

    def __init__(
        self,
        ops: list[Op],
        inputs: list[int],
        outputs: list[int],
        large: set[int] | None,
        scratch: dict | None = None,
        layouts: dict | None = None,
    ) -> None:
        ops, dying, reads = prune(ops, outputs)
        unmade = reads.difference(inputs)
        if unmade:
            raise AssertionError(f"agrad.jit: slots {sorted(unmade)} are read but never made")
        register = {s: i for i, s in enumerate(inputs)}
        free: list[int] = []
        count = len(inputs)
        release: list[list[tuple[int, bool]]] = []
        # buffers, as registers: a value in `scratch` takes a freed buffer of its layout or a
        # new one, and gives it back where it dies (after the step's results took theirs, so
        # a step never writes into its own operand)
        scratch = scratch or {}
        buffer: dict[int, int] = {}
        buffer_layouts: list = []
        free_buffers: dict[Any, list[int]] = {}
        for op, dead in zip(ops, dying):
            for s in op[8]:  # (the slots it makes)
                if free:
                    register[s] = free.pop()
                else:
                    register[s] = count
                    count += 1
                if s in scratch:
                    layout = layouts[s]  # type: ignore[index]
                    spare = free_buffers.get(layout)
                    if spare:
                        buffer[s] = spare.pop()
                    else:
                        buffer[s] = len(buffer_layouts)
                        buffer_layouts.append(layout)
            gone = [(register[s], large is None or s in large) for s in dead]
            free.extend([r for r, _ in gone])
            release.append(gone)
            for s in dead:
                if s in buffer:
                    free_buffers.setdefault(layouts[s], []).append(buffer[s])  # type: ignore[index]
        self.ops, self.inputs, self.outputs = ops, inputs, outputs
        self.register, self.release, self.size = register, release, count
        self.buffer, self.buffer_layouts = buffer, tuple(buffer_layouts)


def generate(
    ops: list[Op],
    inputs: list[int],
    outputs: list[int],
    name: str = "replay",
    large: set[int] | None = None,
    layouts: dict | None = None,
    backend: Any = None,
) -> Any:
    """A Python function ``f(*inputs) -> tuple(outputs)`` running ``ops``, with each value
    dropped after its last use (see :class:`Plan`): at once if its slot is in ``large`` (every
    value when ``large`` is None), else when its variable is reused. Values that
    :func:`scratch_slots` picks from ``layouts`` are written into buffers that ``backend``
    makes (:meth:`~agrad.backends.Backend.scratch`), a set per concurrent call, kept for the
    next."""
    scratch = scratch_slots(ops, outputs, layouts, backend) if layouts else None
    plan = Plan(ops, inputs, outputs, large, scratch, layouts)
    writer = _Writer()
    name_of = writer.name_of
    for s, r in plan.register.items():
        name_of[s] = f"v{r}"
    body: list[str] = []
    lines = writer.lines
    buffer = plan.buffer
    for op, gone in zip(plan.ops, plan.release):
        out = op[3]
        if type(out) is int and out in buffer:
            body += lines(op, f"b{buffer[out]}", scratch[out])  # type: ignore[index]
        else:
            body += lines(op)
        large = [f"v{r}" for r, is_large in gone if is_large]
        if large:
            body.append("del " + ", ".join(large))
    if plan.buffer_layouts:
        # a set of buffers per call in progress (threads): taken from the pool, given back
        pool: list = []
        writer.names.update(
            take_=pool.pop,
            give_=pool.append,
            make_=functools.partial(backend.scratch, plan.buffer_layouts),
        )
        names = ", ".join(f"b{i}" for i in range(len(plan.buffer_layouts)))
        body[:0] = ["try:", "    bufs_ = take_()", "except IndexError:", "    bufs_ = make_()"]
        body.insert(4, f"{names}, = bufs_")
        body.append("give_(bufs_)")
    result = ", ".join(name_of[s] for s in outputs)
    body.append(f"return ({result},)" if outputs else "return ()")
    params = ", ".join(name_of[s] for s in inputs)
    source = f"def {name}({params}):\n" + "".join(f"    {line}\n" for line in body)
    namespace = dict(writer.names)
    namespace["__builtins__"] = {"slice": slice, "IndexError": IndexError}
    filename = f"<agrad.jit {name} #{next(_COUNTER)}>"
    exec(compile(source, filename, "exec"), namespace)
    fn = namespace[name]
    fn.source = source  # type: ignore[attr-defined]
    return fn


# -- the interpreter: a loop over coded steps, its values in a list indexed by slot ----------
def _reader(template: Any) -> Any:
    """``regs -> value``: the template with each slot read from the register list."""
    t = type(template)
    if t is Slot:
        index = int(template)
        return lambda regs: regs[index]
    if t is tuple or t is list:
        parts = [_reader(item) for item in template]
        return lambda regs: t([part(regs) for part in parts])
    if t is dict:
        items = [(k, _reader(v)) for k, v in template.items()]
        return lambda regs: {k: part(regs) for k, part in items}
    if t is slice:
        start, stop, step = (_reader(p) for p in (template.start, template.stop, template.step))
        return lambda regs: slice(start(regs), stop(regs), step(regs))
    return lambda regs: template


def _general_step(op: Op) -> Any:
    """The closure ``regs -> None`` that runs any step (keywords, nested arguments, a
    sequence or a 0-d scalar result)."""
    fn, args, kwargs, outs, _, as_array, *_ = op
    read_args = _reader(tuple(args))
    read_kwargs = _reader(kwargs)

    def step(regs: list) -> None:
        result = fn(*read_args(regs), **read_kwargs(regs))
        if as_array:
            result = as_array(result)
        if type(outs) is int:
            regs[outs] = result
        elif outs is not None:
            for i, s in enumerate(outs):
                if s is not None:
                    regs[s] = result[i]

    return step


# how the interpreter calls a step: fn(x), fn(x, y), fn(x, constant), fn(constant, y), other
_ONE, _TWO, _SLOT_CONSTANT, _CONSTANT_SLOT, _GENERAL = range(5)


def _coded(op: Op, dead: tuple) -> tuple:
    """``(code, fn, a, b, out, dead)``: one step as the interpreter reads it, where ``a`` and
    ``b`` are slots or constants as the code says. A tuple, not a closure: the interpreter is
    built at a first replay, one per recorded call, and a tuple costs a fraction of a closure."""
    fn, args, kwargs, outs, _, as_array, *_ = op
    if type(outs) is int and not kwargs and not as_array:
        if len(args) == 1 and type(args[0]) is Slot:
            return (_ONE, fn, int(args[0]), None, outs, dead)  # (exact ints index lists fastest)
        if len(args) == 2:
            a, b = args
            if type(a) is Slot:
                if type(b) is Slot:
                    return (_TWO, fn, int(a), int(b), outs, dead)
                if type(b) not in _CONTAINERS:
                    return (_SLOT_CONSTANT, fn, int(a), b, outs, dead)
            elif type(b) is Slot and type(a) not in _CONTAINERS:
                return (_CONSTANT_SLOT, fn, a, int(b), outs, dead)
    return (_GENERAL, _general_step(op), None, None, None, dead)


def interpret(
    ops: list[Op], dying: list[tuple], inputs: list[int], outputs: list[int], size: int
) -> Any:
    """``f(*inputs) -> tuple(outputs)`` as a loop over coded steps (:func:`_coded`), its
    values in a list indexed by slot (``size`` slots); ``ops`` and ``dying`` from
    :func:`prune`."""
    steps = tuple([_coded(op, dead) for op, dead in zip(ops, dying)])
    empty = [None] * size

    def interpreted(*args: Any) -> tuple:
        regs = empty.copy()
        for s, value in zip(inputs, args):
            regs[s] = value
        for code, fn, a, b, out, dead in steps:
            if code == _TWO:
                regs[out] = fn(regs[a], regs[b])
            elif code == _ONE:
                regs[out] = fn(regs[a])
            elif code == _SLOT_CONSTANT:
                regs[out] = fn(regs[a], b)
            elif code == _CONSTANT_SLOT:
                regs[out] = fn(a, regs[b])
            else:
                fn(regs)
            for d in dead:
                regs[d] = None
        return tuple([regs[s] for s in outputs])

    return interpreted


class Replay:
    """``f(*inputs) -> tuple(outputs)``: interpreted from its first call (the interpreter is
    built then, not when the trace ends), generated after :data:`GENERATE_AFTER` calls (see
    the module's docstring). ``large``: the slots whose values generated code drops by ``del``;
    ``layouts`` and ``backend``: the buffers generated code may keep (see :func:`generate`).
    """

    def __init__(
        self,
        ops: list[Op],
        dying: list[tuple],
        inputs: list[int],
        outputs: list[int],
        size: int,
        large: set[int],
        layouts: dict | None = None,
        backend: Any = None,
        name: str = "replay",
    ) -> None:
        self._steps: Any = (ops, dying)  # dropped once the code is generated
        self._shape = (inputs, outputs, size, large, name, layouts, backend)
        self._run: Any = None
        self.calls = 0
        self.generate_after = GENERATE_AFTER

    @property
    def form(self) -> str:
        """``"pending"`` (never called), ``"interpreted"`` or ``"generated"``."""
        if self._run is None:
            return "pending"
        return "interpreted" if self._steps is not None else "generated"

    @property
    def source(self) -> str | None:
        """The generated code, once there is some."""
        return getattr(self._run, "source", None)

    def __call__(self, *args: Any) -> tuple:
        if self.calls <= self.generate_after:
            self._advance()
        return self._run(*args)

    def _advance(self) -> None:
        """Count a call; build the interpreter at the first, the code after the last."""
        self.calls += 1
        steps = self._steps
        if steps is None:
            return  # another thread generated the code meanwhile
        inputs, outputs, size, large, name, layouts, backend = self._shape
        if self.calls > self.generate_after:
            self._run = generate(steps[0], inputs, outputs, name, large, layouts, backend)
            self._steps = None
        elif self._run is None:
            self._run = interpret(*steps, inputs, outputs, size)
