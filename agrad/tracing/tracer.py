"""Recording instead of computing: traced arrays, the recording namespace, the traced backend.

While :func:`agrad.jit` traces a function, every array it touches is a :class:`Tracer`: a
stand-in that holds the real array of the first call (so shapes, dtypes and the first call's
results are real) and a *slot* number in the :class:`Trace`. Every operation on a tracer, through
its operators, its backend's namespace (``xp.exp``) or a backend method (``scatter_add``,
``random``), runs on the real arrays and is appended to the trace as one step of a straight-line
program. agrad's own code (functions, ``backward``, optimizers) runs unchanged: it takes its
namespace from the arrays it holds, and a tracer's namespace records.

Reading a traced value on the host (``float``, ``bool``, ``item``, ``numpy.asarray``) would bake
the first call's value into every replay, so it raises :class:`TraceError` instead.
"""

from __future__ import annotations

import numbers
import operator
import os
import sys
import threading
import types
from typing import Any

from agrad import backends as _backends
from agrad.backends import Backend, backend_for_type, backend_of
from agrad.config import _active_trace


class TraceError(RuntimeError):
    """A traced function read a traced value in Python, which a replay could not repeat.

    Raised by :func:`agrad.jit` for ``float(v)``, ``int(v)``, ``bool(v)`` (``if v:``,
    ``if v > 0:``), ``v.item()``, ``format(v, spec)``, and copies of a traced array to host
    memory, naming what was read and where.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> @agrad.jit
    ... def f(x):
    ...     return x * 2 if float(F.sum(x)) > 0 else x
    >>> f(agrad.current_backend().asarray([1.0]))
    Traceback (most recent call last):
    ...
    agrad.tracing.tracer.TraceError: agrad.jit: float() of a traced array ...
    """


_AGRAD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _user_frame() -> str:
    """``file:line`` of the innermost frame outside agrad: where the user's code read it."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_AGRAD_DIR) and "importlib" not in filename:
            return f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def host_read_error(what: str) -> TraceError:
    """The error for a read of a traced value on the host, naming what and where; the trace
    in progress remembers it, so that code which catches it cannot bake in what it did
    instead."""
    error = TraceError(
        f"agrad.jit: {what} of a traced array at {_user_frame()}: its value is not known "
        "while the function is traced, and a replay would reuse the first call's value. Move "
        "the read outside the jitted function (return the value and read it after the call), "
        "pass the value as a static argument (a Python number), or compute with array "
        "operations instead (xp.where instead of `if`)."
    )
    trace = _active.get()
    if trace is not None and trace.refused is None:
        trace.refused = error
    return error


def refusal(what: str, advice: str) -> TraceError:
    """The error for something done inside a jitted function that a replay would not repeat
    (a ``DataLoader`` iterated, a collective), naming the user's file and line."""
    return TraceError(f"agrad.jit: {what} inside a jitted function at {_user_frame()}; {advice}")


