"""The graph: the user's ``Variable``, the graph's ``VariableNode``, and ``Function``.

A ``Variable`` is what the user holds: an array (``data``), its gradient (``grad``) and a name.
The graph never holds Variables. It is made of ``Function``s and ``VariableNode``s: a function
holds the nodes of its inputs (each node knows its creator, so the graph hangs together), and only
the arrays its gradient rule reads (``retain_inputs`` / ``retain_outputs`` /
``retain_attributes``). A node keeps the shape and dtype of its variable and a weak reference to
it, never its data. So an intermediate result that the user does not hold is freed as soon as no
function's backward needs it, and ``backward()`` releases what it used (see
:mod:`agrad.backprop`). Chainer's ``FunctionNode`` / ``VariableNode`` split is the model.

Variable's operators and DeZero's array methods (``+``, ``reshape``, ``sum``, ...) are installed
by :func:`agrad.operators.install_variable_operators`, called once when ``agrad`` is imported.
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import types
import weakref
from abc import get_cache_token
from typing import TYPE_CHECKING, Any

from agrad import backends as _backends
from agrad.backends import Backend, backend_for_type, backend_of, current_backend
from agrad.config import _enable_backprop

# type -> "is it a numbers.Number": an ABC isinstance check costs ~0.3 µs, a dict hit ~30 ns.
# Registering a class with an ABC changes abc's cache token, which empties this cache.
_NUMBER_TYPES: dict[type, bool] = {}
_number_types_token = [get_cache_token()]


#: the types of a plain Python number: a function taking a constant tests these first, since
#: they need neither `_is_number` nor `_scalar` (bool is left to those)
_PLAIN_NUMBERS = frozenset((float, int))


def _is_number(x: Any) -> bool:
    """Python numbers and NumPy-style scalars (anything registered as ``numbers.Number``)."""
    if type(x) is float or type(x) is int:  # the usual case, before the cache checks
        return True
    if _number_types_token[0] != get_cache_token():
        _NUMBER_TYPES.clear()
        _number_types_token[0] = get_cache_token()
    known = _NUMBER_TYPES.get(type(x))
    if known is None:
        known = _NUMBER_TYPES[type(x)] = isinstance(x, numbers.Number)
    return known


def _scalar(x: Any) -> Any:
    """A plain Python number, so that it is a *weak* scalar: ``float32 * 2.0`` stays float32."""
    if type(x) is float or type(x) is int or getattr(x, "_traced_number", False):
        return x  # agrad.jit's traced numbers stay traced
    item = getattr(x, "item", None)
    return item() if item is not None else x


def _backend_of_array(x: Any) -> Backend:
    backend = backend_for_type(type(x))
    return backend if backend is not None else backend_of(x)


def _describe(x: Any) -> str:
    return f"{type(x).__module__}.{type(x).__qualname__}"


# (dtype class, dtype) -> whether gradients flow to a leaf of that dtype; the class comes first
# so that dtypes of different libraries are never compared with each other
_DIFFERENTIABLE: dict[tuple[type, Any], bool | str] = {}  # "complex": refused


def _dtype_name(dtype: Any) -> str:
    # "torch.complex128", "<class 'numpy.complex128'>" (NumPy's scalar types) -> "complex128"
    return str(dtype).rsplit(".", 1)[-1].rstrip("'>")


def is_differentiable_dtype(dtype: Any) -> bool:
    """True for real floating-point dtypes: those whose gradients keep the variable's own dtype.

    Integer Variables are differentiated too (as in DeZero's book); their gradients come in the
    backend's default floating dtype. Booleans get none. ``agrad.func`` differentiates floating
    arguments only. Complex dtypes are refused by name: agrad implements no convention for
    complex gradients (PyTorch's conjugate Wirtinger derivatives), so a gradient it gave would
    be wrong. Complex arrays still work in a forward pass without gradients (raw arrays, or
    Variables under :func:`agrad.no_grad`).

    Parameters
    ----------
    dtype : dtype
        A dtype of any backend.

    Returns
    -------
    bool
        True for real floating dtypes, False for integer and boolean ones.

    Raises
    ------
    TypeError
        For a complex dtype: agrad differentiates real floating dtypes only.

    Examples
    --------
    >>> import agrad
    >>> from agrad.core import is_differentiable_dtype
    >>> xp = agrad.current_backend().xp
    >>> is_differentiable_dtype(xp.float32), is_differentiable_dtype(xp.int64)
    (True, False)
    >>> is_differentiable_dtype(xp.complex128)
    Traceback (most recent call last):
      ...
    TypeError: complex128 is a complex dtype: agrad differentiates real floating dtypes only ...
    """
    key = (type(dtype), dtype)
    known = _DIFFERENTIABLE.get(key)
    if known is None:
        kind = getattr(dtype, "kind", None)  # NumPy and CuPy dtypes say it in one letter
        name = _dtype_name(dtype)
        if kind is not None:
            known = "complex" if kind == "c" else kind == "f"
        else:
            known = (
                "complex" if name.startswith("complex") else name.startswith(("float", "bfloat"))
            )
        _DIFFERENTIABLE[key] = known
    if known == "complex":
        raise TypeError(
            f"{_dtype_name(dtype)} is a complex dtype: agrad differentiates real "
            "floating dtypes only (it has no convention for complex gradients); compute with "
            "complex arrays under agrad.no_grad(), or split them into real and imaginary parts"
        )
    return known


# (dtype class, dtype) -> whether gradients flow through a variable of that dtype
_GETS_GRAD: dict[tuple[type, Any], bool] = {}


def _gets_grad(dtype: Any) -> bool:
    """Floating dtypes, and integer ones: DeZero's book differentiates integer Variables
    (``Variable(np.array([[1, 2, 3]]))``), whose gradients come in floating point (see
    :func:`_grad_dtype`). Booleans (masks, comparisons) get none."""
    key = (type(dtype), dtype)
    known = _GETS_GRAD.get(key)
    if known is None:
        known = is_differentiable_dtype(dtype)
        if not known:
            kind = getattr(dtype, "kind", None)
            if kind is not None:
                known = kind in "iu"
            else:
                known = _dtype_name(dtype).startswith(("int", "uint"))
        _GETS_GRAD[key] = known
    return known


def _grad_dtype(dtype: Any, backend: Backend) -> Any:
    """The dtype of a gradient for a variable of ``dtype``: its own where floating, else the
    backend's default floating dtype (read each time: PyTorch's default can be changed)."""
    if is_differentiable_dtype(dtype):
        return dtype
    return backend.xp.__array_namespace_info__().default_dtypes()["real floating"]


_new = object.__new__
_weakref = weakref.ref
_BACKWARD: list[Any] = [None]  # agrad.backprop.backward, once imported


def _wrap(data: Any) -> Variable:
    """A new Variable holding ``data``, an array of a backend (no checks: for agrad's own use)."""
    v = _new(Variable)
    v.data = data
    v.name = v.grad = v.node = None
    return v


class VariableNode:
    """The graph's record of a variable: creator, generation, shape, dtype; never its data.

    ``ref`` is a weak reference to the user's Variable (None for a constant: a raw array or a
    number passed straight to a function). ``index`` is the variable's position among its
    creator's outputs. A node that is not retained by any function is also what a ``vjp``
    receives in place of the array: it answers ``shape``, ``ndim``, ``dtype`` and
    ``requires_grad`` (whether backward wants its gradient).

    Nodes are made by the graph (``Variable.node``, ``Function.input_nodes``), never by hand.

    Examples
    --------
    >>> import agrad
    >>> x = agrad.Variable(agrad.current_backend().asarray([1.0, 2.0]))
    >>> y = x * x
    >>> y.node
    <VariableNode shape=(2,) dtype=...float64 creator=Mul>
    >>> y.node.generation, y.node.variable is y
    (1, True)
    """

    __slots__ = (
        "creator",
        "dtype",
        "generation",
        "hooks",
        "index",
        "ref",
        "requires_grad",
        "shape",
    )
    __array_ufunc__ = None  # NumPy hands `array * node` to the node's operator (which raises)

    @property
    def ndim(self) -> int:
        """Number of dimensions of the variable.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([[1.0, 2.0]]))
        >>> (x * 2).node.ndim
        2
        """
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of elements of the variable.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([[1.0, 2.0]]))
        >>> (x * 2).node.size
        2
        """
        size = 1
        for n in self.shape:
            size *= n
        return size

    @property
    def variable(self) -> Variable | None:
        """The user's Variable, while somebody holds it.

        Returns
        -------
        Variable or None
            None once the Variable was freed, or for a constant input.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0]))
        >>> y = x * 2
        >>> node = y.node
        >>> node.variable is y
        True
        >>> del y
        >>> node.variable is None
        True
        """
        return self.ref() if self.ref is not None else None

    def as_variable(self, data: Any) -> Variable:
        """The user's Variable if it is alive and still on this node, else a new Variable on this
        node holding ``data`` (the array a function retained), so gradients reach the graph.

        Parameters
        ----------
        data : array or None
            The value for a new Variable.

        Returns
        -------
        Variable
            Whose ``node`` is this node.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> x = agrad.Variable(backend.asarray([1.0]))
        >>> y = x * 2
        >>> y.node.as_variable(None) is y
        True
        """
        v = self.ref() if self.ref is not None else None
        if v is not None and v.node is self:
            return v
        v = _new(Variable)
        v.data, v.name, v.grad, v.node = data, None, None, self
        if self.ref is not None:  # the new Variable stands for this node from now on
            self.ref = _weakref(v)
            creator = self.creator
            if creator is not None:
                refs = list(creator.outputs)
                refs[self.index] = self.ref
                creator.outputs = tuple(refs)
        return v

    def __repr__(self) -> str:
        creator = type(self.creator).__name__ if self.creator is not None else None
        return f"<VariableNode shape={tuple(self.shape)} dtype={self.dtype} creator={creator}>"


class _UnretainedReadError(TypeError):
    """Arithmetic on a :class:`VariableNode`: a ``vjp`` read an input its function did not
    retain. Backprop turns it into an error naming the function and the input."""

    def __init__(self, node: VariableNode) -> None:
        super().__init__(
            f"a vjp read the value of an input that its function did not retain ({node!r}); "
            "declare it in the function's retain_inputs"
        )
        self.node = node


def _read_unretained(self: VariableNode, *args: Any) -> Any:
    raise _UnretainedReadError(self)


# a node stands for an input whose value was not kept: computing with it is the mistake of a vjp
# that reads more than its function retains, and it gets a message saying so (not the
# operators' "unsupported operand type(s)")
for _name in [
    "add",
    "radd",
    "sub",
    "rsub",
    "mul",
    "rmul",
    "truediv",
    "rtruediv",
    "floordiv",
    "rfloordiv",
    "mod",
    "rmod",
    "pow",
    "rpow",
    "matmul",
    "rmatmul",
    "neg",
    "pos",
    "abs",
]:
    setattr(VariableNode, f"__{_name}__", _read_unretained)
del _name


def _new_node(
    creator: Any, generation: int, index: int, data: Any, ref: Any, requires_grad: bool
) -> VariableNode:
    node = VariableNode()
    node.creator, node.generation, node.index = creator, generation, index
    node.shape, node.dtype = data.shape, data.dtype
    node.ref, node.requires_grad, node.hooks = ref, requires_grad, None
    return node


def _leaf_node(x: Variable) -> VariableNode:
    """The node of ``x`` as a function input; a leaf's node follows rebinding of ``x.data``."""
    node = x.node
    data = x.data
    if node is None:
        dtype = data.dtype
        node = x.node = _new_node(None, 0, 0, data, _weakref(x), _gets_grad(dtype))
    elif node.creator is None:
        dtype = data.dtype
        if node.dtype is not dtype and (type(node.dtype) is not type(dtype) or node.dtype != dtype):
            node.dtype = dtype
            node.requires_grad = _gets_grad(dtype)
        node.shape = data.shape
    return node


