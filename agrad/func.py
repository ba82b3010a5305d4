"""Functional transforms with PyTorch's names: ``grad``, ``vjp``, ``jvp``, ``jacrev``, ``hvp``, ...

Each transform takes a function and returns a function (or calls it), as ``torch.func`` and JAX
do, and is built on :func:`agrad.grad` over agrad's tape. The differentiated arguments may be
arrays of any backend or Variables, or tuples, lists and dicts of them:

* called with arrays (outside any other transform), a transform returns arrays of the same
  backend, and nothing of the graph it recorded outlives the call;
* called with Variables, or from inside the function of another transform, or with a function
  that closes over Variables needing gradients (parameters), it returns Variables that can be
  differentiated again, so transforms compose (``grad(grad(f))``, ``jacfwd(jacrev(f))``) and
  ``.backward()`` works on their results.

A transform never reads or writes any ``.grad``. Each differentiated Variable enters the function
through an identity node of its own, so a transform inside another differentiates with respect to
its own argument only, even where the outer argument is closed over as well.

Forward-mode results (``jvp``, ``jacfwd``) use the double-vjp trick: the vjp ``J^T u`` is linear
in ``u``, so its vjp with respect to ``u`` is ``J t``. ``hvp`` differentiates ``<grad f(x), v>``
once more (reverse over reverse), which never forms the Hessian.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

from agrad import functions as _F
from agrad.backends import backend_of
from agrad.backprop import grad as _grad
from agrad.config import _enable_backprop
from agrad.core import Function, Variable, is_differentiable_dtype

__all__ = [
    "grad",
    "grad_and_value",
    "hessian",
    "hvp",
    "jacfwd",
    "jacrev",
    "jvp",
    "value_and_grad",
    "vjp",
]

# how many transforms are running a user function right now: inside one, results stay Variables
_depth = contextvars.ContextVar("agrad_func_depth", default=0)


@contextlib.contextmanager
def _tracing() -> Iterator[None]:
    """Record the graph (even under ``no_grad``, as torch.func) and mark a transform as running."""
    depth = _depth.set(_depth.get() + 1)
    backprop = _enable_backprop.set(True)
    try:
        yield
    finally:
        _enable_backprop.reset(backprop)
        _depth.reset(depth)


class _Identity(Function):
    """``y = x`` as a node of its own: the point a transform differentiates with respect to."""

    retain_inputs = ()
    retain_outputs = ()

    def forward(self, x: Any) -> Any:
        return x

    def vjp(self, d, xs, ys, gys):
        return gys[0]


# -- pytrees: tuples, lists and dicts of leaves ------------------------------------------------
def _flatten(tree: Any, leaves: list) -> Any:
    """Append the leaves of ``tree`` to ``leaves``; return the spec that rebuilds it."""
    if isinstance(tree, (tuple, list)):
        return (type(tree), [_flatten(item, leaves) for item in tree])
    if isinstance(tree, dict):
        return (dict, [(key, _flatten(value, leaves)) for key, value in tree.items()])
    leaves.append(tree)
    return None


def _unflatten(spec: Any, leaves: Iterator) -> Any:
    if spec is None:
        return next(leaves)
    kind, children = spec
    if kind is dict:
        return {key: _unflatten(child, leaves) for key, child in children}
    items = [_unflatten(child, leaves) for child in children]
    if hasattr(kind, "_fields"):  # a namedtuple
        return kind(*items)
    return kind(items)


def _leaves(tree: Any) -> tuple[list, Any]:
    leaves: list = []
    spec = _flatten(tree, leaves)
    return leaves, spec


def _map(tree: Any, fn: Callable[[Any], Any]) -> Any:
    leaves, spec = _leaves(tree)
    return _unflatten(spec, iter([fn(leaf) for leaf in leaves]))


# -- arguments ------------------------------------------------------------------------------
def _check_argnums(name: str, argnums: Any, nargs: int) -> tuple[tuple[int, ...], bool]:
    """``argnums`` as a tuple of non-negative positions, and whether it was a tuple."""
    many = isinstance(argnums, tuple)
    items = argnums if many else (argnums,)
    if many and not items:
        raise ValueError(f"agrad.func.{name}: argnums must name at least one argument, got ()")
    positions = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise TypeError(
                f"agrad.func.{name}: argnums must be an int or a tuple of ints, not {argnums!r}"
            )
        if not -nargs <= item < nargs:
            raise ValueError(
                f"agrad.func.{name}: argnums={argnums!r} is out of range for a call with {nargs} "
                f"positional argument{'' if nargs == 1 else 's'}"
            )
        positions.append(item % nargs)
    if len(set(positions)) != len(positions):
        raise ValueError(f"agrad.func.{name}: argnums={argnums!r} names an argument twice")
    return tuple(positions), many


def _is_array(x: Any) -> bool:
    return backend_of(x, None) is not None


def _entry(name: str, x: Any, where: str) -> Variable:
    """A differentiable stand-in for the argument leaf ``x`` (an array or a Variable)."""
    if isinstance(x, Variable):
        data = x.data
        if data is None:
            raise ValueError(f"agrad.func.{name}: {where} is a Variable without data")
    elif _is_array(x):
        data = x
    else:
        raise TypeError(
            f"agrad.func.{name}: {where} must be an array of an agrad backend or a Variable, "
            f"not {type(x).__name__}; convert numbers and lists with agrad.as_array first"
        )
    if not is_differentiable_dtype(data.dtype):
        raise TypeError(
            f"agrad.func.{name}: {where} has dtype {backend_of(data).dtype_name(data.dtype)}; "
            "only floating-point arguments can be differentiated"
        )
    if not isinstance(x, Variable):
        return Variable(data)
    node = x.node
    if node is not None and node.creator is not None and not node.requires_grad:
        return Variable(data)  # computed from constants only: nothing outside to reach
    return _Identity()(x)


def _differentiable(*trees: Any) -> bool:
    """Whether results must be Variables: floating-point Variables came in (integer ones, such
    as labels, are never differentiated), or another transform is running."""
    if _depth.get() > 0:
        return True
    return any(
        isinstance(leaf, Variable)
        and leaf.data is not None
        and is_differentiable_dtype(leaf.data.dtype)
        for tree in trees
        for leaf in _leaves(tree)[0]
    )


class _Traced:
    """One call of the user's function with its differentiated arguments made graph entries."""

    def __init__(self, name: str, f: Callable, args: tuple, kwargs: dict, argnums: tuple) -> None:
        self.name = name
        self.differentiable = _differentiable(args, kwargs)
        self.specs = []  # per argnum: how to rebuild the argument from its leaves
        self.inputs: list[Variable] = []  # every differentiated leaf, argnum by argnum
        self.counts = []  # per argnum: how many of the leaves are its
        call_args = list(args)
        with _tracing():
            for position in argnums:
                leaves, spec = _leaves(args[position])
                if not leaves:
                    raise ValueError(
                        f"agrad.func.{name}: argument {position} has nothing to differentiate "
                        f"(an empty {type(args[position]).__name__})"
                    )
                entries = [
                    _entry(name, leaf, _where(position, spec, i)) for i, leaf in enumerate(leaves)
                ]
                call_args[position] = _unflatten(spec, iter(entries))
                self.specs.append(spec)
                self.counts.append(len(entries))
                self.inputs += entries
            self.output = f(*call_args, **kwargs)

    def settle(self, outs: list[Variable]) -> bool:
        """Whether results must be Variables, now that the outputs are known: also when they
        depend on a Variable ``f`` closes over (a parameter, say), not only on the arguments."""
        if not self.differentiable:
            self.differentiable = _reaches_other_leaves(outs, self.inputs)
        return self.differentiable

    def per_argnum(self, flat: list) -> list:
        """One value per leaf of the inputs -> one tree per differentiated argument."""
        trees, start = [], 0
        for spec, count in zip(self.specs, self.counts):
            trees.append(_unflatten(spec, iter(flat[start : start + count])))
            start += count
        return trees


