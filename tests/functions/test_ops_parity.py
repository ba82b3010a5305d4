"""Every name a ``vjp`` may call on ``d`` exists in both vocabularies with matching parameters.

On the fast path ``d`` is ``agrad.ops.array_ops(backend)``; with ``create_graph=True`` it is
``agrad.functions``. A name missing from either breaks one of the two paths.
"""

from __future__ import annotations

import inspect

import pytest

import agrad
import agrad.functions as F
from agrad import ops

NOT_VOCABULARY = {"xp", "array_type"}  # attributes of ArrayOps that are not functions


def _vocabulary(array_ops):
    names = {
        name
        for name in dir(array_ops)
        if not name.startswith("_")
        and name not in NOT_VOCABULARY
        and callable(getattr(array_ops, name))
    }
    return names | set(ops._TWINS)


def _parameters(func, skip_first):
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # some builtins hide their signature
        return None
    params = params[1:] if skip_first else params
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_every_array_op_exists_in_functions(xp):
    missing = sorted(
        name for name in _vocabulary(ops.array_ops(agrad.current_backend())) if not hasattr(F, name)
    )
    assert not missing, f"ArrayOps names without an agrad.functions counterpart: {missing}"


def test_functions_take_the_parameters_of_their_array_twins(xp):
    array_ops = ops.array_ops(agrad.current_backend())
    mismatched = []
    for name in sorted(_vocabulary(array_ops)):
        if name in ops.ArrayOps._DIRECT:
            continue  # taken straight from the namespace; their signatures are the standard's
        twin = ops._TWINS.get(name) or getattr(type(array_ops), name)
        wanted = _parameters(twin, skip_first=True)  # `xp` of a twin, `self` of a method
        have = _parameters(getattr(F, name), skip_first=False)
        if wanted is not None and have is not None and wanted != have[: len(wanted)]:
            mismatched.append(f"{name}: array {wanted} vs functions {have}")
    assert not mismatched, "\n".join(mismatched)


@pytest.mark.parametrize("name", sorted(ops.ArrayOps._DIRECT))
def test_direct_names_take_the_standard_keywords(xp, name):
    # vjps pass `axis=` by keyword to these (the standard makes it keyword-only)
    if name in ("expand_dims", "concat", "stack"):
        assert "axis" in inspect.signature(getattr(F, name)).parameters
    assert callable(getattr(F, name))