class Slot(int):
    """A reference to the value of a slot (its number) in a recorded program.

    An int of its own type, so that a template tells it from a constant; never tracked by the
    cyclic collector. One per slot number, shared by every trace (:func:`slot_ref`).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"v{int(self)}"


_new_int = int.__new__
_SLOT_REFS: list[Slot] = []  # Slot(i) at index i, made once per process
_SLOT_REFS_GROW = threading.Lock()


def slot_ref(slot: int) -> Slot:
    """The :class:`Slot` for slot number ``slot``."""
    try:
        return _SLOT_REFS[slot]
    except IndexError:
        with _SLOT_REFS_GROW:
            while len(_SLOT_REFS) <= slot:
                _SLOT_REFS.append(_new_int(Slot, len(_SLOT_REFS)))
        return _SLOT_REFS[slot]


# A recorded step is a plain tuple, made by one C call (the trace makes one per array call of
# the traced function, and an object with an __init__ cost as much as the array call itself):
#   (fn, args, kwargs, outs, effect, as_array, random, ins, produced)
# for ``outs = fn(*args, **kwargs)``. ``args``/``kwargs`` hold a Slot where a traced value
# goes. ``outs`` is a slot for a single result, a tuple (slot or None per element) for a
# sequence result, or None. ``effect``: the step changes something besides its result (an
# in-place write, a random draw) and is kept even when its result is not used. ``as_array``:
# the result comes back as a scalar where the library returns one for a 0-d result, and goes
# through this function (the backend's ``from_result``). ``random``: a random draw. ``ins``
# and ``produced``: the slots it reads and makes. Steps are told apart by identity.
Op = tuple
_NO_KWARGS: dict = {}  # shared by every step without keywords; never written


def make_op(
    fn: Any,
    args: Any,
    kwargs: dict,
    outs: Any,
    effect: bool = False,
    as_array: Any = False,
    random: bool = False,
    ins: Any = (),
) -> Op:
    """A step (see :data:`Op`), its ``produced`` slots worked out from ``outs``."""
    if outs is None:
        produced: tuple = ()
    elif isinstance(outs, tuple):
        produced = tuple(s for s in outs if s is not None)
    else:
        produced = (outs,)
    return (fn, args, kwargs, outs, effect, as_array, random, tuple(ins), produced)


_active = _active_trace


def active_trace() -> Trace | None:
    """The trace being recorded in this context, if any."""
    return _active.get()


LARGE = 4096  # elements: a value larger than this is large (see Released and jitted._large)
_INF = float("inf")


def elements(value: Any) -> float:
    """The number of elements of ``value`` (0 for a Python number, inf where not known)."""
    size = getattr(value, "size", 0)
    if type(size) is not int:  # PyTorch's size(), Dask's unknown sizes
        size = 1
        for n in value.shape:
            size = size * n if isinstance(n, int) else _INF
    return size


class Released:
    """What a trace keeps of a large value once no tracer holds it (the traced function
    dropped it): its size, buffer layout and backend, all the program's build reads of such a
    value, and not the array, so that the first call's memory stays near an eager call's
    instead of holding every value until the build."""

    __slots__ = ("backend", "layout", "size")

    def __init__(self, value: Any, size: float) -> None:
        self.backend = _real_backend(value)
        self.layout = self.backend.scratch_layout(value)
        self.size = size


class Trace:
    """A program being recorded: one concrete value per slot and the steps that made them.

    A large value that no tracer holds any more is replaced by its :class:`Released` record
    while the traced function runs (``sweeping``, see :meth:`_made_large`); inputs never are.
    """

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.ops: list[Op] = []
        self.closed = False
        self.backward_calls = 0
        self._token: Any = None
        self.sweeping = True
        self._held: list[int] = []  # the large values a tracer held at the last look
        self._inputs: set[int] = set()
        self.refused: TraceError | None = None  # the first read refused, caught or not

    def _made_large(self, slot: int) -> None:
        """A large value was just made (at ``slot``): replace the large values that no tracer
        holds any more by :class:`Released` records, and watch this one. Memory grows only as
        large values are made, so looking then keeps the first call's peak near eager's.

        The values the build reads in full (inputs, and what a traced backward reads, see
        ``sweeping``) are never released, so a refcount that misjudged would cost memory or
        nothing, never a wrong program."""
        if not self.sweeping:
            return
        values = self.values
        still = []
        for s in self._held:
            # two references: the list's and getrefcount's argument (no tracer, view or caller)
            if sys.getrefcount(values[s]) == 2:
                values[s] = Released(values[s], elements(values[s]))
            else:
                still.append(s)
        if slot not in self._inputs:
            still.append(slot)
        self._held = still

    def __enter__(self) -> Trace:
        self._token = _active.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _active.reset(self._token)
        self.closed = True

    def new_slot(self, value: Any) -> int:
        slot = len(self.values)
        self.values.append(value)
        if slot >= len(_SLOT_REFS):
            slot_ref(slot)
        if elements(value) > LARGE:
            self._made_large(slot)
        return slot

    def input(self, value: Any) -> Tracer:
        """A tracer for an input of the program holding ``value`` (an array or a number)."""
        self._inputs.add(len(self.values))  # (before new_slot, which may watch it)
        return self.wrap(value, self.new_slot(value))

    def wrap(self, value: Any, slot: int) -> Tracer:
        cls = _TRACER_CLASS.get(type(value))
        if cls is None:
            if isinstance(value, (int, float, complex)):
                cls = ScalarTracer
            else:
                cls = traced_backend(_real_backend(value)).array_type
                _ARRAY_TRACER[type(value)] = cls
            _TRACER_CLASS[type(value)] = cls
        tracer = _new(cls)
        tracer._trace, tracer._slot, tracer._value = self, slot, value
        return tracer

    # -- recording ----------------------------------------------------------------------------
    # Every array call of the traced function comes through here, so the common cases (one
    # tracer; two operands, one a tracer) have paths of their own, short and without loops.
    def unary(self, fn: Any, x: Tracer) -> Any:
        """``fn(x)`` for a tracer ``x``, recorded."""
        if self.closed:
            raise _escaped()
        slot = x._slot
        result = fn(x._value)
        cls = _ARRAY_TRACER.get(type(result))
        if cls is None:
            return self._record_result(fn, (x,), _NO_KWARGS, result, True, (x._value,), _NO_KWARGS)
        return self._made(fn, (_SLOT_REFS[slot],), (slot,), result, cls)

    def binary(self, fn: Any, a: Any, b: Any) -> Any:
        """``fn(a, b)`` where ``a`` or ``b`` is a tracer, recorded."""
        if self.closed:
            raise _escaped()
        refs = _SLOT_REFS
        if isinstance(a, Tracer):
            if isinstance(b, Tracer):
                ins: tuple = (a._slot, b._slot)
                targs: tuple = (refs[a._slot], refs[b._slot])
                result = fn(a._value, b._value)
            elif type(b) in _NESTED:
                return self.record(fn, (a, b), _NO_KWARGS)
            else:
                ins, targs = (a._slot,), (refs[a._slot], b)
                result = fn(a._value, b)
        elif type(a) in _NESTED:
            return self.record(fn, (a, b), _NO_KWARGS)
        else:
            ins, targs = (b._slot,), (a, refs[b._slot])
            result = fn(a, b._value)
        cls = _ARRAY_TRACER.get(type(result))
        if cls is None:
            cargs = _concrete((a, b), [False])
            return self._record_result(fn, (a, b), _NO_KWARGS, result, True, cargs, _NO_KWARGS)
        return self._made(fn, targs, ins, result, cls)

    def _made(self, fn: Any, targs: tuple, ins: tuple, result: Any, cls: Any, effect=False) -> Any:
        """Append the step that made array ``result`` and return its tracer."""
        values = self.values
        slot = len(values)
        values.append(result)
        if slot >= len(_SLOT_REFS):
            slot_ref(slot)
        size = result.size  # (PyTorch's is a method, Dask's may be unknown: elements() then)
        if (size if size.__class__ is int else elements(result)) > LARGE:
            self._made_large(slot)
        self.ops.append((fn, targs, _NO_KWARGS, slot, effect, False, False, ins, (slot,)))
        tracer = _new(cls)
        tracer._trace, tracer._slot, tracer._value = self, slot, result
        return tracer

    def record(
        self,
        fn: Any,
        args: tuple,
        kwargs: dict,
        effect: bool = False,
        backend: Backend | None = None,
        random: bool = False,
    ) -> Any:
        """Run ``fn`` on the concrete values of ``args`` and append it to the program.

        Returns the result with tracers in place of arrays (and of numbers computed from
        traced numbers); a result holding no array is returned as it is and not recorded.
        """
        if self.closed:
            raise _escaped()
        if not kwargs and not random:
            # positional tracers and plain values, one array out
            refs = _SLOT_REFS
            ins = []
            cargs = []
            targs = []
            for a in args:
                if isinstance(a, Tracer):
                    slot = a._slot
                    ins.append(slot)
                    cargs.append(a._value)
                    targs.append(refs[slot])
                elif type(a) in _NESTED:
                    break
                else:
                    cargs.append(a)
                    targs.append(a)
            else:
                result = fn(*cargs)
                cls = _ARRAY_TRACER.get(type(result))
                if cls is not None and ins:
                    return self._made(fn, tuple(targs), tuple(ins), result, cls, effect)
                return self._record_result(
                    fn, args, kwargs, result, bool(ins), cargs, kwargs, effect, backend
                )
        found = [False]
        cargs = _concrete(args, found)
        ckwargs = _concrete(kwargs, found) if kwargs else kwargs
        result = fn(*cargs, **ckwargs)
        return self._record_result(
            fn, args, kwargs, result, found[0], cargs, ckwargs, effect, backend, random
        )

    def _record_result(
        self,
        fn: Any,
        args: tuple,
        kwargs: dict,
        result: Any,
        traced_input: bool,
        cargs: Any,
        ckwargs: Any,
        effect: bool = False,
        backend: Backend | None = None,
        random: bool = False,
    ) -> Any:
        """Record a step whose arguments or result are not the common case's."""
        is_sequence = isinstance(result, (tuple, list)) and not _is_array(result)
        if is_sequence:
            kind = "sequence" if _holds_array(result) or traced_input else None
        elif _is_array(result):
            kind = "array"
        elif traced_input and _is_number(result):
            kind = "number"  # arithmetic on traced Python numbers
        else:
            kind = None
        if kind is None and not (effect or random):
            return result  # a static answer (a dtype, a bool about dtypes)
        ins: list[int] = []
        targs = _template(args, ins)
        tkwargs = _template(kwargs, ins) if kwargs else _NO_KWARGS
        as_array: Any = False
        if kind == "sequence":
            outs: Any = []
            wrapped = []
            for item in result:
                if (_is_array(item) and _owned(item)) or (traced_input and _is_number(item)):
                    slot = self.new_slot(item)
                    outs.append(slot)
                    wrapped.append(self.wrap(item, slot))
                elif _is_array(item):
                    raise TraceError(
                        f"agrad.jit: {getattr(fn, '__name__', fn)} returned a sequence "
                        "holding a scalar; not supported in a traced function"
                    )
                else:
                    outs.append(None)
                    wrapped.append(item)
            outs = tuple(outs)
            if type(result) in (tuple, list):
                out_value = type(result)(wrapped)
            else:  # a named tuple: the same type, traced items
                out_value = type(result)(*wrapped)
        elif kind is None:
            outs = None
            out_value = result
        else:
            if kind == "array" and not _owned(result):
                # NumPy returns 0-d results as scalars; agrad's arrays are always arrays
                real = backend or _first_backend(cargs, ckwargs)
                as_array = real.from_result
                result = as_array(result)
            outs = self.new_slot(result)
            out_value = self.wrap(result, outs)
        self.ops.append(make_op(fn, targs, tkwargs, outs, effect or random, as_array, random, ins))
        return out_value