def _reaches_other_leaves(outs: list[Variable], inputs: list[Variable]) -> bool:
    """Whether the graph behind ``outs`` holds a floating leaf other than ``inputs`` that
    somebody still holds (a parameter ``f`` closes over; not a Variable ``f`` made and dropped,
    which nobody can ask a gradient for)."""
    own = {x.node for x in inputs}
    pending = [y.node.creator for y in outs if y.node is not None and y.node.creator is not None]
    seen = set(pending)
    while pending:
        for node in pending.pop().input_nodes:
            if node is None or not node.requires_grad:
                continue
            creator = node.creator
            if creator is None:
                # an integer leaf (labels, indexes) is data here, as for the arguments
                if (
                    node not in own
                    and node.ref is not None
                    and node.ref() is not None
                    and is_differentiable_dtype(node.dtype)
                ):
                    return True
            elif creator not in seen:
                seen.add(creator)
                pending.append(creator)
    return False


def _where(position: int, spec: Any, index: int) -> str:
    return f"argument {position}" if spec is None else f"argument {position} (leaf {index})"


def _split_aux(name: str, output: Any, has_aux: bool) -> tuple[Any, Any]:
    if not has_aux:
        return output, None
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise TypeError(
            f"agrad.func.{name}(f, has_aux=True): f must return a pair (output, aux), "
            f"got {type(output).__name__}"
            + (f" of length {len(output)}" if isinstance(output, (tuple, list)) else "")
        )
    return output[0], output[1]


