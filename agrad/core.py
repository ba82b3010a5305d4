"""The autograd core: ``Variable``, ``Function`` and reverse-mode ``backward`` (DeZero semantics).

Gradients are ``Variable``s, accumulate out of place across ``backward`` calls, and ``cleargrad``
resets them. When ``create_graph`` is False the backward pass runs each function's ``vjp`` on plain
arrays (no graph, no Variable wrappers); with ``create_graph=True`` the same ``vjp`` runs on
Variables through ``agrad.functions`` so the gradient is itself differentiable.
"""

from __future__ import annotations

import heapq
import numbers
import weakref
from abc import get_cache_token
from typing import Any

from agrad import backends as _backends
from agrad.backends import Backend, backend_of, current_backend
from agrad.config import _enable_backprop
from agrad.ops import array_ops

_BY_TYPE = _backends._BY_TYPE  # one dict lookup per array in the hot path


# type -> "is it a numbers.Number": an ABC isinstance check costs ~0.3 µs, a dict hit ~30 ns.
# Registering a class with an ABC changes abc's cache token, which empties this cache.
_NUMBER_TYPES: dict[type, bool] = {}
_number_types_token = [get_cache_token()]


def _is_number(x: Any) -> bool:
    """Python numbers and NumPy-style scalars (anything registered as ``numbers.Number``)."""
    if _number_types_token[0] != get_cache_token():
        _NUMBER_TYPES.clear()
        _number_types_token[0] = get_cache_token()
    known = _NUMBER_TYPES.get(type(x))
    if known is None:
        known = _NUMBER_TYPES[type(x)] = isinstance(x, numbers.Number)
    return known


def _scalar(x: Any) -> Any:
    """A plain Python number, so that it is a *weak* scalar: ``float32 * 2.0`` stays float32."""
    if type(x) is float or type(x) is int:
        return x
    item = getattr(x, "item", None)
    return item() if item is not None else x


def _backend_of_array(x: Any) -> Backend:
    backend = _BY_TYPE.get(type(x))
    return backend if backend is not None else backend_of(x)


_new_variable = object.__new__
_weakref = weakref.ref


def _describe(x: Any) -> str:
    return f"{type(x).__module__}.{type(x).__qualname__}"