def _escaped() -> TraceError:
    return TraceError(
        "agrad.jit: a traced array was used after its trace ended (it escaped the jitted "
        "function through a place agrad.jit does not watch, such as a tuple or an object "
        "outside the function's reach)"
    )


_new = object.__new__
_NESTED = (tuple, list, dict, slice)
# value type -> the tracer class that stands for it, and the same for array types alone
_TRACER_CLASS: dict[type, Any] = {}
_ARRAY_TRACER: dict[type, Any] = {}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, complex)) and not isinstance(x, Tracer)


def _is_array(x: Any) -> bool:
    """An array of some library (or a NumPy scalar): has ``shape`` and ``dtype``."""
    if isinstance(x, (type, Tracer)):
        return isinstance(x, Tracer) and not isinstance(x, ScalarTracer)
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _owned(x: Any) -> bool:
    """Whether ``x`` is an array of an agrad backend (not a NumPy scalar)."""
    return backend_for_type(type(x)) is not None or backend_of(x, None) is not None


def _real_backend(x: Any) -> Backend:
    backend = backend_for_type(type(x))
    return backend if backend is not None else backend_of(x)


def _holds_array(x: Any) -> bool:
    if isinstance(x, (tuple, list)):
        return any(_is_array(item) for item in x)
    return _is_array(x)