def _as_output(name: str, y: Any) -> Variable:
    """An output leaf of the user's function as a Variable (an array is a constant)."""
    if isinstance(y, Variable):
        if y.data is None:
            raise ValueError(f"agrad.func.{name}: f returned a Variable without data")
        return y
    if _is_array(y):
        return Variable(y)
    raise TypeError(
        f"agrad.func.{name}: f must return Variables or arrays (or tuples, lists, dicts of "
        f"them), got {type(y).__name__}"
    )


def _scalar_output(name: str, y: Any) -> Variable:
    y = _as_output(name, y)
    if y.ndim != 0:
        raise ValueError(
            f"agrad.func.{name}: f must return a 0-d (scalar) output to be differentiated, got "
            f"shape {tuple(y.shape)}; use vjp or jacrev for outputs with more elements"
        )
    _check_floating(name, y, "the output of f")
    return y


def _check_floating(name: str, y: Variable, what: str) -> None:
    if not is_differentiable_dtype(y.dtype):
        raise TypeError(
            f"agrad.func.{name}: {what} has dtype {y.backend.dtype_name(y.dtype)}; only "
            "floating-point outputs can be differentiated"
        )


def _result(v: Any, differentiable: bool) -> Any:
    """What the user gets: the Variable itself, or its array when arrays came in."""
    if differentiable or not isinstance(v, Variable):
        return v
    return v.data


def _results(tree: Any, differentiable: bool) -> Any:
    return _map(tree, lambda v: _result(v, differentiable))


def _check_like(name: str, what: str, given: list, like: list[Variable], labels: str) -> None:
    """``given`` (arrays or Variables) has one entry per ``like`` entry, each of its shape."""
    if len(given) != len(like):
        raise ValueError(
            f"agrad.func.{name}: {len(given)} {what} for {len(like)} {labels}; give one per "
            f"{labels[:-1]}, in the same structure"
        )
    for i, (g, x) in enumerate(zip(given, like)):
        if not isinstance(g, Variable) and not _is_array(g):
            raise TypeError(
                f"agrad.func.{name}: {what} {i} must be an array or a Variable, not "
                f"{type(g).__name__}"
            )
        if tuple(g.shape) != tuple(x.shape):
            raise ValueError(
                f"agrad.func.{name}: {what} {i} has shape {tuple(g.shape)}, its "
                f"{labels[:-1]} has shape {tuple(x.shape)}"
            )


def _stack(values: list, axis: int, differentiable: bool) -> Any:
    if differentiable:
        return _F.stack(values, axis=axis)
    arrays = [v.data if isinstance(v, Variable) else v for v in values]
    return backend_of(arrays[0]).xp.stack(arrays, axis=axis)