class Variable:
    """What the user holds: an array (``data``), its gradient (``grad``) and a ``name``.

    ``creator`` and ``generation`` are those of the variable's graph node (DeZero's attributes).

    Parameters
    ----------
    data : array or None
        An array of an agrad backend (NumPy, CuPy, array-api-strict); it is not copied.
    name : str or None, default None
        A label shown in graph plots.

    Raises
    ------
    TypeError
        If ``data`` is not an array of an agrad backend or None (Python numbers and lists
        included: convert them with :func:`as_array`).

    Examples
    --------
    Gradients accumulate across ``backward`` calls until ``cleargrad``:

    >>> import agrad
    >>> x = agrad.Variable(agrad.current_backend().asarray(3.0), name="x")
    >>> y = x**2 + 1
    >>> y
    variable(10.0)
    >>> y.backward()
    >>> x.grad
    variable(6.0)
    >>> (x * 5).backward()
    >>> x.grad
    variable(11.0)
    >>> x.cleargrad()
    >>> x.grad is None
    True
    """

    __slots__ = ("__weakref__", "data", "grad", "name", "node")
    __array_priority__ = 200  # NumPy/CuPy defer `ndarray (op) Variable` to our reflected operator
    __array_ufunc__ = None  # and NumPy never treats a Variable as an array-like

    def __init__(self, data: Any, name: str | None = None) -> None:
        if (
            data is not None
            and backend_for_type(type(data)) is None
            and backend_of(data, None) is None
        ):
            hint = (
                "; convert it with agrad.as_array(...) first"
                if _is_number(data) or isinstance(data, (list, tuple))
                else ""
            )
            raise TypeError(
                f"Variable data must be an array of an agrad backend "
                f"({', '.join(_backends.known_backends())}) or None, not {_describe(data)}{hint}"
            )
        self.data = data
        self.name = name
        self.grad: Variable | None = None
        self.node: VariableNode | None = None

    # -- array-like properties --------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``.

        Examples
        --------
        >>> import agrad
        >>> agrad.Variable(agrad.current_backend().asarray([[1.0, 2.0, 3.0]])).shape
        (1, 3)
        """
        return self.data.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions of ``data``.

        Examples
        --------
        >>> import agrad
        >>> agrad.Variable(agrad.current_backend().asarray([[1.0, 2.0, 3.0]])).ndim
        2
        """
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements of ``data``.

        Examples
        --------
        >>> import agrad
        >>> agrad.Variable(agrad.current_backend().asarray([[1.0, 2.0, 3.0]])).size
        3
        """
        return math.prod(self.data.shape)  # torch tensors have a size() method

    @property
    def dtype(self) -> Any:
        """Dtype of ``data``.

        Examples
        --------
        >>> import agrad
        >>> xp = agrad.current_backend().xp
        >>> agrad.Variable(xp.ones(2, dtype=xp.float32)).dtype == xp.float32
        True
        """
        return self.data.dtype

    @property
    def backend(self) -> Backend:
        """The backend ``data`` lives on.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0]))
        >>> x.backend is agrad.current_backend()
        True
        """
        return _backend_of_array(self.data)

    @property
    def xp(self) -> Any:
        """The Array API namespace of ``data``.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0, 4.0]))
        >>> agrad.Variable(x.xp.sqrt(x.data))
        variable([1. 2.])
        """
        return _backend_of_array(self.data).xp

    def __len__(self) -> int:
        if self.data is None or self.data.ndim == 0:
            what = "no data" if self.data is None else "0-d data"
            raise TypeError(f"len() of a Variable with {what}; use .size or .shape instead")
        return self.data.shape[0]

    def __repr__(self) -> str:
        if self.data is None:
            return "variable(None)"
        text = str(self.backend.to_host(self.data)).replace("\n", "\n" + " " * 9)
        return f"variable({text})"

    # -- Python numbers ---------------------------------------------------------------------
    def item(self) -> Any:
        """The value of a one-element Variable as a Python number (copies it to the host).

        Returns
        -------
        int, float, complex or bool
            The element.

        Raises
        ------
        ValueError
            If the Variable has no data or more than one element.

        Examples
        --------
        >>> import agrad
        >>> agrad.Variable(agrad.current_backend().asarray([2.5])).item()
        2.5
        """
        size = None if self.data is None else math.prod(self.data.shape)
        if size != 1:
            raise ValueError(
                f"item(): only a Variable with exactly one element has a Python value "
                f"(this one has {'no data' if size is None else f'{size} elements'})"
            )
        if self.backend.traced:
            return self.data.item()  # agrad.jit refuses it, naming the call
        return self.backend.to_host(self.data).reshape(()).item()

    def __float__(self) -> float:
        if self.backend.traced:  # agrad.jit names what was read
            return float(self.data)
        return float(self.item())

    def __int__(self) -> int:
        if self.backend.traced:
            return int(self.data)
        return int(self.item())

    def __index__(self) -> int:
        value = self.item()
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"only an integer Variable can be used as an index, not {self.dtype}")
        return value

    def __format__(self, spec: str) -> str:
        if not spec:
            return str(self)
        return format(self.item(), spec)

    # -- graph ------------------------------------------------------------------------------
    @property
    def creator(self) -> Function | None:
        """The function that produced this variable (None for a leaf).

        Setting it calls :meth:`set_creator`, or :meth:`unchain` for None.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0]))
        >>> x.creator is None, type((x * x).creator).__name__
        (True, 'Mul')
        """
        node = self.node
        return node.creator if node is not None else None

    @creator.setter
    def creator(self, func: Function | None) -> None:
        if func is None:
            self.unchain()
        else:
            self.set_creator(func)

    @property
    def generation(self) -> int:
        """Depth in the graph: one more than the generation of the creator.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0]))
        >>> y = x * 2
        >>> x.generation, y.generation, (y + x).generation
        (0, 1, 2)
        """
        node = self.node
        return node.generation if node is not None else 0

    def set_creator(self, func: Function) -> None:
        """Record ``func`` as the function that produced this variable (DeZero's method).

        ``Function.__call__`` records its outputs itself; this is for code written as in the book.

        Parameters
        ----------
        func : Function
            The creator; the variable's generation becomes one more than its own.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0]))
        >>> f = (x * 2).creator
        >>> z = agrad.Variable(x.data)
        >>> z.set_creator(f)
        >>> z.creator is f, z.generation
        (True, 1)
        """
        data = self.data
        self.node = _new_node(func, func.generation + 1, 0, data, _weakref(self), True)

    @property
    def requires_grad(self) -> bool:
        """Whether this variable takes part in differentiation (read-only; PyTorch's name).

        A leaf does when its dtype takes gradients (floating point, and integers as in DeZero's
        book; not booleans); a function's output does when one of its inputs did while the graph
        was recorded. A Variable with no data yet does not.

        Examples
        --------
        >>> import agrad
        >>> xp = agrad.current_backend().xp
        >>> x = agrad.Variable(xp.asarray([1.0, 2.0]))
        >>> x.requires_grad, (x * 2).requires_grad
        (True, True)
        >>> agrad.Variable(xp.asarray([True, False])).requires_grad
        False
        """
        node = self.node
        if node is None or node.creator is None:
            if self.data is None:
                return False
            node = _leaf_node(self)  # the rule the graph itself applies to a leaf input
        return bool(node.requires_grad)

    @property
    def is_leaf(self) -> bool:
        """True when no function created this variable (PyTorch's name; ``creator is None``).

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0]))
        >>> x.is_leaf, (x * 2).is_leaf, (x * 2).detach().is_leaf
        (True, False, True)
        """
        node = self.node
        return node is None or node.creator is None

    def detach(self) -> Variable:
        """A new Variable on the same data, cut from the graph (PyTorch's name).

        The data is shared, not copied; the new Variable has no creator and no gradient, so
        a backward from what is computed from it stops there. ``self`` is unchanged.

        Returns
        -------
        Variable
            A leaf holding ``self.data``.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray(3.0))
        >>> y = x * x
        >>> (y.detach() * x).backward()  # y is a constant here: d(9 x)/dx
        >>> x.grad
        variable(9.0)
        """
        return Variable(self.data)

    def numpy(self) -> Any:
        """A NumPy copy of ``data`` on the host, from any backend (PyTorch's name).

        Returns
        -------
        numpy.ndarray
            A new array: writing into it leaves the Variable unchanged.

        Raises
        ------
        ValueError
            If the Variable has no data.

        Examples
        --------
        >>> import agrad
        >>> agrad.Variable(agrad.current_backend().asarray([1.0, 2.0])).numpy()
        array([1., 2.])
        """
        if self.data is None:
            raise ValueError("numpy(): the Variable has no data")
        backend = self.backend
        host = backend.to_host(self.data)
        # NumPy, PyTorch on the CPU and array-api-strict hand out views of the data itself;
        # a GPU, JAX (immutable) and Dask (computed) give a fresh host array already
        if backend.mutable_arrays and not backend.gpu and not backend.lazy:
            host = host.copy()
        return host

    def tolist(self) -> Any:
        """``data`` as nested Python lists (a Python number for 0-d data; PyTorch's name).

        Returns
        -------
        list or number
            As ``numpy.ndarray.tolist``.

        Raises
        ------
        ValueError
            If the Variable has no data.

        Examples
        --------
        >>> import agrad
        >>> agrad.Variable(agrad.current_backend().asarray([[1.0, 2.0]])).tolist()
        [[1.0, 2.0]]
        """
        if self.data is None:
            raise ValueError("tolist(): the Variable has no data")
        return self.backend.to_host(self.data).tolist()

    @property
    def device(self) -> str:
        """The backend and device of ``data``: ``'numpy:cpu'``, ``'cupy:0'``, ``'torch:cpu'``...

        Raises
        ------
        ValueError
            If the Variable has no data.

        Examples
        --------
        >>> import agrad
        >>> agrad.Variable(agrad.get_backend("numpy").asarray([1.0])).device
        'numpy:cpu'
        """
        if self.data is None:
            raise ValueError("device: the Variable has no data")
        backend = self.backend
        return f"{backend.name}:{backend.array_device(self.data)}"

    def cleargrad(self) -> None:
        """Forget the gradient, so the variable can be reused in a new computation.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray(2.0))
        >>> (x * x).backward()
        >>> x.grad
        variable(4.0)
        >>> x.cleargrad()
        >>> x.grad is None
        True
        """
        self.grad = None

    def unchain(self) -> None:
        """Cut this variable from the function that created it: backward stops here.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray(2.0))
        >>> y = x * 3
        >>> y.unchain()
        >>> y.creator is None
        True
        >>> y.backward()
        >>> x.grad is None
        True
        """
        node = self.node
        if node is not None:
            node.creator = None

    def unchain_backward(self) -> None:
        """Cut every variable upstream of this one from its creator (truncated backprop).

        The variable keeps its own creator, so a backward from it reaches only the function
        that made it (as an RNN's truncated backprop through time needs).

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray(2.0))
        >>> h = x * 3
        >>> y = h * 4
        >>> y.unchain_backward()
        >>> h.creator is None, y.creator is not None
        (True, True)
        """
        node = self.node
        if node is None or node.creator is None:
            return
        pending = [node.creator]
        seen = {id(node.creator)}
        while pending:
            func = pending.pop()
            for x in func.input_nodes:
                if x is None or x.creator is None:
                    continue
                if id(x.creator) not in seen:
                    seen.add(id(x.creator))
                    pending.append(x.creator)
                x.creator = None
            for index in func.intermediate_outputs:
                output = func.outputs[index]()
                if output is not None and output.node is not None:
                    output.node.creator = None

    def backward(
        self,
        retain_grad: bool = False,
        create_graph: bool = False,
        retain_graph: bool | None = None,
    ) -> None:
        """Accumulate d(self)/d(leaf) into the ``grad`` of every leaf variable in the graph.

        ``retain_grad`` keeps the gradients of intermediate variables too; ``create_graph``
        records the backward pass so that gradients can be differentiated again. Unless
        ``retain_graph`` (default: ``create_graph``) is True, every function releases the
        arrays it kept once its gradient is computed, and a second backward through it raises.

        Backward starts from ``self.grad`` when it is set (a Variable or array of ``self``'s
        shape and backend), else from ones. Integer variables are differentiated as in DeZero's
        book; their gradients come in the backend's default floating dtype (float64 on NumPy),
        a floating variable's in its own dtype.

        Parameters
        ----------
        retain_grad : bool, default False
            Keep the ``grad`` of intermediate variables (only leaves keep theirs otherwise).
        create_graph : bool, default False
            Record the backward pass, for higher-order derivatives.
        retain_graph : bool or None, default None
            Keep what the functions retained for another backward; None means ``create_graph``.

        Raises
        ------
        RuntimeError
            If a function on the way was released by an earlier backward.
        TypeError
            If this variable is neither floating point nor integer (and ``grad`` is not set),
            or ``grad`` was set to something that is not an array of its backend.
        ValueError
            If it has no data, or ``grad`` was set with another shape.

        Examples
        --------
        A second derivative, then a second backward through a released graph:

        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray(2.0))
        >>> y = x**3
        >>> y.backward(create_graph=True)
        >>> gx = x.grad
        >>> gx
        variable(12.0)
        >>> x.cleargrad()
        >>> gx.backward()
        >>> x.grad
        variable(12.0)
        >>> z = x * x
        >>> z.backward()
        >>> z.backward()
        Traceback (most recent call last):
        ...
        RuntimeError: backward through Mul a second time: ...
        """
        run = _BACKWARD[0]
        if run is None:  # agrad.backprop imports this module: bound on first use
            from agrad.backprop import backward as run

            _BACKWARD[0] = run
        run(self, retain_grad, create_graph, create_graph if retain_graph is None else retain_graph)

    def register_post_accumulate_grad_hook(self, hook: Any) -> RemovableHandle:
        """Call ``hook(self)`` in every ``backward()`` as soon as this leaf's ``grad`` is final.

        PyTorch's hook of the same name; data-parallel training sends each gradient as soon as
        backward has finished it. Returns a handle whose ``remove()`` unregisters the hook.

        Parameters
        ----------
        hook : callable
            Called as ``hook(variable)``; its return value is ignored.

        Returns
        -------
        RemovableHandle
            Its ``remove()`` unregisters the hook.

        Raises
        ------
        TypeError
            If ``hook`` is not callable.
        RuntimeError
            If this variable is not a leaf (it has a creator).
        ValueError
            If it has no data.

        Examples
        --------
        >>> import agrad
        >>> w = agrad.Parameter(agrad.current_backend().asarray([1.0, 2.0]))
        >>> handle = w.register_post_accumulate_grad_hook(lambda p: print("grad", p.grad))
        >>> (w * w).sum().backward()
        grad variable([2. 4.])
        >>> handle.remove()
        """
        if not callable(hook):
            raise TypeError(f"hook must be callable, not {_describe(hook)}")
        if self.node is not None and self.node.creator is not None:
            raise RuntimeError(
                "register_post_accumulate_grad_hook: only a leaf Variable (no creator) gets "
                "its gradient accumulated"
            )
        if self.data is None:
            raise ValueError("register_post_accumulate_grad_hook: the Variable has no data yet")
        node = _leaf_node(self)
        if node.hooks is None:
            node.hooks = {}
        handle = RemovableHandle(node.hooks)
        node.hooks[handle.id] = hook
        return handle

    if TYPE_CHECKING:  # installed by agrad.operators.install_variable_operators()

        def __add__(self, other: Any) -> Variable: ...
        def __radd__(self, other: Any) -> Variable: ...
        def __sub__(self, other: Any) -> Variable: ...
        def __rsub__(self, other: Any) -> Variable: ...
        def __mul__(self, other: Any) -> Variable: ...
        def __rmul__(self, other: Any) -> Variable: ...
        def __truediv__(self, other: Any) -> Variable: ...
        def __rtruediv__(self, other: Any) -> Variable: ...
        def __pow__(self, other: Any) -> Variable: ...
        def __rpow__(self, other: Any) -> Variable: ...
        def __matmul__(self, other: Any) -> Variable: ...
        def __rmatmul__(self, other: Any) -> Variable: ...
        def __neg__(self) -> Variable: ...
        def __getitem__(self, index: Any) -> Variable: ...
        def reshape(self, *shape: Any) -> Variable: ...
        def transpose(self, *axes: Any) -> Variable: ...
        @property
        def T(self) -> Variable: ...
        def sum(self, axis: Any = None, keepdims: bool = False) -> Variable: ...
        def max(self, axis: Any = None, keepdims: bool = False) -> Variable: ...
        def min(self, axis: Any = None, keepdims: bool = False) -> Variable: ...
        def matmul(self, other: Any) -> Variable: ...
        def dot(self, other: Any) -> Variable: ...
        def __abs__(self) -> Variable: ...
        def __mod__(self, other: Any) -> Variable: ...
        def __rmod__(self, other: Any) -> Variable: ...
        def __floordiv__(self, other: Any) -> Variable: ...
        def __rfloordiv__(self, other: Any) -> Variable: ...
        def __round__(self, ndigits: int | None = None) -> Variable: ...
        def __eq__(self, other: object) -> Any: ...
        def __ne__(self, other: object) -> Any: ...
        def __lt__(self, other: Any) -> Variable: ...
        def __le__(self, other: Any) -> Variable: ...
        def __gt__(self, other: Any) -> Variable: ...
        def __ge__(self, other: Any) -> Variable: ...
        def __hash__(self) -> int: ...
        def __bool__(self) -> bool: ...
        def mean(self, axis: Any = None, keepdims: bool = False) -> Variable: ...
        def exp(self) -> Variable: ...
        def log(self) -> Variable: ...
        def sin(self) -> Variable: ...
        def cos(self) -> Variable: ...
        def tanh(self) -> Variable: ...
        def sqrt(self) -> Variable: ...
        def square(self) -> Variable: ...
        def abs(self) -> Variable: ...
        def sign(self) -> Variable: ...
        def relu(self) -> Variable: ...
        def sigmoid(self) -> Variable: ...
        def clip(self, x_min: Any, x_max: Any) -> Variable: ...

    # -- moving between backends ------------------------------------------------------------
    def to(self, backend: str | Backend) -> Variable:
        """Move ``data`` (and ``grad``) to ``backend`` in place; returns ``self``.

        Parameters
        ----------
        backend : str or Backend
            ``"numpy"``, ``"cupy"``, ``"array_api_strict"`` or a backend object.

        Returns
        -------
        Variable
            ``self``.

        Raises
        ------
        ValueError
            If ``backend`` names no backend.
        agrad.BackendUnavailableError
            A ``RuntimeError``: the backend cannot be used here.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0]))
        >>> x.to("array_api_strict").backend.name
        'array_api_strict'
        """
        target = _backends.get_backend(backend)
        target.require()
        if self.data is not None:
            self.data = target.asarray(self.data)
        if self.grad is not None:
            self.grad.to(target)
        return self

    def to_cpu(self) -> Variable:
        """Move to NumPy on the host.

        Returns
        -------
        Variable
            ``self``.

        Examples
        --------
        >>> import agrad
        >>> agrad.Variable(agrad.current_backend().asarray([1.0])).to_cpu().backend.name
        'numpy'
        """
        return self.to("numpy")

    def cpu(self) -> Variable:
        """PyTorch's name for :meth:`to_cpu`: moves ``data`` (and ``grad``) to NumPy in place.

        Returns
        -------
        Variable
            ``self``.

        Examples
        --------
        >>> import agrad
        >>> agrad.Variable(agrad.current_backend().asarray([1.0])).cpu().device
        'numpy:cpu'
        """
        return self.to_cpu()

    def to_gpu(self) -> Variable:
        """Move to CuPy on the current CUDA device.

        Returns
        -------
        Variable
            ``self``.

        Raises
        ------
        agrad.BackendUnavailableError
            A ``RuntimeError``: CuPy or a CUDA device is not available.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0]))
        >>> if agrad.cuda.gpu_enable:
        ...     x = x.to_gpu()
        """
        return self.to("cupy")


class Parameter(Variable):
    """A Variable that a ``Layer`` registers as trainable.

    It takes :class:`Variable`'s arguments; ``data`` may be None until a layer infers its
    shape from the first input.

    Examples
    --------
    >>> import agrad
    >>> layer = agrad.layers.Layer()
    >>> layer.w = agrad.Parameter(agrad.current_backend().asarray([0.5]), name="w")
    >>> layer.x = agrad.Variable(agrad.current_backend().asarray([1.0]))  # not registered
    >>> [name for name, _ in layer.named_params()]
    ['w']
    """

    __slots__ = ()


class RemovableHandle:
    """Returned by ``register_post_accumulate_grad_hook``; ``remove()`` unregisters the hook.

    Examples
    --------
    >>> import agrad
    >>> w = agrad.Parameter(agrad.current_backend().asarray(3.0))
    >>> seen = []
    >>> handle = w.register_post_accumulate_grad_hook(seen.append)
    >>> (w * 2).backward()
    >>> handle.remove()
    >>> (w * 2).backward()
    >>> len(seen)
    1
    """

    _next_id = 0
    #: how many hooks are registered in the process: backward looks for them only when > 0
    active = 0
    #: registrations and removals so far: `agrad.jit` traces again when it moved, as a traced
    #: backward ran the hooks registered then and no others
    changes = 0

    def __init__(self, hooks: dict) -> None:
        self._hooks = hooks  # the leaf's own table: holding it does not hold the leaf
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1
        RemovableHandle.active += 1
        RemovableHandle.changes += 1

    def remove(self) -> None:
        """Unregister the hook (a second call does nothing).

        Examples
        --------
        >>> import agrad
        >>> w = agrad.Parameter(agrad.current_backend().asarray(3.0))
        >>> handle = w.register_post_accumulate_grad_hook(print)
        >>> handle.remove()
        >>> handle.remove()
        >>> (w * 2).backward()
        """
        if self._hooks.pop(self.id, None) is not None:
            RemovableHandle.active -= 1
            RemovableHandle.changes += 1


def as_array(x: Any, array_module: Any = None) -> Any:
    """A Python number, list or tuple as an array (of ``array_module`` or the default backend).

    Arrays and anything else come back unchanged.

    Parameters
    ----------
    x : number, list, tuple or array
        What to convert.
    array_module : namespace or None, default None
        The Array API namespace to make the array with; None uses the default backend's.

    Returns
    -------
    array
        ``x`` as an array (the namespace's default dtype for Python numbers).

    Examples
    --------
    >>> import agrad
    >>> a = agrad.as_array([1.0, 2.0])
    >>> a.shape, agrad.as_array(a) is a
    ((2,), True)
    >>> agrad.Variable(agrad.as_array(3.0))
    variable(3.0)
    """
    if _is_number(x) or isinstance(x, (list, tuple)):
        xp = array_module if array_module is not None else current_backend().xp
        return xp.asarray(_scalar(x) if _is_number(x) else x)
    return x


def as_variable(obj: Any) -> Variable:
    """``obj`` if it is a Variable, else ``Variable(obj)``.

    Parameters
    ----------
    obj : Variable or array
        What to wrap.

    Returns
    -------
    Variable
        ``obj`` itself, or a new Variable holding it (not a copy).

    Raises
    ------
    TypeError
        If ``obj`` is neither a Variable nor an array of an agrad backend.

    Examples
    --------
    >>> import agrad
    >>> from agrad.core import as_variable
    >>> a = agrad.current_backend().asarray([1.0])
    >>> v = as_variable(a)
    >>> v.data is a, as_variable(v) is v
    (True, True)
    """
    return obj if isinstance(obj, Variable) else Variable(obj)


def array_of(x: Any) -> Any:
    """The array behind ``x``: ``x.data`` for a Variable, ``x`` itself otherwise.

    A ``vjp`` gets arrays in a plain backward and Variables with ``create_graph=True``; this
    reads the values the same way in both.

    Parameters
    ----------
    x : Variable or array
        An entry of a vjp's ``xs``/``ys``, say.

    Returns
    -------
    array
        The array.

    Examples
    --------
    >>> import agrad
    >>> from agrad.core import array_of
    >>> a = agrad.current_backend().asarray([1.0])
    >>> array_of(agrad.Variable(a)) is a, array_of(a) is a
    (True, True)
    """
    return x.data if isinstance(x, Variable) else x


#: what a function that keeps no array holds in ``_saved_inputs`` / ``_saved_outputs`` (the one
#: empty tuple of CPython, so that backward can test it by identity: the other thing a function
#: holds there may be an array, whose truth value is not a test of presence)
_KEPT_NOTHING: tuple = ()


def _kept(saved: Any) -> Any:
    """A function's ``_saved_inputs`` or ``_saved_outputs`` as a tuple (None once released)."""
    return saved if saved is None or type(saved) is tuple else (saved,)


def _select(values: tuple, indexes: tuple[int, ...] | None) -> tuple:
    """``values`` at ``indexes`` (None elsewhere); all for None, () for ()."""
    if indexes is None:
        return values
    if not indexes:
        return ()
    return tuple([v if i in indexes else None for i, v in enumerate(values)])


# array type -> (backend, its namespace, its array type, its from_result): what the hot path
# needs, in one dict lookup (attribute reads on a backend are slow: it loads its library lazily)
_HOT: dict[type, tuple[Backend, Any, type, Any]] = {}


def _hot_entry(array_type: type) -> tuple[Backend, Any, type, Any] | None:
    backend = backend_for_type(array_type)
    if backend is None:
        return None  # not met yet: the general path looks it up
    entry = _HOT[array_type] = (backend, backend.xp, backend.array_type, backend.from_result)
    return entry


def _unrecorded_outputs(ys: Any, backend: Backend, array_type: type) -> Any:
    """The outputs as Variables outside the graph (``no_grad``)."""
    if type(ys) is array_type:  # one output, the usual case
        return _wrap(ys)
    single = not isinstance(ys, tuple)
    outputs = [
        _wrap(y if type(y) is array_type else backend.from_result(y))
        for y in ((ys,) if single else ys)
    ]
    return outputs[0] if len(outputs) == 1 else outputs


class Function:
    """An operation of the graph. Subclasses write ``forward`` and one of two gradient rules.

    ``forward(*arrays)`` computes the outputs from input arrays (``self.xp`` is their namespace);
    it returns an array or a tuple of arrays.

    **The vjp rule** (agrad's): ``vjp(self, d, xs, ys, gys)`` returns one gradient per input,
    in input order (a tuple, or the array itself for one input; None for an input that gets
    none). It is written once and runs in two modes:

    * a plain ``backward()``: ``d`` is an :class:`agrad.ops.ArrayOps` bound to the inputs'
      backend, and ``xs``/``ys``/``gys`` are arrays;
    * ``backward(create_graph=True)``: ``d`` is the module ``agrad.functions`` and they are
      Variables, so the gradient is itself differentiable.

    So a ``vjp`` uses only operators (``+ - * / **``, unary ``-``) and ``d.<name>`` calls; each
    such name exists in both vocabularies with the same parameters (checked by a test), and
    keyword arguments are passed by keyword (``d.sum(g, axis=1, keepdims=True)``).
    ``gys[i]`` is None for an output that received no gradient.

    **What a vjp may read** is declared on the class (or set on ``self`` in ``forward``):
    ``retain_inputs`` / ``retain_outputs`` name the inputs / outputs whose values it reads,
    ``retain_attributes`` the attributes of ``self`` holding arrays it reads (masks, argmax
    indexes). None means all (the safe default); built-in functions list exactly what they need
    (sigmoid keeps its output; linear its input and weight; add nothing). Every input that is
    not retained reaches ``vjp`` as its :class:`VariableNode`, which knows ``shape``, ``ndim``,
    ``dtype`` and ``requires_grad`` only; an output that is not retained arrives as None. A vjp
    that computes with either raises ``TypeError`` naming the function, the input or output,
    and the declaration.
    A ``vjp`` never reads ``self.inputs``/``self.outputs``, and keeps constants (exponents, axes,
    shapes) as plain attributes set in ``__init__``/``forward``.

    **The DeZero rule**: override ``backward(*gys)`` instead, taking and returning Variables and
    reading ``self.inputs`` / ``self.outputs`` as in the book; such a function keeps everything
    unless it declares otherwise, and its ``vjp`` runs that ``backward`` on arrays.

    After a ``backward()`` without ``retain_graph`` a function drops what it retained, and a
    second backward through it raises ``RuntimeError``.

    Calling a function with Variables, arrays or Python numbers returns a Variable (a list of
    them for several outputs); inputs on different backends raise ``TypeError``. Each call is a
    node of its own: an instance that is already in a graph runs a second call on a shallow copy
    of itself (``__init__``'s settings kept), so ``e = Exp(); e(a) + e(b)`` differentiates both.

    Examples
    --------
    A vjp-style function; ``d.cos`` is an array op in a plain backward and ``F.cos`` with
    ``create_graph=True``, so the same rule gives second derivatives:

    >>> import agrad
    >>> class Sin(agrad.Function):
    ...     retain_inputs = (0,)
    ...     retain_outputs = ()
    ...
    ...     def forward(self, x):
    ...         return self.xp.sin(x)
    ...
    ...     def vjp(self, d, xs, ys, gys):
    ...         return gys[0] * d.cos(xs[0])
    >>> x = agrad.Variable(agrad.current_backend().asarray(0.0))
    >>> y = Sin()(x)
    >>> y.backward(create_graph=True)
    >>> x.grad
    variable(1.0)
    >>> gx = x.grad
    >>> x.cleargrad()
    >>> gx.backward()
    >>> x.grad
    variable(-0.0)
    """

    generation = 0
    #: the graph nodes of the inputs (None for an input that was None)
    input_nodes: tuple[VariableNode | None, ...] = ()
    #: weak references to the output Variables (DeZero's attribute)
    outputs: tuple[Any, ...] = ()
    xp: Any = None
    backend: Backend | None = None
    retain_inputs: tuple[int, ...] | None = None
    retain_outputs: tuple[int, ...] | None = None
    retain_attributes: tuple[str, ...] = ()
    #: outputs that are intermediates of the others (a jitted call's stored hidden state, from
    #: which its returned output was computed): `unchain_backward` cuts them as it would have
    #: cut them had the function's steps been separate nodes
    intermediate_outputs: tuple[int, ...] = ()
    _vjp_based = False
    # the arrays kept for backward, () for none; None once released. `__call__`'s straight
    # paths store the array alone for one kept input (output), as a tuple made per call is one
    # more object for the garbage collector to count (read them through `_kept`). Every
    # recorded call that wants a gradient stores both, so that backward reads them from the
    # instance (a class default costs CPython 3.11 a generic lookup); these defaults serve a
    # function that `__call__` did not record (DeZero's `set_creator`)
    _saved_inputs: Any = _KEPT_NOTHING
    _saved_outputs: Any = _KEPT_NOTHING

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the most derived of `vjp`/`backward` decides; a DeZero-style subclass overrides backward
        for klass in cls.__mro__:
            if klass is Function or "backward" in klass.__dict__:
                cls._vjp_based = False
                break
            if "vjp" in klass.__dict__ and klass.__dict__["vjp"] is not _dezero_vjp:
                cls._vjp_based = True
                break
        if not cls._vjp_based:  # its vjp runs its backward: backprop calls every vjp alike
            type.__setattr__(cls, "vjp", _dezero_vjp)
        _reserve_instance_keys(cls)
        _give_own_call(cls)

    def __call__(self, *inputs: Any) -> Any:
        # The hot path of every operation, written for speed (issue 21: count instructions with
        # benchmarks/instructions.py before and after a change here). One or two Variables on a
        # backend already met each get a straight block for the input side (forward, their
        # nodes, the arrays their gradient rule reads); everything else goes through `_prepare`
        # and `_link_inputs`. The output side is shared, with one output inlined.
        if self.input_nodes:  # already a node of a graph: this call makes a node of its own
            return self._fresh()(*inputs)
        n_inputs = len(inputs)
        hot = None
        if n_inputs == 1:
            x0 = inputs[0]
            if isinstance(x0, Variable):
                d0 = x0.data
                hot = _HOT.get(type(d0))
                if hot is None and d0 is not None:
                    hot = _hot_entry(type(d0))
        elif n_inputs == 2:
            x0, x1 = inputs
            if isinstance(x0, Variable) and isinstance(x1, Variable):
                d0, d1 = x0.data, x1.data
                if type(d0) is type(d1):
                    hot = _HOT.get(type(d0))
                    if hot is None and d0 is not None:
                        hot = _hot_entry(type(d0))
        if hot is None:  # the general case
            backend, xs = self._prepare(inputs)
            self.backend = backend
            xp = self.xp = backend.xp
            array_type, from_result = backend.array_type, backend.from_result
            ys = self.forward(*xs)
            if not _enable_backprop.get():
                return _unrecorded_outputs(ys, backend, array_type)
            generation, any_grad = self._link_inputs(inputs, xs)
            in_shape = None
        else:
            backend, xp, array_type, from_result = hot
            self.backend = backend
            self.xp = xp
            if n_inputs == 1:
                ys = self.forward(d0)
                if not _enable_backprop.get():
                    return _unrecorded_outputs(ys, backend, array_type)
                node = x0.node
                if node is None:
                    node = _leaf_node(x0)
                elif node.creator is None:  # a leaf's node follows x0.data (`_leaf_node`, inlined)
                    if node.dtype is d0.dtype:
                        node.shape = d0.shape
                    else:
                        node = _leaf_node(x0)
                self.input_nodes = (node,)
                in_shape = node.shape
                generation = node.generation
                any_grad = node.requires_grad
                if any_grad:  # keep what the gradient rule reads, and nothing else
                    keep = self.retain_inputs
                    self._saved_inputs = d0 if keep is None or keep else ()
            else:
                ys = self.forward(d0, d1)
                if not _enable_backprop.get():
                    return _unrecorded_outputs(ys, backend, array_type)
                node = x0.node
                if node is None:
                    node = _leaf_node(x0)
                elif node.creator is None:  # (`_leaf_node` inlined, as above)
                    if node.dtype is d0.dtype:
                        node.shape = d0.shape
                    else:
                        node = _leaf_node(x0)
                node1 = x1.node
                if node1 is None:
                    node1 = _leaf_node(x1)
                elif node1.creator is None:
                    if node1.dtype is d1.dtype:
                        node1.shape = d1.shape
                    else:
                        node1 = _leaf_node(x1)
                self.input_nodes = (node, node1)
                in_shape = node.shape
                generation = node.generation
                if node1.generation > generation:
                    generation = node1.generation
                any_grad = node.requires_grad or node1.requires_grad
                if any_grad:
                    keep = self.retain_inputs
                    if keep is None or len(keep) == 2:
                        self._saved_inputs = (d0, d1)
                    else:  # (no call for the common keep-nothing case)
                        self._saved_inputs = _select((d0, d1), keep) if keep else ()
        self.generation = generation
        generation += 1
        if type(ys) is not array_type:
            if isinstance(ys, tuple):
                return self._record_outputs(ys, generation, any_grad, array_type, from_result)
            ys = from_result(ys)
        v = _new(Variable)  # one output
        v.data = ys
        v.name = v.grad = None
        node = v.node = VariableNode()
        node.creator = self
        node.generation = generation
        node.index = 0
        shape = ys.shape  # a new tuple: the input's where equal, one GC-tracked object fewer
        node.shape = in_shape if shape == in_shape else shape
        node.dtype = ys.dtype
        node.ref = ref = _weakref(v)
        node.requires_grad = any_grad
        node.hooks = None
        self.outputs = (ref,)
        if any_grad:
            keep = self.retain_outputs
            self._saved_outputs = ys if keep is None or keep else ()
        return v

    def _record_outputs(
        self, ys: tuple, generation: int, any_grad: bool, array_type: type, from_result: Any
    ) -> Any:
        """Variables for a tuple of outputs, recorded as this function's outputs at
        ``generation`` (``__call__``'s output side for several outputs)."""
        outputs = []
        refs = []
        ys = tuple([y if type(y) is array_type else from_result(y) for y in ys])
        for index, y in enumerate(ys):
            v = _new(Variable)
            v.data = y
            v.name = v.grad = None
            node = v.node = VariableNode()
            node.creator, node.generation, node.index = self, generation, index
            node.shape, node.dtype = y.shape, y.dtype
            node.ref = ref = _weakref(v)
            node.requires_grad, node.hooks = any_grad, None
            refs.append(ref)
            outputs.append(v)
        self.outputs = tuple(refs)
        if any_grad:
            self._saved_outputs = _select(ys, self.retain_outputs)
        return outputs[0] if len(outputs) == 1 else outputs

    def _link_inputs(self, inputs: tuple, xs: tuple) -> tuple[int, bool]:
        """Record the inputs' nodes and keep the arrays the gradient rule reads (general case);
        returns (generation, whether any input wants a gradient)."""
        generation = 0
        any_grad = False
        nodes = []
        for x, data in zip(inputs, xs):
            if data is None:
                node = None
            elif isinstance(x, Variable):
                node = x.node
                if node is None or node.creator is None:
                    node = _leaf_node(x)
                if node.generation > generation:
                    generation = node.generation
                if node.requires_grad:
                    any_grad = True
            else:  # a raw array or a number: a constant, never differentiated
                node = _new_node(None, 0, 0, data, None, False)
            nodes.append(node)
        self.input_nodes = tuple(nodes)
        if any_grad:
            keep = self.retain_inputs
            self._saved_inputs = xs if keep is None or len(keep) == len(xs) else _select(xs, keep)
        return generation, any_grad

    def _fresh(self) -> Function:
        """A shallow copy of this function without its graph state, for a second call.

        One instance called twice would otherwise be one node standing for two computations:
        the second call would overwrite the inputs, outputs and arrays the first one's gradient
        needs. The copy keeps the settings given to ``__init__`` (constants, axes).
        """
        clone = copy.copy(self)
        state = getattr(clone, "__dict__", None)
        if state is not None:
            for name in _GRAPH_STATE:
                state.pop(name, None)
        return clone

    def _prepare(self, inputs: tuple) -> tuple[Backend, tuple]:
        """The backend the inputs share, and their arrays (Python numbers made arrays)."""
        backend = None
        raw = False  # some input is a raw array or a number
        for x in inputs:
            if isinstance(x, Variable):
                data = x.data
            else:
                data = x
                raw = True
            if data is None:
                continue
            b = backend_for_type(type(data))  # no agrad array type is a number
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
                if backend is None:
                    backend = b
                    continue
                # under agrad.jit an array of the traced library is a constant of the program
                if getattr(b, "real", None) is backend:
                    backend = b
                    continue
                if getattr(backend, "real", None) is b:
                    continue
                raise TypeError(
                    f"{type(self).__name__}: inputs live on different backends "
                    f"({backend.name!r} and {b.name!r}); move them with Variable.to(...) first"
                )
        if backend is None:
            backend = current_backend()
        if not raw:
            return backend, tuple([x.data for x in inputs])
        xp = backend.xp
        return backend, tuple(
            [x.data if isinstance(x, Variable) else _number_to_array(x, xp, inputs) for x in inputs]
        )

    def forward(self, *xs: Any) -> Any:
        """Compute the outputs from input arrays.

        Parameters
        ----------
        *xs : array
            The inputs' arrays, on one backend (``self.xp`` is its namespace).

        Returns
        -------
        array or tuple of array
            The outputs.

        Raises
        ------
        NotImplementedError
            On ``Function`` itself: a subclass must define it.

        Examples
        --------
        >>> import agrad
        >>> class Double(agrad.Function):
        ...     def forward(self, x):
        ...         return x * 2
        >>> Double()(agrad.current_backend().asarray([1.0, 2.0]))
        variable([2. 4.])
        """
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def backward(self, *gys: Variable) -> Any:
        """DeZero's rule: output gradients in, input gradients out, as Variables.

        A subclass overrides either this or :meth:`vjp`; for a vjp-style function this runs
        the vjp in graph mode.

        Parameters
        ----------
        *gys : Variable
            One gradient per output (None for an output that received none).

        Returns
        -------
        Variable or tuple of Variable
            One gradient per input.

        Raises
        ------
        NotImplementedError
            If the subclass defines neither ``backward`` nor ``vjp``.

        Examples
        --------
        >>> import agrad
        >>> class Square(agrad.Function):
        ...     def forward(self, x):
        ...         return x**2
        ...
        ...     def backward(self, gy):
        ...         (x,) = self.inputs
        ...         return 2 * x * gy
        >>> x = agrad.Variable(agrad.current_backend().asarray(3.0))
        >>> Square()(x).backward()
        >>> x.grad
        variable(6.0)
        """
        if not type(self)._vjp_based:
            raise NotImplementedError(f"{type(self).__name__}.backward is not implemented")
        from agrad import functions

        return self.vjp(functions, self._graph_inputs(), self._graph_outputs(), gys)

    def vjp(self, d: Any, xs: tuple, ys: tuple, gys: tuple) -> Any:
        """Input gradients from output gradients; see the class docstring.

        Parameters
        ----------
        d : agrad.ops.ArrayOps or module
            The operations to compute with: array ops in a plain backward, ``agrad.functions``
            with ``create_graph=True``.
        xs : tuple
            The inputs: arrays (or Variables) where retained, their :class:`VariableNode` else.
        ys : tuple
            The outputs where retained, None else.
        gys : tuple
            One gradient per output, None for an output that received none.

        Returns
        -------
        gradient or tuple of gradient
            One per input, in order (None for an input that gets none).

        Raises
        ------
        NotImplementedError
            If the subclass does not define it.

        Examples
        --------
        >>> import agrad
        >>> class Mul3(agrad.Function):
        ...     retain_inputs = ()
        ...     retain_outputs = ()
        ...
        ...     def forward(self, x):
        ...         return x * 3
        ...
        ...     def vjp(self, d, xs, ys, gys):
        ...         return gys[0] * 3
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0, 2.0]))
        >>> Mul3()(x).sum().backward()
        >>> x.grad
        variable([3. 3.])
        """
        raise NotImplementedError(f"{type(self).__name__}.vjp is not implemented")

    def needs_input_grad(self, index: int) -> bool:
        """Whether backward wants the gradient of input ``index``.

        False for a constant (a raw array or number passed to the function, say the data batch
        of ``F.linear(x_array, W)``) and for a boolean leaf; a ``vjp`` may return None for such
        an input instead of computing its gradient.

        Parameters
        ----------
        index : int
            The input's position.

        Returns
        -------
        bool
            Whether its gradient is wanted.

        Examples
        --------
        >>> import agrad
        >>> backend = agrad.current_backend()
        >>> W = agrad.Variable(backend.asarray([[1.0], [2.0]]))
        >>> y = agrad.functions.matmul(backend.asarray([[3.0, 4.0]]), W)
        >>> y.creator.needs_input_grad(0), y.creator.needs_input_grad(1)
        (False, True)
        """
        node = self.input_nodes[index]
        return node is not None and node.requires_grad

    # -- what the graph kept ----------------------------------------------------------------
    @property
    def inputs(self) -> tuple[Variable, ...]:
        """The inputs as Variables (DeZero's attribute), rebuilt from the graph when the user's
        Variable is gone; ``data`` is None for an input this function did not retain.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray([1.0]))
        >>> y = x * 2
        >>> y.creator.inputs[0] is x
        True
        """
        saved = _kept(self._saved_inputs)
        return tuple(
            [
                node.as_variable(saved[i] if saved else None)
                for i, node in enumerate(self.input_nodes)
                if node is not None
            ]
        )

    def _graph_inputs(self) -> tuple:
        """What ``vjp`` gets as ``xs`` in graph mode: Variables for retained inputs, nodes else."""
        saved = _kept(self._saved_inputs)
        if not saved:
            return self.input_nodes
        return tuple(
            [node if s is None else node.as_variable(s) for node, s in zip(self.input_nodes, saved)]
        )

    def _graph_outputs(self) -> tuple:
        """What ``vjp`` gets as ``ys`` in graph mode: Variables for retained outputs, else None."""
        saved = _kept(self._saved_outputs)
        if not saved:
            return (None,) * len(self.outputs)
        return tuple([self._output_variable(i, s) for i, s in enumerate(saved)])

    def _output_variable(self, index: int, data: Any) -> Variable | None:
        """Output ``index`` as a Variable: the user's while alive, else rebuilt on this function."""
        v = self.outputs[index]()
        if v is not None and v.node is not None and v.node.creator is self:
            return v
        if data is None:
            return None
        v = _new(Variable)
        v.data, v.name, v.grad = data, None, None
        v.node = _new_node(self, self.generation + 1, index, data, _weakref(v), True)
        return v

    def release(self) -> None:
        """Drop the arrays kept for backward; a later backward through this function raises.

        ``backward()`` calls it on every function it went through unless ``retain_graph``.

        Examples
        --------
        >>> import agrad
        >>> x = agrad.Variable(agrad.current_backend().asarray(2.0))
        >>> y = x * x
        >>> y.creator.release()
        >>> y.backward()
        Traceback (most recent call last):
        ...
        RuntimeError: backward through Mul a second time: ...
        """
        # a released function holds None in both; one that kept nothing, () (it stays usable)
        kept = self._saved_inputs is not _KEPT_NOTHING or self._saved_outputs is not _KEPT_NOTHING
        if kept or self.retain_attributes:
            self._saved_inputs = self._saved_outputs = None
        for name in self.retain_attributes:
            setattr(self, name, None)


#: what ``Function.__call__`` and backward record on a function: a fresh copy starts without it
_GRAPH_STATE = (
    "generation",
    "input_nodes",
    "outputs",
    "_saved_inputs",
    "_saved_outputs",
)


def _reserve_instance_keys(cls: type) -> None:
    """Store the names that release writes once, on a throwaway instance of ``cls``.

    CPython (3.11 on) keeps the attribute names of a class's instances in one shared table,
    which stops taking new names once many instances exist; an instance that later stores a
    name not in it gets a dict of its own, built on the spot. The saved arrays are stored only
    by calls that want a gradient (and by ``release``), which may come long after thousands of
    instances were made; a dict built on each of those cost 1,700 instructions per operation in
    the tanh chain (benchmarks/README.md).
    """
    try:
        probe = object.__new__(cls)
    except TypeError:  # a subclass with a __new__ of its own: it keeps the default behaviour
        return
    for name in ("_saved_inputs", "_saved_outputs"):
        with contextlib.suppress(AttributeError, TypeError):  # a property or slot of cls
            object.__setattr__(probe, name, None)


def _dezero_rule(func: Function, gys: Any, graph_mode: bool) -> tuple:
    """Input gradients by a DeZero-style ``func.backward`` (Variables in and out): one per
    input, arrays unless ``graph_mode``. Its outputs must be alive for ``self.outputs[i]()``, so
    those the user dropped are rebuilt from what the function kept."""
    saved = _kept(func._saved_outputs)
    alive = [func._output_variable(i, saved[i] if saved else None) for i in range(len(gys))]
    func.outputs = tuple(
        [_weakref(v) if v is not None else ref for v, ref in zip(alive, func.outputs)]
    )
    if graph_mode:
        gxs = func.backward(*gys)
    else:
        gxs = func.backward(*[Variable(gy) if gy is not None else None for gy in gys])
    del alive
    if not isinstance(gxs, tuple):
        gxs = tuple(gxs) if isinstance(gxs, list) else (gxs,)
    if not graph_mode:
        gxs = tuple([g.data if isinstance(g, Variable) else g for g in gxs])
    return gxs


def _dezero_vjp(self: Function, d: Any, xs: tuple, ys: tuple, gys: Any) -> tuple:
    """``vjp`` of a function written with DeZero's ``backward``: that backward (``xs`` and
    ``ys`` unused; in graph mode when the gradients are Variables)."""
    graph_mode = any(isinstance(gy, Variable) for gy in gys)
    return _dezero_rule(self, gys, graph_mode)


#: ``Function.__call__`` as written; each subclass runs a copy of it (``_give_own_call``)
_FUNCTION_CALL = Function.__call__
#: each subclass's copy of it, put back when anomaly mode removes its checking ``__call__``
_OWN_CALLS: weakref.WeakKeyDictionary[type, Any] = weakref.WeakKeyDictionary()
#: anomaly mode's checking ``__call__`` while installed, else None
_CALL_OVERRIDE: list[Any] = [None]


def _give_own_call(cls: type) -> None:
    """Give ``cls`` a copy of ``Function.__call__`` of its own, if it would inherit that one.

    CPython (3.11 on) specializes each attribute read and write of a code object for the one
    class it meets there, and falls back to the generic lookup when it meets several. One
    shared ``__call__`` meets every function class of a graph, so its accesses to ``self`` stay
    generic in any graph that mixes functions; a copy per class sees one class and is
    specialized (the mixed chain of benchmarks/instructions.py: 5 % fewer instructions).
    A class whose ``__call__`` is its own (or a base's, other than Function's) keeps it.
    """
    inherited = cls.__call__  # type: ignore[attr-defined]
    from_function = inherited is _FUNCTION_CALL or inherited is _CALL_OVERRIDE[0]
    if not from_function and not getattr(inherited, "_own_call", False):
        return
    code = _FUNCTION_CALL.__code__.replace()  # a new code object: its own specializations
    own = types.FunctionType(code, _FUNCTION_CALL.__globals__, "__call__")
    own.__qualname__ = f"{cls.__qualname__}.__call__"
    own.__doc__ = _FUNCTION_CALL.__doc__
    own.__annotations__ = dict(_FUNCTION_CALL.__annotations__)
    own._own_call = True  # type: ignore[attr-defined]
    _OWN_CALLS[cls] = own
    type.__setattr__(cls, "__call__", _CALL_OVERRIDE[0] or own)


def _install_call(override: Any) -> None:
    """Make every function run ``override`` when called (anomaly mode), or its own ``__call__``
    again for None."""
    _CALL_OVERRIDE[0] = override
    type.__setattr__(Function, "__call__", override or _FUNCTION_CALL)
    for cls, own in list(_OWN_CALLS.items()):
        type.__setattr__(cls, "__call__", override or own)


def _number_to_array(x: Any, xp: Any, inputs: tuple) -> Any:
    """A Python number as a 0-d array; takes the floating dtype of the other inputs if any."""
    if x is None or not _is_number(x):
        return x
    value = _scalar(x)
    for other in inputs:
        data = other.data if isinstance(other, Variable) else other
        dtype = getattr(data, "dtype", None)
        floating = dtype is not None and xp.isdtype(dtype, "real floating")
        weak = isinstance(value, (int, float)) or getattr(value, "_traced_number", False)
        if floating and not _is_number(data) and weak:
            return xp.asarray(value, dtype=dtype)
    return xp.asarray(value)