def _first_backend(args: Any, kwargs: Any) -> Backend:
    for x in (*args, *kwargs.values()):
        if _is_array(x) and _owned(x):
            return _real_backend(x)
    return _backends.current_backend()


def _concrete(x: Any, found: list) -> Any:
    """``x`` with every tracer replaced by its value (in tuples, lists, dicts, slices)."""
    t = type(x)
    if t is tuple or t is list:
        return t([_concrete(item, found) for item in x])
    if isinstance(x, Tracer):
        found[0] = True
        return x._value
    if t is dict:
        return {k: _concrete(v, found) for k, v in x.items()}
    if t is slice:
        return slice(_concrete(x.start, found), _concrete(x.stop, found), _concrete(x.step, found))
    return x


def _template(x: Any, ins: list[int]) -> Any:
    """``x`` with every tracer replaced by its :class:`Slot` (whose number goes to ``ins``)."""
    t = type(x)
    if t is tuple or t is list:
        return t([_template(item, ins) for item in x])
    if isinstance(x, Tracer):
        ins.append(x._slot)
        return _SLOT_REFS[x._slot]
    if t is dict:
        return {k: _template(v, ins) for k, v in x.items()}
    if t is slice:
        return slice(_template(x.start, ins), _template(x.stop, ins), _template(x.step, ins))
    return x