def _reshape(x: Any, shape: tuple[int, ...], differentiable: bool) -> Any:
    if differentiable:
        return _F.reshape(x, shape)
    return backend_of(x).xp.reshape(x, shape)


def _zeros(like: Variable, shape: tuple[int, ...], differentiable: bool) -> Any:
    zeros = like.xp.zeros(shape, dtype=like.dtype)
    return Variable(zeros) if differentiable else zeros


def _basis(y: Variable) -> Any:
    """The rows of the identity matrix of ``y.size``, each reshaped like ``y`` when indexed."""
    return y.xp.eye(y.size, dtype=y.dtype)


# -- grad, grad_and_value, value_and_grad ----------------------------------------------------
def _grad_and_value(
    name: str, f: Callable, argnums: Any, has_aux: bool, args: tuple, kwargs: dict
) -> tuple[Any, Any, Any]:
    positions, many = _check_argnums(name, argnums, len(args))
    traced = _Traced(name, f, args, kwargs, positions)
    output, aux = _split_aux(name, traced.output, has_aux)
    y = _scalar_output(name, output)
    differentiable = traced.settle([y])
    grads = _grad(
        y,
        traced.inputs,
        retain_graph=differentiable,
        create_graph=differentiable,
        materialize_grads=True,
    )
    trees = [_results(tree, differentiable) for tree in traced.per_argnum(list(grads))]
    gradient = tuple(trees) if many else trees[0]
    return gradient, _result(y, differentiable), _results(aux, differentiable)


def grad(f: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False) -> Callable:
    """The gradient of a scalar function, as a function (``torch.func.grad``).

    Parameters
    ----------
    f : callable
        Takes arrays or Variables (or tuples, lists, dicts of them) and returns a 0-d Variable,
        or ``(output, aux)`` with ``has_aux``. Keyword arguments are passed through, not
        differentiated.
    argnums : int or tuple of int
        The positional arguments to differentiate: one gradient for an int, a tuple of them for
        a tuple.
    has_aux : bool
        ``f`` returns ``(output, aux)``; the gradient function then returns ``(grad, aux)``.

    Returns
    -------
    callable
        Called like ``f``, it returns the gradient with the structure, shapes and dtypes of the
        differentiated arguments: arrays of their backend for arrays, Variables that can be
        differentiated again for Variables (see :mod:`agrad.func`).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad import func
    >>> xp = agrad.current_backend().xp
    >>> x = xp.asarray([0.0, 1.0, 2.0])
    >>> agrad.cuda.as_numpy(func.grad(lambda v: F.sum(v * v))(x)).tolist()
    [0.0, 2.0, 4.0]
    >>> d2 = func.grad(func.grad(lambda v: v * v * v))  # d²/dx² x³ = 6x
    >>> float(d2(xp.asarray(2.0)))
    12.0
    """

    def gradient(*args: Any, **kwargs: Any) -> Any:
        g, _, aux = _grad_and_value("grad", f, argnums, has_aux, args, kwargs)
        return (g, aux) if has_aux else g

    return gradient


