"""agrad: DeZero's define-by-run autograd on any Array API backend."""

# DeZero imports these eagerly, so `agrad.optimizers.Adam` works after a bare `import agrad`
from agrad import (
    amp,
    anomaly,
    backends,
    cuda,
    dataloaders,
    datasets,
    func,
    functions,
    layers,
    models,
    optimizers,
    tracing,
    transforms,
    utils,
)
from agrad.anomaly import detect_anomaly, set_detect_anomaly
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
from agrad.backprop import grad
from agrad.config import Config, no_grad, test_mode, using_config
from agrad.core import Function, Parameter, Variable, as_array, as_variable
from agrad.dataloaders import DataLoader, SeqDataLoader
from agrad.datasets import Dataset
from agrad.layers import Layer
from agrad.models import Model
from agrad.operators import install_variable_operators
from agrad.tracing import TraceError, jit

install_variable_operators()

__version__ = "0.1.0"
is_simple_core = False


def setup_variable() -> None:
    """Kept for DeZero scripts: agrad's operators are defined on ``Variable`` already."""


__all__ = [
    "BackendFallbackWarning",
    "BackendUnavailableError",
    "Config",
    "DataLoader",
    "Dataset",
    "Function",
    "Layer",
    "Model",
    "Parameter",
    "SeqDataLoader",
    "Variable",
    "as_array",
    "amp",
    "anomaly",
    "as_variable",
    "available_backends",
    "backends",
    "cuda",
    "dataloaders",
    "datasets",
    "func",
    "current_backend",
    "detect_anomaly",
    "functions",
    "get_backend",
    "grad",
    "layers",
    "models",
    "known_backends",
    "no_grad",
    "optimizers",
    "seed",
    "set_detect_anomaly",
    "setup_variable",
    "test_mode",
    "tracing",
    "TraceError",
    "jit",
    "transforms",
    "use",
    "using_backend",
    "using_config",
    "utils",
]
