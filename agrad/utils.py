"""Utilities: numerical gradient checks, array helpers, and graph export (DeZero's ``utils``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any, Literal

from agrad.backends import backend_of
from agrad.backends.numpy import host
from agrad.core import Variable, _leaf_node, as_variable
from agrad.ops import array_ops

__all__ = [
    "GraphvizMissingWarning",
    "array_allclose",
    "array_equal",
    "conv_pair",
    "get_conv_outsize",
    "get_deconv_outsize",
    "get_dot_graph",
    "gradient_check",
    "logsumexp",
    "max_backward_shape",
    "numerical_grad",
    "pair",
    "plot_dot_graph",
    "reshape_sum_backward",
    "sum_to",
]


def _data(x: Any) -> Any:
    return x.data if isinstance(x, Variable) else x


def _total(y: Any, xp: Any) -> Any:
    """Sum of every element of every output of ``f`` (outputs may be a Variable, array or list)."""
    outputs = y if isinstance(y, (list, tuple)) else [y]
    return sum(float(xp.sum(_data(o))) for o in outputs)


def numerical_grad(f: Callable, x: Any, *args: Any, eps: float = 1e-4, **kwargs: Any) -> Any:
    """``d sum(f(x, *args)) / dx`` by central differences, in float64, on ``x``'s own backend.

    ``x`` (a Variable or an array) is never written to.

    Parameters
    ----------
    f : callable
        Called as ``f(Variable, *args, **kwargs)``; may return a Variable, an array or a list of
        them (their elements are all summed).
    x : Variable or array
        The point; the derivative is taken with respect to each of its elements.
    *args, **kwargs
        Passed on to ``f``.
    eps : float, default 1e-4
        The step of the central difference.

    Returns
    -------
    array
        A float64 array of ``x``'s shape, on ``x``'s backend.

    Examples
    --------
    >>> import agrad
    >>> from agrad.utils import numerical_grad
    >>> x = agrad.current_backend().asarray([1.0, 2.0])
    >>> g = numerical_grad(lambda v: v * v, x)
    >>> [round(v, 6) for v in agrad.cuda.as_numpy(g).tolist()]
    [2.0, 4.0]
    """
    data = _data(x)
    xp = backend_of(data).xp
    base = xp.astype(data, xp.float64)
    flat = xp.reshape(base, (-1,))
    positions = xp.arange(flat.shape[0])
    values = []
    for i in range(flat.shape[0]):
        step = xp.reshape(xp.astype(positions == i, xp.float64) * eps, base.shape)
        plus = _total(f(Variable(xp.asarray(base + step)), *args, **kwargs), xp)
        minus = _total(f(Variable(xp.asarray(base - step)), *args, **kwargs), xp)
        values.append((plus - minus) / (2 * eps))
    return xp.reshape(xp.asarray(values, dtype=xp.float64), base.shape)


def gradient_check(
    f: Callable,
    x: Any,
    *args: Any,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    directions: int | Literal["auto"] | None = "auto",
    **kwargs: Any,
) -> bool:
    """Compare backprop with ``numerical_grad`` in float64; ``AssertionError`` with details.

    ``x`` is converted to float64, ``f`` is run and differentiated by ``backward()`` (several
    outputs are summed), and the gradient is compared with central differences: one pair of
    evaluations of ``f`` per element of ``x``, or, with ``directions=k``, one pair per random
    direction ``u``, comparing ``sum(grad * u)`` with the central difference of ``f`` along ``u``
    (PyTorch's ``gradcheck(fast_mode=True)`` idea: a wrong element changes every projection).

    Parameters
    ----------
    f : callable
        The function under test, called as ``f(Variable, *args, **kwargs)``.
    x : Variable or array
        The point at which to compare; it is not modified.
    *args, **kwargs
        Passed on to ``f`` (constants: their gradients are not checked).
    rtol, atol : float
        Tolerances, as in ``numpy.allclose(backprop, numerical, rtol, atol)``; along a direction
        ``u`` the tolerance is their bound on the projection, ``sum((atol + rtol*|grad|)*|u|)``.
    directions : int, None or "auto"
        None: every element in turn (the error is located to one element). ``k``: ``k`` random
        directions, ``2k`` evaluations of ``f`` whatever ``x``'s size. "auto" (the default):
        None, except where each operation is slow to dispatch (``Backend.slow_dispatch``: Dask
        builds and runs a task graph, JAX dispatches through XLA): 3.

    Returns
    -------
    bool
        True when the gradients agree.

    Raises
    ------
    AssertionError
        When they do not (the message gives the largest absolute and relative errors and the
        worst element), when backward gives ``x`` no gradient, or when the gradient's shape is
        not ``x``'s.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad.utils import gradient_check
    >>> x = agrad.current_backend().asarray([[0.5, -1.0], [2.0, 0.1]])
    >>> gradient_check(F.tanh, x)
    True
    >>> gradient_check(lambda v: F.sum(v, axis=0), x)
    True
    >>> gradient_check(F.tanh, x, directions=2)  # along 2 random directions: 4 evaluations
    True
    """
    data = _data(x)
    xp = backend_of(data).xp
    x64 = Variable(xp.astype(data, xp.float64))
    y = f(x64, *args, **kwargs)
    outputs = y if isinstance(y, (list, tuple)) else [y]
    total = outputs[0] if len(outputs) == 1 else sum(o.sum() for o in outputs)
    total.backward()
    if x64.grad is None:
        raise AssertionError(f"gradient_check({_name(f)}): backward gave the input no gradient")
    backprop = host.asarray(backend_of(x64.grad.data).to_host(x64.grad.data))
    if backprop.shape != tuple(data.shape):
        raise AssertionError(
            f"gradient_check({_name(f)}): gradient shape {backprop.shape} != input shape "
            f"{tuple(data.shape)}"
        )
    if directions == "auto":
        directions = 3 if backend_of(data).slow_dispatch else None
    if directions is not None:
        return _check_directions(f, x64.data, backprop, directions, rtol, atol, args, kwargs)
    numeric = host.asarray(backend_of(data).to_host(numerical_grad(f, x64.data, *args, **kwargs)))
    if host.allclose(backprop, numeric, rtol=rtol, atol=atol):
        return True
    error = host.abs(backprop - numeric)
    where = host.unravel_index(
        int(host.argmax(error - atol - rtol * host.abs(numeric))), error.shape
    )
    relative = error / host.maximum(host.abs(numeric), 1e-300)
    raise AssertionError(
        f"gradient_check({_name(f)}): backprop and numerical gradients differ for the input of "
        f"shape {tuple(data.shape)} dtype {data.dtype}: largest absolute error "
        f"{error.max():.3g}, largest relative error {relative.max():.3g}; worst at index "
        f"{tuple(int(i) for i in where)}: backprop {backprop[where]!r} vs numerical "
        f"{numeric[where]!r} (rtol={rtol}, atol={atol})"
    )


def _check_directions(
    f: Callable,
    x: Any,
    backprop: Any,
    directions: int,
    rtol: float,
    atol: float,
    args: tuple,
    kwargs: dict,
    eps: float = 1e-4,
) -> bool:
    """``gradient_check`` along ``directions`` random directions (``x`` is float64)."""
    if directions < 1:
        raise ValueError(
            f"gradient_check: directions must be None, 'auto' or >= 1, got {directions!r}"
        )
    backend = backend_of(x)
    draw = host.random.default_rng(0)  # reproducible: a failure can be rerun as it was
    for k in range(directions):
        u = draw.standard_normal(backprop.shape)
        step = backend.asarray(u * eps)  # float64, as x
        plus = _total(f(Variable(x + step), *args, **kwargs), backend.xp)
        minus = _total(f(Variable(x - step), *args, **kwargs), backend.xp)
        numeric = (plus - minus) / (2 * eps)
        projected = float(host.sum(backprop * u))
        tolerance = float(host.sum((atol + rtol * host.abs(backprop)) * host.abs(u)))
        if not abs(projected - numeric) <= tolerance:  # NaN fails too
            raise AssertionError(
                f"gradient_check({_name(f)}): backprop and numerical gradients differ for the "
                f"input of shape {tuple(x.shape)} along random direction {k + 1} of "
                f"{directions}: backprop {projected!r} vs numerical {numeric!r} (tolerance "
                f"{tolerance:.3g} from rtol={rtol}, atol={atol}); run with directions=None to "
                "find the element"
            )
    return True


def _name(f: Callable) -> str:
    return getattr(f, "__qualname__", None) or type(f).__name__


def array_equal(a: Any, b: Any) -> bool:
    """Whether two arrays/Variables (any backend) hold equal values.

    Parameters
    ----------
    a, b : Variable, array or number
        Compared on the host with ``numpy.array_equal``; they may live on different backends.

    Returns
    -------
    bool
        True when shapes and values are equal.

    Examples
    --------
    >>> import agrad
    >>> from agrad.utils import array_equal
    >>> x = agrad.Variable(agrad.current_backend().asarray([1.0, 2.0]))
    >>> array_equal(x, agrad.get_backend("numpy").asarray([1.0, 2.0]))
    True
    >>> array_equal(x, x.data + 1)
    False
    """
    return bool(host.array_equal(_to_host(a), _to_host(b)))


def array_allclose(a: Any, b: Any, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Whether two arrays/Variables (any backend) are close, NumPy's ``allclose`` on the host.

    Parameters
    ----------
    a, b : Variable, array or number
        The values to compare; they may live on different backends.
    rtol : float, default 1e-4
        Relative tolerance.
    atol : float, default 1e-5
        Absolute tolerance.

    Returns
    -------
    bool
        ``all(abs(a - b) <= atol + rtol * abs(b))``.

    Examples
    --------
    >>> import agrad
    >>> from agrad.utils import array_allclose
    >>> x = agrad.current_backend().asarray([1.0, 2.0])
    >>> array_allclose(x, x + 1e-6), array_allclose(x, x + 1e-2)
    (True, False)
    """
    return bool(host.allclose(_to_host(a), _to_host(b), rtol=rtol, atol=atol))


def _to_host(x: Any) -> Any:
    x = _data(x)
    backend = backend_of(x, None)
    return host.asarray(x) if backend is None else backend.to_host(x)


def sum_to(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum array ``x`` over leading and size-1 axes so that it takes ``shape``.

    The inverse of broadcasting, for gradients: the gradient of a broadcast input is the output
    gradient summed to the input's shape.

    Parameters
    ----------
    x : array
        An array of any backend.
    shape : tuple of int
        A shape that broadcasts to ``x.shape``.

    Returns
    -------
    array
        An array of ``shape`` on ``x``'s backend.

    Examples
    --------
    >>> import agrad
    >>> from agrad.utils import sum_to
    >>> xp = agrad.current_backend().xp
    >>> y = sum_to(xp.ones((2, 3)), (1, 3))
    >>> y.shape, agrad.cuda.as_numpy(y).tolist()
    ((1, 3), [[2.0, 2.0, 2.0]])
    """
    return array_ops(backend_of(x)).sum_to(x, shape)


def logsumexp(x: Any, axis: int = 1) -> Any:
    """log(sum(exp(x), axis, keepdims=True)), shifted by the max so it never overflows.

    Parameters
    ----------
    x : array
        An array of any backend (not a Variable: this is not differentiable).
    axis : int, default 1
        The axis to reduce; it is kept with size 1.

    Returns
    -------
    array
        On ``x``'s backend.

    Examples
    --------
    >>> import agrad
    >>> from agrad.utils import logsumexp
    >>> x = agrad.current_backend().asarray([[0.0, 0.0], [1000.0, 1000.0]])
    >>> [[round(v, 4)] for (v,) in agrad.cuda.as_numpy(logsumexp(x)).tolist()]
    [[0.6931], [1000.6931]]
    """
    xp = backend_of(x).xp
    m = xp.max(x, axis=axis, keepdims=True)
    return m + xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True))


def reshape_sum_backward(gy: Any, x_shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """Reshape a gradient of ``sum(x, axis)`` so that it broadcasts against ``x``.

    Parameters
    ----------
    gy : Variable or array
        The gradient of the sum's output.
    x_shape : tuple of int
        The shape of the sum's input.
    axis : int, tuple of int or None
        The axes that were summed (None: all).
    keepdims : bool
        Whether the sum kept them; then ``gy`` is returned as it is.

    Returns
    -------
    Variable or array
        ``gy`` with the summed axes put back with size 1.

    Examples
    --------
    >>> import agrad
    >>> from agrad.utils import reshape_sum_backward
    >>> gy = agrad.current_backend().asarray([1.0, 2.0])
    >>> reshape_sum_backward(gy, (2, 3), axis=1, keepdims=False).shape
    (2, 1)
    """
    from agrad.functions.reduction import _keepdims_shape

    if keepdims or (axis is None and len(x_shape) == 0):
        return gy
    shape = _keepdims_shape(tuple(x_shape), axis)
    if isinstance(gy, Variable):
        return gy.reshape(shape)
    return array_ops(backend_of(gy)).reshape(gy, shape)


def max_backward_shape(x: Any, axis: Any) -> list[int]:
    """Shape of ``x`` with the reduced ``axis`` (int, tuple or None = all) set to 1 (DeZero).

    Parameters
    ----------
    x : Variable or array
        The input of a max/min reduction.
    axis : int, tuple of int or None
        The reduced axes.

    Returns
    -------
    list of int
        The shape the reduction's output and gradient take to broadcast against ``x``.

    Examples
    --------
    >>> import agrad
    >>> from agrad.utils import max_backward_shape
    >>> x = agrad.current_backend().xp.ones((2, 3, 4))
    >>> max_backward_shape(x, 1), max_backward_shape(x, None)
    ([2, 1, 4], [1, 1, 1])
    """
    from agrad.functions.reduction import _keepdims_shape

    return list(_keepdims_shape(tuple(x.shape), axis))


def get_conv_outsize(input_size: int, kernel_size: int, stride: int, pad: int) -> int:
    """Output length of a convolution along one axis.

    Parameters
    ----------
    input_size, kernel_size, stride, pad : int
        The input's length, the kernel's, the step between windows and the zeros added on
        each side (DeZero's names).

    Returns
    -------
    int
        ``(input_size + 2 * pad - kernel_size) // stride + 1``.

    Examples
    --------
    >>> from agrad.utils import get_conv_outsize
    >>> get_conv_outsize(32, 3, 1, 1), get_conv_outsize(32, 2, 2, 0)
    (32, 16)
    """
    return (input_size + pad * 2 - kernel_size) // stride + 1


def get_deconv_outsize(size: int, k: int, s: int, p: int) -> int:
    """Output length of a transposed convolution along one axis.

    Parameters
    ----------
    size, k, s, p : int
        The input's length, the kernel's, the stride and the padding (DeZero's names).

    Returns
    -------
    int
        ``s * (size - 1) + k - 2 * p``: the length a convolution with the same geometry maps
        back to ``size``.

    Examples
    --------
    >>> from agrad.utils import get_conv_outsize, get_deconv_outsize
    >>> get_deconv_outsize(16, 2, 2, 0), get_conv_outsize(32, 2, 2, 0)
    (32, 16)
    """
    return s * (size - 1) + k - 2 * p


def pair(x: Any) -> tuple[int, int]:
    """``(x, x)`` for an int, ``x`` for a 2-tuple; ``ValueError`` otherwise.

    Parameters
    ----------
    x : int or tuple of two ints
        A size given for both spatial axes, or one per axis.

    Returns
    -------
    tuple of int
        ``(height, width)``.

    Raises
    ------
    ValueError
        If ``x`` is neither an int nor a 2-tuple.

    Examples
    --------
    >>> from agrad.utils import pair
    >>> pair(3), pair((1, 2))
    ((3, 3), (1, 2))
    >>> pair((1, 2, 3))
    Traceback (most recent call last):
      ...
    ValueError: pair: expected an int or a 2-tuple, got a 3-tuple (1, 2, 3)
    """
    if isinstance(x, int):
        return (x, x)
    if isinstance(x, tuple):
        if len(x) != 2:
            raise ValueError(f"pair: expected an int or a 2-tuple, got a {len(x)}-tuple {x!r}")
        return x
    raise ValueError(f"pair: expected an int or a 2-tuple, got {type(x).__name__} {x!r}")


def conv_pair(value: Any, argument: str, minimum: int, owner: str) -> tuple[int, int]:
    """``pair(value)`` checked as convolution geometry: two ints ``>= minimum``.

    ``ValueError`` naming ``owner``'s ``argument``, the value and what is allowed otherwise
    (``stride=0`` would divide by zero, a negative ``pad`` would crop silently).

    Examples
    --------
    >>> from agrad.utils import conv_pair
    >>> conv_pair(2, "stride", 1, "conv2d"), conv_pair((1, 0), "pad", 0, "conv2d")
    ((2, 2), (1, 0))
    >>> conv_pair(0, "stride", 1, "conv2d")
    Traceback (most recent call last):
      ...
    ValueError: conv2d: stride must be an int >= 1 or a pair (a 2-tuple) of them, got 0
    """
    items = value if isinstance(value, tuple) and len(value) == 2 else (value,)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in items):
        raise ValueError(
            f"{owner}: {argument} must be an int >= {minimum} or a pair (a 2-tuple) of them, "
            f"got {value!r}"
        )
    return (items[0], items[0]) if len(items) == 1 else (items[0], items[1])


# -- graph export (Graphviz DOT) --------------------------------------------------------------
class GraphvizMissingWarning(UserWarning):
    """``plot_dot_graph`` found no Graphviz ``dot`` program: it wrote the DOT file only.

    It is given once per process; silence it with
    ``warnings.simplefilter("ignore", agrad.utils.GraphvizMissingWarning)``.
    """


_graphviz_warned = False  # the missing-Graphviz hint is given once per process


def _dot_text(text: str) -> str:
    """``text`` as the inside of a double-quoted DOT string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _dot_variable(node: Any, verbose: bool) -> str:
    v = node.variable
    label = (v.name if v is not None else None) or ""
    if verbose:
        dtype = str(node.dtype).rsplit(".", 1)[-1]  # 'float32' from any backend's dtype
        details = f"{tuple(node.shape)} {dtype}"
        label = f"{label}: {details}" if label else details
    return f'{id(node)} [label="{_dot_text(label)}", color=orange, style=filled]\n'


def _dot_function(f: Any) -> str:
    name = _dot_text(type(f).__name__)
    return f'{id(f)} [label="{name}", color=lightblue, style=filled, shape=box]\n'


def get_dot_graph(output: Any, verbose: bool = True) -> str:
    """Graphviz DOT text (``digraph g {...}``) of the graph that computed ``output``.

    Variables are orange ellipses labelled with their name (and, when ``verbose``, shape and
    dtype); functions are light-blue boxes with their class name; edges run input -> function ->
    output. ``output`` may also be a list of Variables. The graph is drawn from its nodes, so it
    is whole after ``backward()`` released the arrays, and it includes intermediate results the
    user no longer holds.

    Parameters
    ----------
    output : Variable or list of Variable
        Where to start; the graph is followed back to the leaves.
    verbose : bool, default True
        Add each variable's shape and dtype to its label.

    Returns
    -------
    str
        The DOT text; node names are the ``id`` of functions and of variables' graph nodes.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> from agrad.utils import get_dot_graph
    >>> x = agrad.Variable(agrad.current_backend().asarray([1.0, 2.0]), name="x")
    >>> y = F.sum(x * x)
    >>> y.name = "y"
    >>> text = get_dot_graph(y)
    >>> print(text.splitlines()[1].split(" ", 1)[1])
    [label="y: () float64", color=orange, style=filled]
    >>> [line.split('"')[1] for line in text.splitlines() if "shape=box" in line]
    ['Sum', 'Mul']
    """
    outputs = list(output) if isinstance(output, (list, tuple)) else [output]
    parts: list[str] = []
    declared: set[int] = set()
    edges: set[tuple[int, int]] = set()
    pending: list[Any] = []
    queued: set[int] = set()

    def declare(node: Any) -> None:
        if id(node) not in declared:
            declared.add(id(node))
            parts.append(_dot_variable(node, verbose))

    def edge(a: Any, b: Any) -> None:
        if (id(a), id(b)) not in edges:
            edges.add((id(a), id(b)))
            parts.append(f"{id(a)} -> {id(b)}\n")

    def queue(f: Any) -> None:
        if f is not None and id(f) not in queued:
            queued.add(id(f))
            pending.append(f)

    for y in outputs:
        y = as_variable(y)
        node = y.node
        if node is None:
            if y.data is not None:
                parts.append(_dot_variable(_leaf_node(y), verbose))
            continue
        declare(node)
        if node.creator is not None:
            edge(node.creator, node)
        queue(node.creator)
    while pending:
        f = pending.pop()
        parts.append(_dot_function(f))
        for x in f.input_nodes:
            if x is None:
                continue
            declare(x)
            edge(x, f)
            if x.creator is not None:
                edge(x.creator, x)
            queue(x.creator)
        for ref in f.outputs:
            y = ref()
            if y is not None and y.node is not None and y.node.creator is f:
                declare(y.node)
                edge(f, y.node)
    return "digraph g {\n" + "".join(parts) + "}"


def plot_dot_graph(output: Any, verbose: bool = True, to_file: str = "graph.png") -> Any:
    """Draw the graph behind ``output`` into ``to_file`` with Graphviz's ``dot`` program.

    The DOT text is written next to it (``graph.png`` -> ``graph.dot``); the image format is
    ``to_file``'s extension. Without Graphviz, only the DOT file is written and a
    ``GraphvizMissingWarning`` (once per process) says how to install it. Returns an IPython
    ``Image`` when running under IPython, else None.

    Parameters
    ----------
    output : Variable or list of Variable
        The graph behind it is drawn.
    verbose : bool, default True
        Add each variable's shape and dtype to its label.
    to_file : str or os.PathLike, default "graph.png"
        The image to write (folders are created); a ``.dot`` extension writes only the DOT text.

    Returns
    -------
    IPython.display.Image or None
        The image under IPython (to show it in a notebook), else None.

    Raises
    ------
    RuntimeError
        If Graphviz's ``dot`` program exits with an error (its message is included).

    Warns
    -----
    GraphvizMissingWarning
        When ``dot`` is not on ``PATH`` (once per process).

    Examples
    --------
    >>> import agrad
    >>> from pathlib import Path
    >>> from agrad.utils import plot_dot_graph
    >>> x = agrad.Variable(agrad.as_array(2.0))
    >>> plot_dot_graph(x * x, to_file="graphs/square.dot")
    >>> Path("graphs/square.dot").read_text().count("shape=box")
    1
    """
    to_file = os.fspath(to_file)
    stem, extension = os.path.splitext(to_file)
    folder = os.path.dirname(os.path.abspath(to_file))
    os.makedirs(folder, exist_ok=True)
    dot_path = stem + ".dot"
    with open(dot_path, "w", encoding="utf-8") as file:
        file.write(get_dot_graph(output, verbose))
    if extension.lower() == ".dot":
        return None
    program = shutil.which("dot")
    if program is None:
        _warn_graphviz_missing(dot_path, to_file)
        return None
    fmt = extension[1:] or "png"
    done = subprocess.run(
        [program, dot_path, "-T", fmt, "-o", to_file], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"plot_dot_graph: {program} -T {fmt} failed (exit status {done.returncode}): "
            f"{done.stderr.strip()}"
        )
    if "IPython" in sys.modules:  # a notebook shows the returned image inline
        try:
            from IPython.display import Image

            return Image(filename=to_file)
        except Exception:  # an IPython without display support: the file is still there
            return None
    return None


def _warn_graphviz_missing(dot_path: str, to_file: str) -> None:
    global _graphviz_warned
    if _graphviz_warned:
        return
    _graphviz_warned = True
    warnings.warn(
        f"plot_dot_graph: Graphviz's `dot` program is not on PATH, so {to_file} was not drawn; "
        f"the graph is in {dot_path}. Install Graphviz (apt-get install graphviz, "
        "brew install graphviz, conda install graphviz, or https://graphviz.org/download/) "
        f"to get images, or draw it yourself: dot {dot_path} -T png -o {to_file}",
        GraphvizMissingWarning,
        stacklevel=3,
    )