def grad_and_value(
    f: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable:
    """The gradient and the value of a scalar function in one call (``torch.func``'s order).

    Parameters
    ----------
    f : callable
        As for :func:`grad`.
    argnums : int or tuple of int
        As for :func:`grad`.
    has_aux : bool
        ``f`` returns ``(output, aux)``; the result is then ``(grad, (value, aux))``.

    Returns
    -------
    callable
        Called like ``f``, it returns ``(grad, value)``.

    Examples
    --------
    >>> import agrad
    >>> from agrad import func
    >>> xp = agrad.current_backend().xp
    >>> g, value = func.grad_and_value(lambda x: x * x)(xp.asarray(3.0))
    >>> float(g), float(value)
    (6.0, 9.0)
    """

    def gradient_and_value(*args: Any, **kwargs: Any) -> Any:
        g, value, aux = _grad_and_value("grad_and_value", f, argnums, has_aux, args, kwargs)
        return (g, (value, aux)) if has_aux else (g, value)

    return gradient_and_value


def value_and_grad(
    f: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False
) -> Callable:
    """The value and the gradient of a scalar function in one call (JAX's order).

    Parameters
    ----------
    f : callable
        As for :func:`grad`.
    argnums : int or tuple of int
        As for :func:`grad`.
    has_aux : bool
        ``f`` returns ``(output, aux)``; the result is then ``((value, aux), grad)``.

    Returns
    -------
    callable
        Called like ``f``, it returns ``(value, grad)``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad import func
    >>> xp = agrad.current_backend().xp
    >>> loss = lambda w, b: F.sum((w * 2.0 + b) ** 2)
    >>> w, b = xp.asarray(1.0), xp.asarray(0.5)
    >>> value, (gw, gb) = func.value_and_grad(loss, argnums=(0, 1))(w, b)
    >>> float(value), float(gw), float(gb)
    (6.25, 10.0, 5.0)
    """

    def value_and_gradient(*args: Any, **kwargs: Any) -> Any:
        g, value, aux = _grad_and_value("value_and_grad", f, argnums, has_aux, args, kwargs)
        return ((value, aux), g) if has_aux else (value, g)

    return value_and_gradient


# -- vjp, jvp -----------------------------------------------------------------------------------
def vjp(f: Callable, *primals: Any, has_aux: bool = False) -> tuple:
    """The output of ``f`` at ``primals`` and its vector-Jacobian product (``torch.func.vjp``).

    Parameters
    ----------
    f : callable
        Takes the primals and returns a Variable or array (or a tuple, list, dict of them); with
        ``has_aux``, a pair ``(output, aux)``.
    *primals
        The arguments of ``f``, all differentiated: arrays or Variables, or trees of them.
    has_aux : bool
        ``f`` returns ``(output, aux)``; ``vjp`` then returns ``(output, vjp_fn, aux)``.

    Returns
    -------
    tuple
        ``(output, vjp_fn)``: ``vjp_fn(cotangents)``, with cotangents shaped like the output
        (same structure), returns a tuple with one gradient per primal. It can be called many
        times; with Variable cotangents its results are differentiable in them as well.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad import func
    >>> xp = agrad.current_backend().xp
    >>> y, vjp_fn = func.vjp(lambda x: x * x, xp.asarray([1.0, 2.0]))
    >>> (gx,) = vjp_fn(xp.asarray([1.0, 10.0]))
    >>> agrad.cuda.as_numpy(gx).tolist()
    [2.0, 40.0]
    """
    traced = _Traced("vjp", f, primals, {}, tuple(range(len(primals))))
    output, aux = _split_aux("vjp", traced.output, has_aux)
    out_leaves, out_spec = _leaves(output)
    outs = [_as_output("vjp", y) for y in out_leaves]
    differentiable = traced.settle(outs)

    def vjp_fn(cotangents: Any) -> tuple:
        given, _ = _leaves(cotangents)
        _check_like("vjp", "cotangents", given, outs, "outputs")
        create = differentiable or _differentiable(cotangents)
        grads = _grad(
            outs,
            traced.inputs,
            grad_outputs=given,
            retain_graph=True,
            create_graph=create,
            materialize_grads=True,
        )
        return tuple([_results(tree, create) for tree in traced.per_argnum(list(grads))])

    value = _results(_unflatten(out_spec, iter(outs)), differentiable)
    if has_aux:
        return value, vjp_fn, _results(aux, differentiable)
    return value, vjp_fn


def _tuple_of(name: str, what: str, values: Any) -> tuple:
    if not isinstance(values, (tuple, list)):
        raise TypeError(
            f"agrad.func.{name}: {what} must be a tuple (one entry per argument of f), not "
            f"{type(values).__name__}; write ({what[:-1]},) for one"
        )
    return tuple(values)


def jvp(f: Callable, primals: tuple, tangents: tuple, *, has_aux: bool = False) -> tuple:
    """The output of ``f`` at ``primals`` and its Jacobian-vector product (``torch.func.jvp``).

    Computed with the double-vjp trick: two reverse passes, no forward mode.

    Parameters
    ----------
    f : callable
        Takes the primals and returns a Variable or array (or a tuple, list, dict of them).
    primals : tuple
        The arguments of ``f`` (arrays or Variables, or trees of them).
    tangents : tuple
        One tangent per primal leaf, with the primals' structure and shapes.
    has_aux : bool
        ``f`` returns ``(output, aux)``; ``jvp`` then returns ``(output, jvp_out, aux)``.

    Returns
    -------
    tuple
        ``(output, jvp_out)``, ``jvp_out`` with the output's structure and shapes.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad import func
    >>> xp = agrad.current_backend().xp
    >>> x = xp.asarray([0.0, 1.0])
    >>> y, t = func.jvp(lambda v: v * v, (x,), (xp.asarray([1.0, 1.0]),))
    >>> agrad.cuda.as_numpy(t).tolist()
    [0.0, 2.0]
    """
    primals = _tuple_of("jvp", "primals", primals)
    tangents = _tuple_of("jvp", "tangents", tangents)
    traced = _Traced("jvp", f, primals, {}, tuple(range(len(primals))))
    given, _ = _leaves(tangents)
    _check_like("jvp", "tangents", given, traced.inputs, "primals")
    output, aux = _split_aux("jvp", traced.output, has_aux)
    out_leaves, out_spec = _leaves(output)
    outs = [_as_output("jvp", y) for y in out_leaves]
    differentiable = traced.settle(outs) or _differentiable(tangents)
    columns = _jvp_columns("jvp", outs, traced.inputs, [given], differentiable)[0]
    value = _results(_unflatten(out_spec, iter(outs)), traced.differentiable)
    jvp_out = _results(_unflatten(out_spec, iter(columns)), differentiable)
    if has_aux:
        return value, jvp_out, _results(aux, traced.differentiable)
    return value, jvp_out


def _jvp_columns(
    name: str, outs: list[Variable], inputs: list[Variable], tangent_sets: list, differentiable
) -> list[list]:
    """``J t`` for each tangent set (one tangent or None per input): one list per set, one
    entry per output. The vjp ``J^T u`` at a dummy ``u`` is recorded once and reused."""
    for i, y in enumerate(outs):
        _check_floating(name, y, f"output {i} of f")
    dummies = [Variable(y.xp.zeros(y.shape, dtype=y.dtype)) for y in outs]
    transposed = _grad(outs, inputs, grad_outputs=dummies, create_graph=True, retain_graph=True)
    results = []
    for tangents in tangent_sets:
        pairs = [(g, t) for g, t in zip(transposed, tangents) if g is not None and t is not None]
        if not pairs:
            results.append([_zeros(y, tuple(y.shape), differentiable) for y in outs])
            continue
        columns = _grad(
            [g for g, _ in pairs],
            dummies,
            grad_outputs=[t for _, t in pairs],
            retain_graph=True,
            create_graph=differentiable,
            materialize_grads=True,
        )
        results.append(list(columns))
    return results


# -- Jacobians, Hessian, hvp -------------------------------------------------------------------
def _jacobian(name: str, f: Callable, argnums: Any, has_aux: bool, args, kwargs, forward: bool):
    positions, many = _check_argnums(name, argnums, len(args))
    traced = _Traced(name, f, args, kwargs, positions)
    output, aux = _split_aux(name, traced.output, has_aux)
    out_leaves, out_spec = _leaves(output)
    outs = [_as_output(name, y) for y in out_leaves]
    differentiable = traced.settle(outs)
    inputs = traced.inputs
    # blocks[i][j]: d output i / d input j, shaped output.shape + input.shape
    if forward:
        blocks = _jacfwd_blocks(name, outs, inputs, differentiable)
    else:
        blocks = _jacrev_blocks(name, outs, inputs, differentiable)
    per_output = []
    for row in blocks:
        trees = [_results(tree, differentiable) for tree in traced.per_argnum(row)]
        per_output.append(tuple(trees) if many else trees[0])
    jacobian = _unflatten(out_spec, iter(per_output))
    return (jacobian, _results(aux, differentiable)) if has_aux else jacobian


def _jacrev_blocks(name: str, outs: list, inputs: list, differentiable: bool) -> list[list]:
    blocks = []
    for i, y in enumerate(outs):
        _check_floating(name, y, f"output {i} of f")
        shape = tuple(y.shape)
        if y.size == 0:
            blocks.append([_zeros(x, shape + tuple(x.shape), differentiable) for x in inputs])
            continue
        basis = _basis(y)
        rows: list[list] = [[] for _ in inputs]
        for k in range(y.size):
            seed = y.xp.reshape(basis[k, ...], shape)
            grads = _grad(
                y,
                inputs,
                grad_outputs=seed,
                retain_graph=True,
                create_graph=differentiable,
                materialize_grads=True,
            )
            for j, g in enumerate(grads):
                rows[j].append(g)
        blocks.append(
            [
                _reshape(_stack(r, 0, differentiable), shape + tuple(x.shape), differentiable)
                for r, x in zip(rows, inputs)
            ]
        )
    return blocks


def _jacfwd_blocks(name: str, outs: list, inputs: list, differentiable: bool) -> list[list]:
    tangent_sets, owners = [], []
    for j, x in enumerate(inputs):
        if x.size == 0:
            continue
        basis = _basis(x)
        for k in range(x.size):
            tangents = [None] * len(inputs)
            tangents[j] = x.xp.reshape(basis[k, ...], tuple(x.shape))
            tangent_sets.append(tangents)
            owners.append(j)
    columns = _jvp_columns(name, outs, inputs, tangent_sets, differentiable) if owners else []
    blocks = []
    for i, y in enumerate(outs):
        row = []
        for j, x in enumerate(inputs):
            shape = tuple(y.shape) + tuple(x.shape)
            mine = [c[i] for c, owner in zip(columns, owners) if owner == j]
            if not mine:
                row.append(_zeros(x, shape, differentiable))
            else:
                row.append(_reshape(_stack(mine, -1, differentiable), shape, differentiable))
        blocks.append(row)
    return blocks


def jacrev(f: Callable, argnums: int | tuple[int, ...] = 0, *, has_aux: bool = False) -> Callable:
    """The Jacobian of ``f`` by reverse mode: one vjp per output element (``torch.func.jacrev``).

    Parameters
    ----------
    f : callable
        Returns a Variable or array (or a tuple, list, dict of them); with ``has_aux``, a pair
        ``(output, aux)``.
    argnums : int or tuple of int
        The positional arguments to differentiate.
    has_aux : bool
        The Jacobian function returns ``(jacobian, aux)``.

    Returns
    -------
    callable
        Called like ``f``, it returns the Jacobian of shape ``output.shape + input.shape``: per
        output leaf (the output's structure), per argnum (a tuple for a tuple ``argnums``),
        per argument leaf (the argument's structure).

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad import func
    >>> xp = agrad.current_backend().xp
    >>> J = func.jacrev(lambda x: F.sum(x * x, axis=1))(xp.asarray([[1.0, 2.0], [3.0, 4.0]]))
    >>> J.shape
    (2, 2, 2)
    >>> agrad.cuda.as_numpy(J)[1].tolist()  # d (row 1 of the output) / d x
    [[0.0, 0.0], [6.0, 8.0]]
    """

    def jacobian(*args: Any, **kwargs: Any) -> Any:
        return _jacobian("jacrev", f, argnums, has_aux, args, kwargs, forward=False)

    return jacobian


def jacfwd(f: Callable, argnums: int | tuple[int, ...] = 0, *, has_aux: bool = False) -> Callable:
    """The Jacobian of ``f`` column by column: one jvp per input element (``torch.func.jacfwd``).

    The jvps come from the double-vjp trick, so the vjp of ``f`` is recorded once and each
    column costs one reverse pass through it.

    Parameters
    ----------
    f : callable
        As for :func:`jacrev`.
    argnums : int or tuple of int
        The positional arguments to differentiate.
    has_aux : bool
        The Jacobian function returns ``(jacobian, aux)``.

    Returns
    -------
    callable
        Called like ``f``, the Jacobian in the layout of :func:`jacrev`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad import func
    >>> xp = agrad.current_backend().xp
    >>> J = func.jacfwd(lambda x: F.sin(x) * 2.0)(xp.asarray([0.0, 0.0]))
    >>> agrad.cuda.as_numpy(J).tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """

    def jacobian(*args: Any, **kwargs: Any) -> Any:
        return _jacobian("jacfwd", f, argnums, has_aux, args, kwargs, forward=True)

    return jacobian


def hessian(f: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """The Hessian of a scalar function: ``jacfwd(jacrev(f, argnums), argnums)`` (as torch.func).

    Parameters
    ----------
    f : callable
        Returns a 0-d Variable.
    argnums : int or tuple of int
        The arguments to differentiate; for a tuple the result is a tuple of tuples,
        ``H[i][j] = d² f / d arg_i d arg_j``.

    Returns
    -------
    callable
        Called like ``f``, the Hessian of shape ``input.shape + input.shape``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad import func
    >>> xp = agrad.current_backend().xp
    >>> H = func.hessian(lambda x: F.sum(x * x * x))(xp.asarray([1.0, 2.0]))
    >>> agrad.cuda.as_numpy(H).tolist()
    [[6.0, 0.0], [0.0, 12.0]]
    """
    return jacfwd(jacrev(f, argnums), argnums)


def hvp(f: Callable, primals: Any, tangents: Any) -> tuple[Any, Any]:
    """The value of a scalar ``f`` and its Hessian times ``tangents``, without forming the Hessian.

    As ``torch.autograd.functional.hvp``: ``primals`` is one argument or a tuple of them, and
    the product has the same structure. Computed reverse over reverse: the gradient is recorded,
    then ``<grad f, tangents>`` differentiated once more (the Hessian of a scalar function is
    symmetric, so this is ``H v``); it costs about two to three gradients.

    Parameters
    ----------
    f : callable
        Takes the primals and returns a 0-d Variable.
    primals : array, Variable or tuple
        The point: one argument, or a tuple with one entry per argument of ``f`` (trees
        allowed).
    tangents : array, Variable or tuple
        The vector ``v``, shaped like ``primals``.

    Returns
    -------
    tuple
        ``(output, hvp)``.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad import func
    >>> xp = agrad.current_backend().xp
    >>> f = lambda x: F.sum(x * x * x)
    >>> value, hv = func.hvp(f, xp.asarray([1.0, 2.0]), xp.asarray([1.0, 1.0]))
    >>> float(value), agrad.cuda.as_numpy(hv).tolist()
    (9.0, [6.0, 12.0])
    """
    single = not isinstance(primals, (tuple, list))
    if single == isinstance(tangents, (tuple, list)):
        raise TypeError(
            "agrad.func.hvp: primals and tangents must both be tuples or both single arguments, "
            f"got {type(primals).__name__} and {type(tangents).__name__}"
        )
    primals = (primals,) if single else tuple(primals)
    tangents = (tangents,) if single else tuple(tangents)
    traced = _Traced("hvp", f, primals, {}, tuple(range(len(primals))))
    given, _ = _leaves(tangents)
    _check_like("hvp", "tangents", given, traced.inputs, "primals")
    y = _scalar_output("hvp", traced.output)
    differentiable = traced.settle([y]) or _differentiable(tangents)
    inputs = traced.inputs
    grads = _grad(y, inputs, create_graph=True, retain_graph=True)
    pairs = [(g, v) for g, v in zip(grads, given) if g is not None]
    if pairs:
        products = _grad(
            [g for g, _ in pairs],
            inputs,
            grad_outputs=[v for _, v in pairs],
            retain_graph=differentiable,
            create_graph=differentiable,
            materialize_grads=True,
        )
    else:
        products = tuple([_zeros(x, tuple(x.shape), differentiable) for x in inputs])
    trees = [_results(tree, differentiable) for tree in traced.per_argnum(list(products))]
    value = _result(y, traced.differentiable)
    return value, trees[0] if single else tuple(trees)