# -- traced values ------------------------------------------------------------------------------
def _setitem(x: Any, key: Any, value: Any) -> Any:
    x[key] = value
    return x


_DEFERS: dict[type, bool] = {}  # operand type -> whether `tracer (op) operand` defers to it


def _defers(kind: type) -> bool:
    """Whether ``array (op) other`` is ``other``'s to compute, for an operand of type ``kind``:
    as NumPy does, where it sets ``__array_ufunc__ = None`` (a Variable, whose reflected
    operator adds the operation to the graph). Cached per type: a missed attribute lookup costs
    a fifth of a microsecond, on every traced operator."""
    answer = getattr(kind, "__array_ufunc__", False) is None and not issubclass(kind, Tracer)
    _DEFERS[kind] = answer
    return answer


def _binary(op: Any) -> Any:
    def method(self: Tracer, other: Any) -> Any:
        defers = _DEFERS.get(type(other))
        if defers or (defers is None and _defers(type(other))):
            return NotImplemented
        return self._trace.binary(op, self, other)

    method.__name__ = f"__{op.__name__.strip('_')}__"
    return method


def _reflected(op: Any) -> Any:
    def method(self: Tracer, other: Any) -> Any:
        return self._trace.binary(op, other, self)

    method.__name__ = f"__r{op.__name__.strip('_')}__"
    return method


def _inplace(op: Any) -> Any:
    def method(self: Tracer, other: Any) -> Any:
        result = self._trace.record(op, (self, other), _NO_KWARGS, True)
        if isinstance(result, Tracer) and result._value is self._value:
            # written in place: every holder of this tracer sees the new value, as every
            # holder of the array does
            self._slot = result._slot
            return self
        return result  # a library without in-place writes made a new array

    return method


def _unary(op: Any) -> Any:
    def method(self: Tracer) -> Any:
        return self._trace.unary(op, self)

    return method


def _refuse(what: str) -> Any:
    def method(self: Tracer, *args: Any) -> Any:
        raise host_read_error(what)

    return method


