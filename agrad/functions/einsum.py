"""Einstein summation, differentiable to any order (each gradient is an einsum itself)."""

from __future__ import annotations

from typing import Any

from agrad import ops
from agrad.backends import backend_of
from agrad.core import Function, Variable, as_variable

__all__ = ["Einsum", "einsum"]


def _parse(subscripts: str, n_operands: int) -> tuple[list[str], str]:
    """The input terms and the output term of ``subscripts``, checked."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a str such as 'ij,jk->ik', not {subscripts!r}")
    spec = subscripts.replace(" ", "")
    if "..." in spec or "." in spec:
        raise ValueError(
            f"einsum: subscripts={subscripts!r} uses '...', which agrad's einsum does not support "
            "(name every axis with a letter)"
        )
    lhs, arrow, out = spec.partition("->")
    terms = lhs.split(",")
    for term in [*terms, out]:
        if not all(c.isalpha() and c.isascii() for c in term):
            raise ValueError(
                f"einsum: subscripts={subscripts!r} may hold only letters, ',' and '->'"
            )
    if len(terms) != n_operands:
        raise ValueError(
            f"einsum: subscripts={subscripts!r} names {len(terms)} operand"
            f"{'' if len(terms) == 1 else 's'}, but {n_operands} were given"
        )
    for term in terms:
        if len(set(term)) != len(term):
            raise ValueError(
                f"einsum: subscripts={subscripts!r} repeats an index within the operand "
                f"{term!r} (a diagonal or trace), which agrad's einsum does not support"
            )
    letters = "".join(terms)
    if not arrow:  # implicit output: the indices that appear once, in alphabetical order
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    if len(set(out)) != len(out):
        raise ValueError(f"einsum: subscripts={subscripts!r} repeats an index in the output")
    missing = [c for c in out if c not in letters]
    if missing:
        raise ValueError(
            f"einsum: subscripts={subscripts!r} has output index {missing[0]!r} that no operand has"
        )
    return terms, out


def _namespace_einsum(xp: Any, subscripts: str, *operands: Any) -> Any:
    function = getattr(xp, "einsum", None)
    if function is None:  # the Array API standard names no einsum (array_api_strict)
        return backend_of(operands[0]).einsum_on_host(subscripts, *operands)
    return xp.asarray(function(subscripts, *operands))


@ops.array_twin("einsum")
def _einsum_twin(xp: Any, subscripts: str, *operands: Any) -> Any:
    return _namespace_einsum(xp, subscripts, *operands)


class Einsum(Function):
    """Einstein-summation node over any number of operands.

    The function behind :func:`einsum`, called as ``Einsum(subscripts)(*operands)``. The
    gradient of operand i is the einsum of the output's gradient with the other operands;
    an index summed in operand i alone is broadcast back.

    Parameters
    ----------
    subscripts : str
        As for :func:`einsum`.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> F.Einsum("ij,j->i")(backend.asarray([[1.0, 2.0]]), backend.asarray([3.0, 4.0]))
    variable([11.])
    """

    # the gradient of each operand reads all the others: forward sets retain_inputs to every
    # operand's index once it knows how many there are
    retain_inputs: tuple[int, ...] = ()
    retain_outputs = ()

    def __init__(self, subscripts: str) -> None:
        self.subscripts = subscripts

    def forward(self, *xs: Any) -> Any:
        self.terms, self.out = _parse(self.subscripts, len(xs))
        self.retain_inputs = tuple(range(len(xs)))
        for term, x in zip(self.terms, xs):
            if len(term) != x.ndim:
                raise ValueError(
                    f"einsum: operand {term!r} of subscripts={self.subscripts!r} names "
                    f"{len(term)} axes, but the array has shape {tuple(x.shape)}"
                )
        spec = ",".join(self.terms) + "->" + self.out
        return _namespace_einsum(self.xp, spec, *xs)

    def vjp(self, d, xs, ys, gys):
        gy = gys[0]
        grads = []
        for i, (term, x) in enumerate(zip(self.terms, xs)):
            others = [t for j, t in enumerate(self.terms) if j != i]
            reachable = set(self.out).union(*others)
            kept = "".join(c for c in term if c in reachable)
            spec = ",".join([self.out, *others]) + "->" + kept
            g = d.einsum(spec, gy, *[xj for j, xj in enumerate(xs) if j != i])
            if kept != term:  # an index summed in this operand alone: every entry gets the same
                ones = tuple(n if c in reachable else 1 for c, n in zip(term, x.shape))
                g = d.broadcast_to(d.reshape(g, ones), tuple(x.shape))
            grads.append(g)
        return tuple(grads)


def einsum(subscripts: str, *operands: Any) -> Variable:
    """Einstein summation (PyTorch's and NumPy's ``einsum``), differentiable to any order.

    Parameters
    ----------
    subscripts : str
        One term of letters per operand, separated by commas, and optionally ``->`` and the
        output's letters (``'bij,bjk->bik'``); without ``->`` the output holds the letters that
        appear once, in alphabetical order. A letter in several operands is multiplied along,
        one missing from the output is summed over.
    *operands : Variable or array
        One per term, with as many axes as its term has letters.

    Returns
    -------
    Variable
        The result. On a namespace without ``einsum`` (array_api_strict: the Array API standard
        names none) it is computed by NumPy on the host. The gradient of each operand is again
        an einsum (of the output's gradient with the other operands), so it differentiates
        again.

    Raises
    ------
    ValueError
        If ``subscripts`` uses ``...``, repeats a letter within one operand (a diagonal or
        trace) or in the output, does not match the operands' count or numbers of axes.

    Examples
    --------
    >>> import agrad
    >>> import agrad.functions as F
    >>> backend = agrad.current_backend()
    >>> a = agrad.Variable(backend.asarray([[1.0, 2.0], [3.0, 4.0]]))
    >>> b = agrad.Variable(backend.asarray([[1.0, 0.0], [1.0, 1.0]]))
    >>> y = F.einsum("ij,jk->ik", a, b)  # a @ b
    >>> y
    variable([[3. 2.]
              [7. 4.]])
    >>> F.sum(y).backward()
    >>> a.grad
    variable([[1. 2.]
              [1. 2.]])
    """
    return Einsum(subscripts)(*[as_variable(x) for x in operands])