class Variable:
    """A node of the graph: an array (``data``) plus its gradient and the function that made it."""

    __slots__ = ("__weakref__", "creator", "data", "generation", "grad", "name")
    __array_priority__ = 200  # NumPy/CuPy defer `ndarray (op) Variable` to our reflected operator
    __array_ufunc__ = None  # and NumPy never treats a Variable as an array-like

    def __init__(self, data: Any, name: str | None = None) -> None:
        if data is not None and type(data) not in _BY_TYPE and backend_of(data, None) is None:
            raise TypeError(
                f"Variable data must be an array of an agrad backend "
                f"({', '.join(_backends.known_backends())}) or None, not {_describe(data)}; "
                "wrap Python numbers and lists with agrad.as_array(...) first"
            )
        self.data = data
        self.name = name
        self.grad: Variable | None = None
        self.creator: Function | None = None
        self.generation = 0

    # -- array-like properties --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions of ``data``."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements of ``data``."""
        return self.data.size

    @property
    def dtype(self) -> Any:
        """Dtype of ``data``."""
        return self.data.dtype

    @property
    def backend(self) -> Backend:
        """The backend ``data`` lives on."""
        return _backend_of_array(self.data)

    @property
    def xp(self) -> Any:
        """The Array API namespace of ``data``."""
        return _backend_of_array(self.data).xp

    def __len__(self) -> int:
        return self.data.shape[0]

    def __repr__(self) -> str:
        if self.data is None:
            return "variable(None)"
        text = str(self.backend.to_host(self.data)).replace("\n", "\n" + " " * 9)
        return f"variable({text})"

    # -- graph ------------------------------------------------------------------------------
    def set_creator(self, func: Function) -> None:
        """Record ``func`` as the function that produced this variable."""
        self.creator = func
        self.generation = func.generation + 1

    def cleargrad(self) -> None:
        """Forget the gradient, so the variable can be reused in a new computation."""
        self.grad = None

    def unchain(self) -> None:
        """Cut this variable from the function that created it."""
        self.creator = None

    def unchain_backward(self) -> None:
        """Cut every variable upstream of this one from its creator (truncated backprop)."""
        if self.creator is None:
            return
        pending = [self.creator]
        seen = {id(self.creator)}
        while pending:
            func = pending.pop()
            for x in func.inputs:
                creator = x.creator
                if creator is not None:
                    if id(creator) not in seen:
                        seen.add(id(creator))
                        pending.append(creator)
                    x.unchain()

    def register_post_accumulate_grad_hook(self, hook: Any) -> HookHandle:
        """Call ``hook(self)`` in every ``backward()`` once this leaf's ``grad`` is final."""
        hooks = _post_accumulate_grad_hooks.get(self)
        if hooks is None:
            hooks = _post_accumulate_grad_hooks[self] = {}
        handle = HookHandle(hooks)
        hooks[handle.id] = hook
        return handle

    def backward(self, retain_grad: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into the ``grad`` of every leaf variable in the graph.

        ``retain_grad`` keeps the gradients of intermediate variables too; ``create_graph``
        records the backward pass so that gradients can be differentiated again.
        """
        if self.data is None:
            raise ValueError("backward() called on a Variable without data")
        if self.grad is None:
            self.grad = Variable(self.backend.xp.ones_like(self.data))
        if self.creator is not None:
            token = _enable_backprop.set(create_graph)  # using_config's effect, without its cost
            try:
                _backprop(self, retain_grad, create_graph)
            finally:
                _enable_backprop.reset(token)

    # -- moving between backends ------------------------------------------------------------
    def to(self, backend: str | Backend) -> Variable:
        """Move ``data`` (and ``grad``) to ``backend`` in place; returns ``self``."""
        target = _backends.get_backend(backend)
        target.require()
        if self.data is not None:
            self.data = target.asarray(self.data)
        if self.grad is not None:
            self.grad.to(target)
        return self

    def to_cpu(self) -> Variable:
        """Move to NumPy on the host."""
        return self.to("numpy")

    def to_gpu(self) -> Variable:
        """Move to CuPy on the current CUDA device."""
        return self.to("cupy")

    # -- shape methods (DeZero's) -----------------------------------------------------------
    def reshape(self, *shape: Any) -> Variable:
        """``F.reshape``; takes varargs or one tuple/list."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _F.reshape(self, tuple(shape))

    def transpose(self, *axes: Any) -> Variable:
        """``F.transpose``; no axes reverses them; takes varargs, one tuple/list, or None."""
        if len(axes) == 0:
            axes = None
        elif len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        return _F.transpose(self, axes)

    @property
    def T(self) -> Variable:
        """Transpose with the axes reversed."""
        return _F.transpose(self)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Variable:
        """``F.sum``."""
        return _F.sum(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Variable:
        """``F.max``."""
        return _F.max(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Variable:
        """``F.min``."""
        return _F.min(self, axis, keepdims)

    def matmul(self, other: Any) -> Variable:
        """``F.matmul``."""
        return _F.matmul(self, other)

    dot = matmul

    def __getitem__(self, slices: Any) -> Variable:
        return _F.get_item(self, slices)

    # -- operators --------------------------------------------------------------------------
    # __add__, __sub__, __mul__, __truediv__, __neg__ and __pow__ are the arithmetic functions
    # themselves (set at the end of this module): one Python call less per operation.
    def __radd__(self, other: Any) -> Variable:
        return _arith.add(other, self)

    def __rsub__(self, other: Any) -> Variable:
        return _arith.sub(other, self)

    def __rmul__(self, other: Any) -> Variable:
        return _arith.mul(other, self)

    def __rtruediv__(self, other: Any) -> Variable:
        return _arith.div(other, self)

    def __matmul__(self, other: Any) -> Variable:
        return _F.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Variable:
        return _F.matmul(other, self)


# leaf -> {handle id: hook}; weak keys, so a hook never keeps its variable alive
_post_accumulate_grad_hooks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class HookHandle:
    """What ``register_post_accumulate_grad_hook`` returns: ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict) -> None:
        self.id = HookHandle._next_id
        HookHandle._next_id += 1
        self._hooks = hooks  # the variable's own table: holding it does not hold the variable

    def remove(self) -> None:
        """Stop calling the hook (a second call does nothing)."""
        self._hooks.pop(self.id, None)


class Parameter(Variable):
    """A Variable that a ``Layer`` registers as trainable."""

    __slots__ = ()


def as_array(x: Any, array_module: Any = None) -> Any:
    """Turn a Python/NumPy scalar into a 0-d array (of ``array_module`` or the default backend)."""
    if _is_number(x):
        if array_module is None:
            return current_backend().xp.asarray(_scalar(x))
        return array_module.asarray(_scalar(x))
    return x


def array_of(x: Any) -> Any:
    """The array behind ``x``: ``x.data`` for a Variable, ``x`` itself otherwise."""
    return x.data if isinstance(x, Variable) else x


def as_variable(obj: Any) -> Variable:
    """``obj`` if it is a Variable, else ``Variable(obj)``."""
    return obj if isinstance(obj, Variable) else Variable(obj)


class Function:
    """An operation of the graph.

    Subclasses implement ``forward(*arrays)`` and either DeZero's ``backward(*gys)`` on Variables,
    or ``vjp(d, xs, ys, gys)`` which agrad runs on plain arrays when no graph of the backward is
    needed and on Variables otherwise: ``d`` is a namespace of agrad's differentiable functions
    (``d.exp``, ``d.sum_to``, ...), bound to arrays or to Variables accordingly; ``xs``/``ys`` are
    the inputs/outputs and ``gys`` the output gradients, all of the same kind. ``self.xp`` is the
    array namespace of the inputs.
    """

    generation = 0
    #: indexes of the inputs / outputs whose arrays ``vjp`` reads (None: all of them); the
    #: others reach ``vjp`` as stand-ins that only know ``shape``, ``ndim`` and ``dtype``
    retain_inputs: tuple[int, ...] | None = None
    retain_outputs: tuple[int, ...] | None = None
    #: names of instance attributes holding arrays that ``vjp`` reads (masks, argmax indexes)
    retain_attributes: tuple[str, ...] = ()
    inputs: tuple[Variable, ...] = ()
    outputs: tuple[weakref.ref, ...] = ()
    xp: Any = None
    _vjp_based = False
    # per input: True where the caller passed a raw array or number, which __call__ wrapped in a
    # Variable of its own; nobody holds that Variable, so its gradient is never stored
    _wrapped_inputs: tuple[bool, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the most derived of `vjp`/`backward` decides; a DeZero-style subclass overrides backward
        for klass in cls.__mro__:
            if klass is Function:
                cls._vjp_based = False
                break
            if "backward" in klass.__dict__:
                cls._vjp_based = False
                break
            if "vjp" in klass.__dict__:
                cls._vjp_based = True
                break

    def __call__(self, *inputs: Any) -> Any:
        # The hot path of every operation: written for speed (no helper calls, no comprehensions
        # for the usual one- and two-input cases); the behaviour is the plain one described in
        # the comments.
        if len(inputs) == 1 and isinstance(inputs[0], Variable):
            # the commonest call: one Variable holding an array of a loaded backend
            x0 = inputs[0]
            backend = _BY_TYPE.get(type(x0.data))
            if backend is not None and backend._xp is not None:  # known type, library loaded
                xp = self.xp = backend._xp
                ys = self.forward(x0.data)
                if not isinstance(ys, tuple):
                    output = _new_variable(Variable)
                    output.data = ys if type(ys) is backend._array_type else backend.from_result(ys)
                    output.name = output.grad = output.creator = None
                    if _enable_backprop.get():
                        self.generation = generation = x0.generation
                        output.creator = self
                        output.generation = generation + 1
                        self.inputs = inputs
                        self.outputs = (_weakref(output),)
                    else:
                        output.generation = 0
                    return output
                return self._wrap_outputs(ys, backend, inputs, x0.generation)
        backend = None
        wrap = False  # some input is a raw array or a number, to be wrapped in a Variable
        for x in inputs:
            if isinstance(x, Variable):
                data = x.data
            else:
                data = x
                wrap = True
            if data is None:
                continue
            b = _BY_TYPE.get(type(data))  # no agrad array type is a number
            if b is None:
                if _is_number(data):
                    continue
                b = backend_of(data, None)
                if b is None:
                    raise TypeError(
                        f"{type(self).__name__}: unsupported input type {_describe(data)}; "
                        "expected a Variable, an array of an agrad backend, or a Python number"
                    )
            if b is not backend:
                if backend is not None:
                    raise TypeError(
                        f"{type(self).__name__}: inputs live on different backends "
                        f"({backend.name!r} and {b.name!r}); move them with Variable.to(...) first"
                    )
                backend = b
        if backend is None:
            backend = current_backend()
        xp = self.xp = backend.xp
        if wrap:
            self._wrapped_inputs = tuple([not isinstance(x, Variable) for x in inputs])
            inputs = tuple(
                [
                    x if isinstance(x, Variable) else Variable(_number_to_array(x, xp, inputs))
                    for x in inputs
                ]
            )
        n_inputs = len(inputs)
        if n_inputs == 1:
            x0 = inputs[0]
            ys = self.forward(x0.data)
            generation = x0.generation
        elif n_inputs == 2:
            x0, x1 = inputs
            ys = self.forward(x0.data, x1.data)
            generation = x0.generation if x0.generation >= x1.generation else x1.generation
        else:
            ys = self.forward(*[x.data for x in inputs])
            generation = max([x.generation for x in inputs]) if inputs else 0
        array_type = backend.array_type
        record = _enable_backprop.get()
        if not isinstance(ys, tuple):  # one output
            output = _new_variable(Variable)
            output.data = ys if type(ys) is array_type else backend.from_result(ys)
            output.name = output.grad = output.creator = None
            output.generation = 0
            if record:
                self.generation = generation
                output.creator = self
                output.generation = generation + 1
                self.inputs = inputs
                self.outputs = (_weakref(output),)
            return output
        return self._wrap_outputs(ys, backend, inputs, generation)

    def _wrap_outputs(self, ys: tuple, backend: Backend, inputs: tuple, generation: int) -> Any:
        """Variables for a tuple of outputs, recorded in the graph when backprop is enabled."""
        array_type, from_result = backend.array_type, backend.from_result
        outputs = [Variable(y if type(y) is array_type else from_result(y)) for y in ys]
        if _enable_backprop.get():
            self.generation = generation
            for output in outputs:
                output.creator = self
                output.generation = generation + 1
            self.inputs = inputs
            self.outputs = tuple([_weakref(output) for output in outputs])
        return outputs if len(outputs) > 1 else outputs[0]

    def forward(self, *xs: Any) -> Any:
        """Compute the outputs from input arrays."""
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, *gys: Variable) -> Any:
        """DeZero's protocol: output gradients in, input gradients out, as Variables."""
        if not type(self)._vjp_based:
            raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")
        ys = tuple(ref() for ref in self.outputs)
        return self.vjp(_F, self.inputs, ys, gys)

    def vjp(self, d: Any, xs: tuple, ys: tuple, gys: tuple) -> Any:
        """Input gradients from output gradients; see the class docstring."""
        raise NotImplementedError(f"{type(self).__name__}.vjp is not implemented")

    def needs_input_grad(self, index: int) -> bool:
        """Whether backward keeps the gradient of input ``index``.

        False for an input passed as a raw array or number (``F.linear(x_array, W)``): agrad
        wrapped it in a Variable only this function holds, so its gradient is dropped and a
        ``vjp`` may return None for it instead of computing it.
        """
        wrapped = self._wrapped_inputs
        return not (wrapped and wrapped[index])


def _number_to_array(x: Any, xp: Any, inputs: tuple) -> Any:
    """A Python number as a 0-d array; takes the floating dtype of the other inputs if any."""
    if x is None or not _is_number(x):
        return x
    value = _scalar(x)
    for other in inputs:
        data = other.data if isinstance(other, Variable) else other
        dtype = getattr(data, "dtype", None)
        floating = dtype is not None and xp.isdtype(dtype, "real floating")
        if floating and not _is_number(data) and isinstance(value, (int, float)):
            return xp.asarray(value, dtype=dtype)
    return xp.asarray(value)


def _as_tuple(gxs: Any) -> tuple:
    return gxs if isinstance(gxs, tuple) else tuple(gxs) if isinstance(gxs, list) else (gxs,)


def _backprop(root: Variable, retain_grad: bool, create_graph: bool) -> None:
    """Run every function behind ``root`` once, in decreasing generation order."""
    graph_mode = create_graph
    # gradient of each variable reached so far: arrays (fast mode) or Variables (graph mode)
    grads: dict[Variable, Any] = {root: root.grad if graph_mode else root.grad.data}
    pop_grad = grads.pop
    if not retain_grad:
        root.grad = None
    func = root.creator
    # Functions waiting to run, as (-generation, arrival, function): highest generation first,
    # ties in arrival order. When the function just reached is the only one waiting (a chain),
    # it runs next without going through the heap; the order is the same.
    heap: list[tuple[int, int, Function]] = []
    seen = {func}
    reached: list[Function] = []
    tick = 0
    xp = ops = array_type = from_result = None  # for the last namespace seen
    while True:
        refs = func.outputs
        if len(refs) == 1:
            y = refs[0]()
            gy = pop_grad(y, None) if y is not None else None
            if retain_grad and gy is not None:
                y.grad = gy if graph_mode else Variable(gy)
            outputs = (y,)
            gys = (gy,)
            has_grad = gy is not None
        else:
            outputs = [ref() for ref in refs]
            gys = tuple([pop_grad(y, None) if y is not None else None for y in outputs])
            if retain_grad:
                for y, gy in zip(outputs, gys):
                    if y is not None and gy is not None:
                        y.grad = gy if graph_mode else Variable(gy)
            has_grad = any(gy is not None for gy in gys)
        if has_grad:
            inputs = func.inputs
            if graph_mode:
                gxs = func.backward(*gys)
            else:
                if func.xp is not xp:
                    xp = func.xp
                    ops = array_ops(xp)
                    array_type = ops.array_type
                    owner = _BY_TYPE.get(array_type)
                    from_result = owner.from_result if owner is not None else xp.asarray
                if func._vjp_based:
                    xs = (inputs[0].data,) if len(inputs) == 1 else tuple([x.data for x in inputs])
                    if len(outputs) == 1:
                        ys = (y.data,) if y is not None else (None,)
                    else:
                        ys = tuple([y.data if y is not None else None for y in outputs])
                    gxs = func.vjp(ops, xs, ys, gys)
                else:  # a DeZero-style Function: backward works on Variables
                    wrapped = [Variable(gy) if gy is not None else None for gy in gys]
                    gxs = _as_tuple(func.backward(*wrapped))
                    gxs = tuple([g.data if isinstance(g, Variable) else g for g in gxs])
            if not isinstance(gxs, tuple):
                gxs = tuple(gxs) if isinstance(gxs, list) else (gxs,)
            if not graph_mode:
                for gx in gxs:
                    if gx is not None and type(gx) is not array_type:
                        gxs = tuple([gx if gx is None else from_result(gx) for gx in gxs])
                        break
            if len(gxs) != len(inputs):
                raise RuntimeError(
                    f"{type(func).__name__}: backward returned {len(gxs)} gradients "
                    f"for {len(inputs)} inputs"
                )
            if func._wrapped_inputs:  # gradients of raw-array inputs are never read
                gxs = tuple([None if w else g for w, g in zip(func._wrapped_inputs, gxs)])
            for x, gx in zip(inputs, gxs):
                if gx is None:
                    continue
                if gx.shape != x.data.shape:
                    raise RuntimeError(
                        f"{type(func).__name__}: gradient of shape {tuple(gx.shape)} for an input "
                        f"of shape {tuple(x.data.shape)}"
                    )
                previous = grads.get(x)
                if previous is not None:
                    gx = previous + gx  # out of place: gx may be shared with another input
                    if not graph_mode and type(gx) is not array_type:
                        gx = from_result(gx)
                grads[x] = gx
                x_creator = x.creator
                if x_creator is not None and x_creator not in seen:
                    seen.add(x_creator)
                    reached.append(x_creator)
        if reached:
            if len(reached) == 1 and not heap:
                func = reached.pop()
                continue
            for f in reached:
                heapq.heappush(heap, (-f.generation, tick, f))
                tick += 1
            reached.clear()
        if not heap:
            break
        func = heapq.heappop(heap)[2]
    # what is left belongs to leaves (variables without a creator)
    for x, g in grads.items():
        if x.grad is None:
            x.grad = g if graph_mode else Variable(g)
        elif graph_mode:
            x.grad = x.grad + g
        else:
            x.grad = Variable(x.grad.backend.xp.asarray(x.grad.data + g))
        if _post_accumulate_grad_hooks:
            hooks = _post_accumulate_grad_hooks.get(x)
            if hooks:
                for hook in list(hooks.values()):
                    hook(x)


# Imported last: these modules build on the classes above.
from agrad import functions as _F  # noqa: E402
from agrad.functions import arithmetic as _arith  # noqa: E402

Variable.__add__ = _arith.add
Variable.__sub__ = _arith.sub
Variable.__mul__ = _arith.mul
Variable.__truediv__ = _arith.div
Variable.__neg__ = _arith.neg
Variable.__pow__ = _arith.pow