class Tracer:
    """A traced array: its value in the first call and its slot in the program being recorded.

    Behaves as the array for agrad's code and the user's: operators, indexing, ``shape`` and
    ``dtype`` (static: part of the signature), the Array API namespace (which records).
    """

    # (weakly referable as arrays are: a layer keeps weak references to its last inputs, and
    # a strong one would keep the trace's array alive and make it a second place of an input)
    __slots__ = ("__weakref__", "_slot", "_trace", "_value")
    __array_priority__ = 300  # NumPy defers `ndarray (op) tracer` to our reflected operator
    __array_ufunc__ = None
    _traced_backend: Any = None  # set on each backend's subclass

    # static properties
    @property
    def shape(self) -> tuple:
        shape = self._value.shape
        return shape if type(shape) is tuple else tuple(shape)

    @property
    def dtype(self) -> Any:
        return self._value.dtype

    @property
    def ndim(self) -> int:
        return len(self._value.shape)

    @property
    def size(self) -> int:
        size = 1
        for n in self._value.shape:
            size *= n
        return size

    @property
    def device(self) -> Any:
        return self._value.device

    @property
    def T(self) -> Any:
        return self._trace.record(operator.attrgetter("T"), (self,), {})

    @property
    def mT(self) -> Any:
        return self._trace.record(operator.attrgetter("mT"), (self,), {})

    def __len__(self) -> int:
        if not self._value.shape:
            raise TypeError("len() of a 0-d traced array")
        return self._value.shape[0]

    def __iter__(self) -> Any:
        for i in range(len(self)):
            yield self[i]

    def __array_namespace__(self, api_version: Any = None) -> Any:
        return self._traced_backend.xp

    def __getitem__(self, key: Any) -> Any:
        return self._trace.record(operator.getitem, (self, key), {})

    def __setitem__(self, key: Any, value: Any) -> None:
        result = self._trace.record(_setitem, (self, key, value), {}, effect=True)
        self._slot = result._slot

    def __getattr__(self, name: str) -> Any:
        # array methods agrad's portable code does not use but a library-specific caller may
        # (x.copy(), x.astype(...)): recorded; plain attributes (flags, strides) are static
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._value, name)
        if callable(attr):
            trace = self._trace

            def method(*args: Any, **kwargs: Any) -> Any:
                return trace.record(_method(name), (self, *args), kwargs)

            return method
        if _is_array(attr):
            return self._trace.record(operator.attrgetter(name), (self,), {})
        return attr

    def __repr__(self) -> str:
        return f"<traced array shape={self.shape} dtype={self.dtype}>"

    __hash__ = object.__hash__
    __float__ = _refuse("float()")
    __int__ = _refuse("int()")
    __bool__ = _refuse("bool() (an `if`, `while`, `and`/`or` or `not` on it)")
    __index__ = _refuse("use as an index (int())")
    __complex__ = _refuse("complex()")
    __array__ = _refuse("conversion to a NumPy array")
    __dlpack__ = _refuse("a DLPack export")
    item = _refuse(".item()")
    tolist = _refuse(".tolist()")

    def __format__(self, spec: str) -> str:
        if not spec:
            return repr(self)
        raise host_read_error(f"format(..., {spec!r})")

    __add__, __radd__, __iadd__ = (
        _binary(operator.add),
        _reflected(operator.add),
        _inplace(operator.iadd),
    )
    __sub__, __rsub__, __isub__ = (
        _binary(operator.sub),
        _reflected(operator.sub),
        _inplace(operator.isub),
    )
    __mul__, __rmul__, __imul__ = (
        _binary(operator.mul),
        _reflected(operator.mul),
        _inplace(operator.imul),
    )
    __truediv__, __rtruediv__, __itruediv__ = (
        _binary(operator.truediv),
        _reflected(operator.truediv),
        _inplace(operator.itruediv),
    )
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv), _reflected(operator.floordiv)
    __mod__, __rmod__ = _binary(operator.mod), _reflected(operator.mod)
    __pow__, __rpow__, __ipow__ = (
        _binary(operator.pow),
        _reflected(operator.pow),
        _inplace(operator.ipow),
    )
    __matmul__, __rmatmul__ = _binary(operator.matmul), _reflected(operator.matmul)
    __and__, __rand__ = _binary(operator.and_), _reflected(operator.and_)
    __or__, __ror__ = _binary(operator.or_), _reflected(operator.or_)
    __xor__, __rxor__ = _binary(operator.xor), _reflected(operator.xor)
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)  # type: ignore[assignment]
    __neg__, __pos__, __abs__ = _unary(operator.neg), _unary(operator.pos), _unary(abs)
    __invert__ = _unary(operator.invert)


_METHODS: dict[str, Any] = {}


