"""Complex dtypes are refused by name wherever a gradient may be needed (issue 22).

agrad implements no convention for complex gradients (PyTorch's is the conjugate Wirtinger
derivative), and half a convention gave wrong numbers (``sum(abs(exp(z)))`` gave -1.78-2.06j
where PyTorch and finite differences give 2.718). Forward-only use keeps working.
"""

from __future__ import annotations

import numpy as np
import pytest
from fn_checks import host

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.core import is_differentiable_dtype

Z = np.array([1 + 2j, -0.5 + 0.25j])
MESSAGE = r"complex128 is a complex dtype: agrad differentiates real floating dtypes only"


def _complex(xp):
    try:
        return xp.asarray(Z)
    except (TypeError, ValueError) as error:  # a library without complex numbers
        pytest.skip(f"{agrad.current_backend().name} has no complex128 ({error})")


def test_is_differentiable_dtype_names_complex(xp):
    data = _complex(xp)
    with pytest.raises(TypeError, match=MESSAGE):
        is_differentiable_dtype(data.dtype)
    assert is_differentiable_dtype(xp.float64) and not is_differentiable_dtype(xp.int64)


@pytest.mark.parametrize(
    "f",
    [
        lambda z: F.sum(F.abs(F.exp(z))),
        lambda z: z * 2.0,
        lambda z: F.sum(z),
        lambda z: z[0],
    ],
    ids=["abs_exp", "mul", "sum", "get_item"],
)
def test_a_complex_variable_in_a_recorded_graph_is_refused(xp, f):
    z = Variable(_complex(xp))
    with pytest.raises(TypeError, match=MESSAGE):
        f(z)


def test_backward_from_a_complex_output_is_refused(xp):
    y = F.exp(_complex(xp))  # a raw array is a constant: no gradient is asked for it
    with pytest.raises(TypeError, match=MESSAGE):
        y.backward()


def test_complex_forward_without_gradients_keeps_working(xp):
    z = Variable(_complex(xp))
    with agrad.no_grad():
        y = F.sum(F.abs(F.exp(z)))
    np.testing.assert_allclose(host(y), np.abs(np.exp(Z)).sum())
    np.testing.assert_allclose(host(F.exp(_complex(xp))), np.exp(Z))
