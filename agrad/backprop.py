"""Reverse-mode differentiation over the graph of :mod:`agrad.core`: ``backward`` and ``grad``.

Functions run once each, highest generation first, so that every output gradient is complete
before its function runs. Output gradients wait in a dict of the pass keyed by their function,
leaf gradients in one keyed by the leaf's node; nothing is keyed by the user's Variables, which the
graph does not hold. Unless the graph is retained, each function releases the arrays it kept as
soon as its gradient is computed.

Two modes share the loop: plain (``create_graph=False``), where ``vjp`` runs on arrays with the
backend's :class:`~agrad.ops.ArrayOps` and nothing is recorded; and graph mode, where ``vjp``
runs on Variables with ``agrad.functions`` so that the gradients can be differentiated again.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from agrad import functions as _functions
from agrad.anomaly import check_backward as _check_backward
from agrad.anomaly import entering_backward as _entering_backward
from agrad.backends import backend_for_type, backend_of
from agrad.config import _active_trace, _detect_anomaly, _enable_backprop
from agrad.core import (
    _KEPT_NOTHING,
    Function,
    RemovableHandle,
    Variable,
    VariableNode,
    _dezero_rule,
    _gets_grad,
    _grad_dtype,
    _kept,
    _leaf_node,
    _UnretainedReadError,
    _wrap,
    is_differentiable_dtype,
)
from agrad.ops import array_ops

__all__ = ["backward", "grad"]

#: held while a pass adds into a leaf's ``grad``: once per leaf and pass, not per operation
_leaf_lock = threading.Lock()


def _seed(root: Variable) -> Any:
    """The gradient backward starts from: ``root.grad`` if the user set it, else ones."""
    data = root.data
    if data is None:
        raise ValueError("backward() called on a Variable without data")
    backend = backend_of(data)
    given = root.grad
    if given is None:
        if not _gets_grad(data.dtype):
            raise TypeError(
                f"backward(): only floating-point and integer outputs can be differentiated; "
                f"this one is {backend.dtype_name(data.dtype)}"
            )
        # a broadcast scalar: no full-size array of ones for a large output; an integer
        # output's gradient is floating point (DeZero's book starts from integer Variables)
        dtype = _grad_dtype(data.dtype, backend)
        one = backend.scalar_array(1, dtype)
        if not data.shape:  # a 0-d output (a loss): the array of one 1 itself
            return one
        if math.prod(data.shape) == 1:  # (1,), (1, 1): NumPy reshapes in a third of the time
            return backend.xp.reshape(one, tuple(data.shape))
        return backend.xp.broadcast_to(one, data.shape)
    seed = given.data if isinstance(given, Variable) else given
    owner = backend_of(seed, None)
    if owner is None:
        raise TypeError(
            f"backward(): the output's grad must be a Variable or an array, not "
            f"{type(given).__name__}"
        )
    if owner is not backend:
        if not backend.traced or backend.real is not owner:
            raise TypeError(
                f"backward(): the output lives on backend {backend.name!r} but the gradient set "
                f"in its .grad lives on {owner.name!r}; move it with .to({backend.name!r}) first"
            )
        seed = backend.xp.asarray(seed)  # under agrad.jit: a constant of the traced program
    if tuple(seed.shape) != tuple(data.shape):
        raise ValueError(
            f"backward(): the gradient set in .grad has shape {tuple(seed.shape)}, the output "
            f"has shape {tuple(data.shape)}"
        )
    return seed


def backward(root: Variable, retain_grad: bool, create_graph: bool, retain_graph: bool) -> None:
    """``root.backward(...)``: accumulate gradients into the ``grad`` of every leaf.

    Users call :meth:`agrad.Variable.backward`, which documents the arguments and errors.

    Parameters
    ----------
    root : Variable
        Where backward starts.
    retain_grad : bool
        Keep the gradients of intermediate variables too.
    create_graph : bool
        Record the backward pass, for higher-order derivatives.
    retain_graph : bool
        Keep what functions retained, for another backward.

    Examples
    --------
    >>> import agrad
    >>> from agrad.backprop import backward
    >>> x = agrad.Variable(agrad.current_backend().asarray(3.0))
    >>> backward(x * x, retain_grad=False, create_graph=False, retain_graph=False)
    >>> x.grad
    variable(6.0)
    """
    _note_backward()
    seed = _seed(root)
    node = root.node
    if node is None or node.creator is None:  # a leaf: DeZero gives it the seed as its grad
        if root.grad is None:
            root.grad = Variable(_writable(backend_of(seed), seed, set()))
        if node is not None and node.hooks:
            _call_hooks(node, root)
        return
    if create_graph:  # the gradients are Variables, starting with the seed
        seed = root.grad if isinstance(root.grad, Variable) else Variable(seed)
    root.grad = None  # with retain_grad the loop gives it (and every output) its gradient
    _run([(node, seed)], retain_grad, create_graph, retain_graph, targets=None)


def grad(
    outputs: Variable | Sequence[Variable],
    inputs: Variable | Sequence[Variable],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    materialize_grads: bool = False,
) -> tuple[Variable | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, without touching any ``.grad``.

    ``inputs`` may be any Variables of the graph, leaves or not. ``grad_outputs`` (one per
    output; arrays or Variables) weights the outputs, ones by default. With ``create_graph`` the
    results can be differentiated again, also with respect to ``grad_outputs`` given as
    Variables (the double-vjp trick of :func:`agrad.func.jvp`). An input the outputs do not
    depend on gets None, or zeros with ``materialize_grads``. Returns one result per input, as a
    tuple (as ``torch.autograd.grad``).

    Parameters
    ----------
    outputs : Variable or sequence of Variable
        What to differentiate.
    inputs : Variable or sequence of Variable
        With respect to what.
    grad_outputs : array, Variable, sequence of them, or None, default None
        One per output (None entries mean ones), each of its output's shape and backend.
    retain_graph : bool or None, default None
        Keep what the functions retained, for another backward; None means ``create_graph``.
    create_graph : bool, default False
        Record the computation of the gradients, so that they can be differentiated.
    materialize_grads : bool, default False
        Give zeros, not None, for an input the outputs do not depend on.

    Returns
    -------
    tuple of Variable or None
        One gradient per input, in order.

    Raises
    ------
    TypeError
        If an output or input is not a Variable, or an output is neither floating point nor
        integer (with no ``grad_outputs`` entry), or a ``grad_outputs`` entry is not an array of
        its backend.
    ValueError
        If the number of ``grad_outputs`` is not the number of outputs, or one has the wrong
        shape.
    RuntimeError
        If a function on the way was released by an earlier backward.

    Examples
    --------
    >>> import agrad
    >>> backend = agrad.current_backend()
    >>> x = agrad.Variable(backend.asarray(2.0))
    >>> w = agrad.Variable(backend.asarray(5.0))
    >>> y = x**3
    >>> (gx,) = agrad.grad(y, x, create_graph=True)
    >>> gx, x.grad is None
    (variable(12.0), True)
    >>> agrad.grad(gx, [x, w], materialize_grads=True)
    (variable(12.0), variable(0.0))
    """
    _note_backward()
    outputs = _as_list(outputs, "outputs")
    inputs = _as_list(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = (
            list(grad_outputs) if isinstance(grad_outputs, (list, tuple)) else [grad_outputs]
        )
        if len(grad_outputs) != len(outputs):
            raise ValueError(f"grad(): {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    if retain_graph is None:
        retain_graph = create_graph
    roots = []
    for y, gy in zip(outputs, grad_outputs):
        saved, y.grad = y.grad, gy
        try:
            seed = _seed(y)
        finally:
            y.grad = saved
        if create_graph:  # a Variable seed stays in the graph: the results depend on it (jvp)
            seed = gy if isinstance(gy, Variable) else Variable(seed)
        # an output never passed to a function has no node yet; it may also be an input
        roots.append((y.node if y.node is not None else _leaf_node(y), seed))
    targets: dict[VariableNode, list[int]] = {}
    for position, x in enumerate(inputs):
        if x.node is None:  # a Variable never used by a recorded function
            continue
        targets.setdefault(x.node, []).append(position)
    found: list[Any] = [None] * len(inputs)
    _run(roots, False, create_graph, retain_graph, targets=(targets, found))
    results = []
    given: set[int] = set()
    for x, g in zip(inputs, found):
        if g is None and materialize_grads:
            g = x.xp.zeros(x.shape, dtype=x.dtype)
        if g is not None and not isinstance(g, Variable):
            # the user may write into each result: no read-only views (the seed), no sharing
            g = Variable(_writable(backend_of(g), g, given))
        results.append(g)
    return tuple(results)


def _note_backward() -> None:
    """Tell agrad.jit's trace, if one is recording, that the function runs a backward pass."""
    trace = _active_trace.get()
    if trace is not None:
        trace.backward_calls += 1


def _as_list(values: Any, what: str) -> list[Variable]:
    values = list(values) if isinstance(values, (list, tuple)) else [values]
    for v in values:
        if not isinstance(v, Variable):
            raise TypeError(f"grad(): {what} must be Variables, not {type(v).__name__}")
    return values


def _writable(backend: Any, g: Any, given: set[int]) -> Any:
    """``g``, or a copy of it where the user could not safely write into it in place."""
    if id(g) in given or not backend.is_writable(g):
        g = backend.xp.asarray(g, copy=True)
    given.add(id(g))
    return g


def _call_hooks(node: VariableNode, variable: Variable) -> None:
    for hook in list(node.hooks.values()):
        hook(variable)


def _hooked_edges(start: list[Function]) -> dict[VariableNode, int]:
    """For each leaf with hooks, how many edges of the graph behind ``start`` lead to it."""
    counts: dict[VariableNode, int] = {}
    seen = set(start)
    pending = list(start)
    while pending:
        func = pending.pop()
        for node in func.input_nodes:
            if node is None or not node.requires_grad:
                continue
            creator = node.creator
            if creator is None:
                if node.hooks:
                    counts[node] = counts.get(node, 0) + 1
            elif creator not in seen:
                seen.add(creator)
                pending.append(creator)
    return counts


def _needed_functions(start: list[Function], targets: dict[VariableNode, list[int]]) -> set:
    """The functions behind ``start`` whose gradient leads to some target (grad's pruning)."""
    needed: set = set()
    state: dict[Function, bool] = {}  # False: inputs being visited, True: decided
    for first in start:
        stack = [first]
        while stack:
            func = stack[-1]
            if func not in state:
                state[func] = False
                for node in func.input_nodes:
                    if node is not None and node.creator is not None and node.creator not in state:
                        stack.append(node.creator)
                continue
            stack.pop()
            if state[func]:
                continue
            state[func] = True
            if any(
                node is not None
                and (node in targets or (node.creator is not None and node.creator in needed))
                for node in func.input_nodes
            ):
                needed.add(func)
    return needed


def _released_error(func: Function) -> RuntimeError:
    return RuntimeError(
        f"backward through {type(func).__name__} a second time: the arrays it kept for its "
        "gradient were released by the first backward(). Pass retain_graph=True to the first "
        "backward() (or grad()) to keep them"
    )


def _run(
    roots: list[tuple[VariableNode, Any]],
    retain_grad: bool,
    create_graph: bool,
    retain_graph: bool,
    targets: tuple[dict[VariableNode, list[int]], list[Any]] | None,
) -> None:
    """The backprop loop. ``targets``: (node -> result positions, results) for ``grad``; None
    for ``backward``, which accumulates into the leaves' ``grad`` instead."""
    graph_mode = create_graph
    start: list[Function] = []
    # the output gradients gathered for each function reached and not yet run: state of this
    # pass only, so that passes in several threads over one graph do not mix
    pending: dict[Function, list] = {}
    for node, seed in roots:
        func = node.creator
        if func is None:
            if targets is not None and node in targets[0]:
                _store_target(node, seed, targets)
            continue
        if not node.requires_grad:  # no input of `func` wants a gradient
            continue
        grads = pending.get(func)
        if grads is None:
            grads = pending[func] = [None] * len(func.outputs)
            start.append(func)
        previous = grads[node.index]
        grads[node.index] = seed if previous is None else previous + seed
    if not start:
        return
    needed = reachable = None
    if targets is not None:  # grad(): run only what leads to a target
        needed = _needed_functions(start, targets[0])
        reachable = needed | {node.creator for node in targets[0] if node.creator is not None}
    hooked = _hooked_edges(start) if RemovableHandle.active and targets is None else None
    leaf_grads: dict[VariableNode, Any] = {}
    # the gradient slots (a leaf's node, or (function, output index)) holding a sum this pass
    # allocated itself: safe to add into in place; in graph mode nothing is added in place
    owned: set | None = None if graph_mode else set()
    given: set[int] = set()  # gradient arrays handed to the user (leaves, retained grads)
    heap: list[tuple[int, int, Function]] = []
    for tick, func in enumerate(start):
        heapq.heappush(heap, (-func.generation, tick, func))
    tick = len(start)
    reached: list[Function] = []
    ops = backend = array_type = from_result = None
    rare = targets is not None or retain_grad
    anomaly = _detect_anomaly.get()
    token = _enable_backprop.set(graph_mode)
    try:
        func = heapq.heappop(heap)[2]
        while True:
            gys = pending.pop(func)
            if func.backend is not backend:
                backend = func.backend
                ops = array_ops(backend)
                array_type, from_result = ops.array_type, backend.from_result
            runs = True
            if rare:  # grad()'s targets, retain_grad
                if targets is not None:
                    _capture(func, gys, targets)
                    runs = func in needed
                if retain_grad:
                    _retain_output_grads(func, gys, graph_mode, backend, given)
            if anomaly:
                _entering_backward(func, gys)
            saved = func._saved_inputs
            saved_outputs = func._saved_outputs
            nodes = func.input_nodes
            # (a function reached here has an input that wants a gradient: the loop below
            # follows only such edges, and the roots were checked)
            if not runs:
                gxs = ()
            elif saved is None:  # (a function reached here was recorded wanting a gradient)
                raise _released_error(func)
            elif graph_mode or len(gys) != 1:
                gxs = _input_grads(func, gys, graph_mode, ops)
            elif gys[0] is None:
                gxs = ()
            else:  # the common case, inlined: a vjp on arrays, one output (a DeZero-style
                # function's vjp runs its backward)
                if saved is _KEPT_NOTHING:
                    xs = nodes
                elif type(saved) is not tuple:  # one input, kept alone
                    xs = (saved,)
                else:
                    xs = tuple([n if a is None else a for n, a in zip(nodes, saved)])
                if saved_outputs is _KEPT_NOTHING:
                    ys = (None,)
                else:
                    ys = saved_outputs if type(saved_outputs) is tuple else (saved_outputs,)
                try:
                    gxs = func.vjp(ops, xs, ys, gys)
                except Exception as error:
                    gxs = _vjp_again(func, ops, xs, ys, gys, False, error)
                if type(gxs) is array_type:  # one input's gradient: the usual case
                    gxs = (gxs,)
                    if len(nodes) != 1:
                        raise _count_error(func, gxs)
                else:
                    if type(gxs) is not tuple:  # a list, or one gradient of another type
                        gxs = tuple(gxs) if isinstance(gxs, (list, tuple)) else (gxs,)
                    if len(gxs) != len(nodes):
                        raise _count_error(func, gxs)
            if anomaly:
                _check_backward(func, gys, gxs)
            for node, gx in zip(nodes, gxs):
                if gx is None or node is None or not node.requires_grad:
                    continue
                if graph_mode:
                    if gx.shape != node.shape:
                        raise _shape_error(func, gx, node)
                    if gx.dtype != node.dtype:
                        gx = _cast_grad(gx, node.dtype, backend, _functions.astype)
                else:
                    if type(gx) is not array_type:
                        gx = from_result(gx)
                    if gx.shape != node.shape:
                        raise _shape_error(func, gx, node)
                    dtype = node.dtype
                    if gx.dtype is not dtype and gx.dtype != dtype:
                        gx = _cast_grad(gx, dtype, backend, ops.xp.astype)
                creator = node.creator
                if creator is None:
                    previous = leaf_grads.get(node)
                    leaf_grads[node] = (
                        gx if previous is None else _add(previous, gx, ops, owned, node)
                    )
                    continue
                grads = pending.get(creator)
                if grads is None:  # the first gradient to reach `creator` in this pass
                    if reachable is not None and creator not in reachable:
                        continue  # grad(): it never runs, so it must not keep a gradient
                    # (a function runs after all its consumers, so its gradients gather only
                    # while it waits: it cannot be reached again once it ran)
                    reached.append(creator)
                    n_outputs = len(creator.outputs)
                    if n_outputs == 1:
                        pending[creator] = [gx]
                    else:
                        grads = pending[creator] = [None] * n_outputs
                        grads[node.index] = gx
                    continue
                index = node.index
                previous = grads[index]
                grads[index] = (
                    gx if previous is None else _add(previous, gx, ops, owned, (creator, index))
                )
            if not retain_graph and runs:  # Function.release(), inlined for the common case
                if func.retain_attributes:
                    func.release()
                elif saved is not _KEPT_NOTHING or saved_outputs is not _KEPT_NOTHING:
                    # (one that kept nothing is left usable)
                    func._saved_inputs = func._saved_outputs = None
            if hooked:
                _finish_hooked_leaves(func, hooked, leaf_grads, graph_mode, given)
            if reached:
                if len(reached) == 1 and not heap:  # a chain: no need for the heap
                    func = reached.pop()
                    continue
                for f in reached:
                    heapq.heappush(heap, (-f.generation, tick, f))
                    tick += 1
                reached.clear()
            if not heap:
                break
            func = heapq.heappop(heap)[2]
    finally:
        _enable_backprop.reset(token)
        if anomaly:
            _entering_backward(None, ())
    if targets is not None:
        for node, g in leaf_grads.items():
            _store_target(node, g, targets)
        return
    _assign_leaves(leaf_grads.items(), graph_mode, given)


def _input_grads(func: Function, gys: list, graph_mode: bool, ops: Any) -> tuple:
    """One gradient per input of ``func`` (None where none), from its output gradients.

    The general case: graph mode, DeZero-style rules, several outputs. The loop in ``_run``
    inlines the common one (a vjp on arrays, one output).
    """
    if all(gy is None for gy in gys):
        return ()
    if func._vjp_based:
        if graph_mode:
            xs, ys = func._graph_inputs(), func._graph_outputs()
        else:
            saved = _kept(func._saved_inputs)
            nodes = func.input_nodes
            if not saved:
                xs = nodes
            elif len(saved) == 1:  # one input, retained
                xs = saved
            else:
                xs = tuple([n if s is None else s for n, s in zip(nodes, saved)])
            ys = _kept(func._saved_outputs)
            if not ys:
                ys = (None,) * len(gys)
        d = _functions if graph_mode else ops
        try:
            gxs = func.vjp(d, xs, ys, tuple(gys))
        except Exception as error:
            gxs = _vjp_again(func, d, xs, ys, tuple(gys), graph_mode, error)
        if not isinstance(gxs, tuple):
            gxs = tuple(gxs) if isinstance(gxs, list) else (gxs,)
    else:
        gxs = _dezero_rule(func, gys, graph_mode)  # (a tuple already)
    if len(gxs) != len(func.input_nodes):
        raise _count_error(func, gxs)
    return gxs


def _vjp_again(
    func: Function, d: Any, xs: tuple, ys: tuple, gys: Any, graph_mode: bool, error: Exception
) -> Any:
    """After ``func.vjp`` raised ``error``: its result with integer inputs and outputs made
    floating point, where a library refuses to mix integers and floats (array-api-strict
    computing ``int_input * float_gradient``); else the error, explained if it can be.

    Only the error path pays: libraries that promote never get here for integers.
    """
    if not func._vjp_based:  # a DeZero-style backward's own error, as it raised it
        raise error
    if isinstance(error, TypeError):
        backend = func.backend
        changed = False

        def floating(values: tuple) -> tuple:
            nonlocal changed
            out = []
            for v in values:
                dtype = getattr(v, "dtype", None)
                if (
                    dtype is not None
                    and not isinstance(v, VariableNode)
                    and not is_differentiable_dtype(dtype)
                    and _gets_grad(dtype)
                ):
                    target = _grad_dtype(dtype, backend)
                    v = _functions.astype(v, target) if graph_mode else backend.xp.astype(v, target)
                    changed = True
                out.append(v)
            return tuple(out)

        xs, ys = floating(xs), floating(ys)
        if changed:
            return func.vjp(d, xs, ys, gys)
    _explain_vjp_error(func, xs, ys, gys, error)
    raise error


def _explain_vjp_error(func: Function, xs: tuple, ys: tuple, gys: Any, error: Exception) -> None:
    """Raise an error naming what ``func`` did not retain, if that is why its vjp failed.

    A vjp gets a :class:`VariableNode` for an input and None for an output that the function did
    not retain; computing with either fails with a message about operand types that names
    neither the function nor the declaration to fix. Only the error path pays for this.
    """
    name = type(func).__name__
    message = str(error)
    read: list[int] = []
    if isinstance(error, _UnretainedReadError):
        read = [i for i, x in enumerate(xs) if x is error.node]
    if not read and "VariableNode" in message:
        read = [i for i, x in enumerate(xs) if isinstance(x, VariableNode)]
    if read:
        kept = [i for i, x in enumerate(xs) if not isinstance(x, VariableNode)]
        which = ", ".join(str(i) for i in read)
        raise TypeError(
            f"{name}.vjp read input {which}, which {name} did not retain "
            f"(retain_inputs = {func.retain_inputs!r}): a vjp gets a VariableNode (shape and "
            f"dtype only) for an input that is not retained. Declare every input the vjp reads: "
            f"retain_inputs = {tuple(sorted(set(kept) | set(read)))!r} on the class, or set "
            f"self.retain_inputs in forward (None keeps all). Original error: {message}"
        ) from error
    missing = [i for i, y in enumerate(ys) if y is None]
    if missing and ("NoneType" in message or " is None" in message):
        which = ", ".join(str(i) for i in missing)
        also = [i for i, g in enumerate(gys) if g is None]
        hint = (
            f"; or it used gys[{', '.join(str(i) for i in also)}], None because that output "
            "received no gradient"
            if also
            else ""
        )
        raise TypeError(
            f"{name}.vjp got None for output {which}, which {name} did not retain "
            f"(retain_outputs = {func.retain_outputs!r}): declare the outputs the vjp reads, "
            f"e.g. retain_outputs = {tuple(missing)!r} on the class (None keeps all){hint}. "
            f"Original error: {message}"
        ) from error


def _cast_grad(gx: Any, dtype: Any, backend: Any, astype: Any) -> Any:
    """``gx`` in the gradient dtype of a variable of ``dtype``: ``dtype`` itself where
    floating, the backend's default float for an integer variable (never truncated)."""
    target = _grad_dtype(dtype, backend)
    return gx if gx.dtype == target else astype(gx, target)


def _count_error(func: Function, gxs: tuple) -> RuntimeError:
    return RuntimeError(
        f"{type(func).__name__}: backward returned {len(gxs)} gradients for "
        f"{len(func.input_nodes)} inputs"
    )


def _add(previous: Any, gx: Any, ops: Any, owned: set | None, slot: Any) -> Any:
    """``previous + gx`` for gradient ``slot``: in place into a sum of more than one element
    that this pass made itself, a new array otherwise (the first gradient may be shared with
    other slots, and a one-element array has no memory to save)."""
    if owned is None:
        return previous + gx
    if slot in owned:
        previous += gx
        return previous
    total = previous + gx
    if type(total) is not ops.array_type:
        total = ops.backend.from_result(total)
    if total.size != 1:  # NumPy adds into one element in place at twice the cost of a new array
        owned.add(slot)
    return total


def _shape_error(func: Function, gx: Any, node: VariableNode) -> RuntimeError:
    return RuntimeError(
        f"{type(func).__name__}: gradient of shape {tuple(gx.shape)} for an input of shape "
        f"{tuple(node.shape)}"
    )


def _retain_output_grads(
    func: Function, gys: list, graph_mode: bool, backend: Any, given: set[int]
) -> None:
    for ref, gy in zip(func.outputs, gys):
        y = ref()
        if y is not None and gy is not None:
            y.grad = gy if graph_mode else Variable(_writable(backend, gy, given))


def _assign_leaves(
    leaf_grads: Iterable[tuple[VariableNode, Any]], graph_mode: bool, given: set[int]
) -> None:
    """Accumulate each gradient into the ``grad`` of its leaf Variable (those alive), then call
    those leaves' hooks."""
    hooked = []
    with _leaf_lock:  # backward passes in other threads may add into the same leaves
        for node, g in leaf_grads:
            v = node.ref() if node.ref is not None else None
            if v is None:
                continue
            previous = v.grad
            if graph_mode:
                v.grad = g if previous is None else previous + g
            elif previous is None:
                backend = backend_for_type(type(g)) or backend_of(g)
                v.grad = _wrap(_writable(backend, g, given))
            else:  # out of place, as DeZero
                data = previous.data
                backend = previous.backend
                traced = backend_for_type(type(g))
                # (`traced` first: asking a real backend for `real` raises and catches inside)
                if traced is not None and traced.traced and traced.real is backend:
                    # under agrad.jit: a gradient set before the traced backward, an array of
                    # the real library, is a constant of the program
                    data, backend = traced.xp.asarray(data), traced
                v.grad = _wrap(backend.from_result(data + g))
            if node.hooks:
                hooked.append((node, v))
    for node, v in hooked:
        _call_hooks(node, v)


def _finish_hooked_leaves(
    func: Function,
    hooked: dict[VariableNode, int],
    leaf_grads: dict[VariableNode, Any],
    graph_mode: bool,
    given: set[int],
) -> None:
    """Give each hooked leaf whose last consumer just ran its gradient now, and call its hooks."""
    for node in func.input_nodes:
        count = hooked.get(node)
        if count is None:
            continue
        if count > 1:
            hooked[node] = count - 1
            continue
        del hooked[node]
        g = leaf_grads.pop(node, None)
        if g is not None:
            _assign_leaves(((node, g),), graph_mode, given)


def _capture(func: Function, gys: list, targets: tuple) -> None:
    """For ``grad``: record the gradients of the outputs of ``func`` that are targets."""
    wanted, found = targets
    for node in wanted:
        if node.creator is func and gys[node.index] is not None:
            for position in wanted[node]:
                found[position] = gys[node.index]


def _store_target(node: VariableNode, g: Any, targets: tuple) -> None:
    """For ``grad``: add ``g`` to the result of the leaf ``node``, which may already hold a
    gradient (an output that is also an input is its own seed)."""
    wanted, found = targets
    for position in wanted.get(node, ()):
        previous = found[position]
        if previous is None:
            found[position] = g
        elif isinstance(g, Variable) or isinstance(previous, Variable):
            found[position] = previous + g
        else:  # NumPy gives a scalar for the sum of 0-d arrays
            found[position] = backend_of(g).from_result(previous + g)