def _method(name: str) -> Any:
    """``lambda x, *a, **k: x.<name>(*a, **k)``, one function per name (a recorded step)."""
    fn = _METHODS.get(name)
    if fn is None:

        def fn(x: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(x, name)(*args, **kwargs)

        fn.__name__ = name
        _METHODS[name] = fn
    return fn


class ScalarTracer(Tracer):
    """A traced Python number: an optimizer's hyperparameter or step count, read at each call.

    Arithmetic on it is recorded and replays as Python arithmetic on the numbers of that call.
    """

    __slots__ = ()
    _traced_number = True  # agrad's functions take it as a Python number, weakly typed

    @property
    def shape(self) -> tuple:
        return ()

    @property
    def dtype(self) -> Any:
        raise AttributeError("a traced Python number has no dtype")

    def __repr__(self) -> str:
        return f"<traced {type(self._value).__name__}>"


numbers.Number.register(ScalarTracer)


# -- the recording namespace and backend ------------------------------------------------------
def _recording(fn: Any, backend: Backend, random: bool = False, effect: bool = False) -> Any:
    plain = not (random or effect)

    def call(*args: Any, **kwargs: Any) -> Any:
        trace = _active.get()
        if trace is None:
            trace = _trace_of(args, kwargs)
            if trace is None:  # nothing traced, no trace open: an ordinary call
                return fn(*args, **kwargs)
        if plain and not kwargs and len(args) == 1 and isinstance(args[0], Tracer):
            return trace.unary(fn, args[0])  # xp.exp(x), xp.tanh(x), ...
        return trace.record(fn, args, kwargs, effect, backend, random)

    call.__name__ = getattr(fn, "__name__", "call")
    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call


def _trace_of(args: tuple, kwargs: dict) -> Trace | None:
    for x in (*args, *kwargs.values()):
        if isinstance(x, Tracer):
            return x._trace
        if isinstance(x, (tuple, list)):
            found = _trace_of(tuple(x), {})
            if found is not None:
                return found
    return None


class RecordingNamespace:
    """A backend's Array API namespace whose every function records its call."""

    def __init__(self, namespace: Any, backend: Backend) -> None:
        self._namespace = namespace
        self._backend = backend

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._namespace, name)
        if isinstance(attr, (types.ModuleType, types.SimpleNamespace)):  # xp.linalg, xp.fft
            value: Any = RecordingNamespace(attr, self._backend)
        elif callable(attr) and not isinstance(attr, type) and not _is_dtype(attr):
            value = _recording(attr, self._backend)
        else:  # dtypes, constants (pi, newaxis)
            value = attr
        setattr(self, name, value)
        return value

    def __repr__(self) -> str:
        return f"<recording namespace of {self._backend.name!r}>"


def _is_dtype(x: Any) -> bool:
    return type(x).__name__ in ("dtype", "DType") or "dtype" in type(x).__name__.lower()


# Backend methods that draw random numbers: a replay draws anew (never reuses the traced draw),
# and a compiled replay draws them before it runs.
# (and any other whose name says so: host_randn, ...)
_RANDOM_METHODS = ("random", "randn", "permutation")
# Backend methods that return no array a replay needs, and take none: answered directly
_STATIC_METHODS = (
    "dtype",
    "dtype_name",
    "device_name",
    "devices",
    "probe",
    "install_hint",
    "require",
    "require_known_shape",
)


class TracedBackend:
    """A backend seen through tracing: same name and properties, a recording namespace, and
    methods that record (array methods) or refuse (host copies)."""

    def __init__(self, real: Backend) -> None:
        self.real = real
        self.name = real.name
        self.xp = RecordingNamespace(real.xp, real)
        self.array_type = type(f"Tracer_{real.name}", (Tracer,), {"__slots__": ()})
        self.array_type._traced_backend = self
        self.gpu = real.gpu
        self.lazy = real.lazy
        self.mutable_arrays = real.mutable_arrays
        self.known_shapes = real.known_shapes
        self.stride_tricks = real.stride_tricks
        self.traced = True

    @property
    def checks_stay_on_device(self) -> bool:
        # a check that reads a flag on the host would be a value-dependent branch
        return True

    def owns(self, x: Any) -> bool:
        return isinstance(x, self.array_type)

    def to_host(self, x: Any) -> Any:
        raise host_read_error("a copy to host memory")

    def is_writable(self, x: Any) -> bool:
        return self.real.is_writable(x._value) if isinstance(x, Tracer) else False

    def from_result(self, value: Any) -> Any:
        if isinstance(value, Tracer):
            return value
        return self.__getattr__("from_result")(value)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if name in _STATIC_METHODS or not callable(attr):
            return attr
        random = name in _RANDOM_METHODS or "rand" in name or "permutation" in name
        draw = getattr(getattr(attr, "__func__", None), "draw", None)
        if draw is not None:  # (the draw itself: its wrapper sends traced calls back here)
            attr = types.MethodType(draw, self.real)
        value = _recording(attr, self.real, random=random, effect=name == "seed")
        setattr(self, name, value)
        return value

    def __repr__(self) -> str:
        return f"<agrad backend {self.name!r} (traced)>"


_TRACED: dict[Backend, TracedBackend] = {}


def traced_backend(real: Backend) -> TracedBackend:
    """The traced twin of ``real`` (one per backend), registered for its tracer type."""
    traced = _TRACED.get(real)
    if traced is None:
        traced = _TRACED[real] = TracedBackend(real)
        _backends.register_array_type(traced.array_type, traced)  # type: ignore[arg-type]
    return traced
