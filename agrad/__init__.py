"""agrad: DeZero's define-by-run autograd on any Array API backend."""

from agrad import backends, cuda, functions, utils
from agrad.backends import (
    BackendFallbackWarning,
    BackendUnavailableError,
    available_backends,
    current_backend,
    get_backend,
    known_backends,
    seed,
    use,
    using_backend,
)
from agrad.config import Config, no_grad, test_mode, using_config
from agrad.core import Function, Parameter, Variable, as_array, as_variable

__version__ = "0.1.0"
is_simple_core = False


def setup_variable() -> None:
    """Kept for DeZero scripts: agrad's operators are defined on ``Variable`` already."""


__all__ = [
    "BackendFallbackWarning",
    "BackendUnavailableError",
    "Config",
    "Function",
    "Parameter",
    "Variable",
    "as_array",
    "as_variable",
    "available_backends",
    "backends",
    "cuda",
    "current_backend",
    "functions",
    "get_backend",
    "known_backends",
    "no_grad",
    "seed",
    "setup_variable",
    "test_mode",
    "use",
    "using_backend",
    "using_config",
    "utils",
]
