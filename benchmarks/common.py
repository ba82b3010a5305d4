"""What every scenario shares: the data every library starts from, timing and skipping.

Each library builds its own copy of the same inputs from a seeded NumPy generator, so that the
results can be compared before anything is timed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LIBRARIES = ("agrad", "numpy", "torch")


class Skip(Exception):  # noqa: N818 - reads as `raise Skip("why")`
    """This library cannot run this case; the message says why."""


@dataclass
class Case:
    """One row of the results table."""

    name: str
    unit: str
    params: dict[str, Any] = field(default_factory=dict)
    #: lower is better for every unit; "time" cases are timed, "value" cases measure themselves
    kind: str = "time"


@dataclass
class Measured:
    """What a library reports for one case: the number and the arrays to compare."""

    value: float
    check: dict[str, Any]
    samples: list[float] = field(default_factory=list)


def rng(seed: int = 0) -> np.random.RandomState:
    """The generator every library draws its shared inputs from."""
    return np.random.RandomState(seed)


def time_step(
    step: Callable[[], Any], quick: bool, *, min_calls: int = 3, budget_s: float | None = None
) -> list[float]:
    """Seconds per call of ``step`` (already warmed up), one sample per call.

    Calls until ``budget_s`` seconds have passed and at least ``min_calls`` were made (none
    when both are 0).
    """
    if budget_s is None:
        budget_s = 0.15 if quick else 1.0
    samples = []
    clock = time.perf_counter
    started = clock()
    while len(samples) < min_calls or clock() - started < budget_s:
        t0 = clock()
        step()
        samples.append(clock() - t0)
        if len(samples) >= 10_000:
            break
    return samples


def timed(
    step: Callable[[], Any],
    collect: Callable[[], dict[str, Any]],
    quick: bool,
    scale: float,
    warmup: bool = True,
    **options: Any,
) -> Measured:
    """Run ``step`` once and ``collect`` its results for the check, then time it.

    The reported value is the median seconds per call times ``scale`` (units per second divided
    by operations per call, say). With ``min_calls=0, budget_s=0`` the one checked call is the
    sample (for steps of seconds in --quick mode).
    """
    started = time.perf_counter()
    step()
    first_call = time.perf_counter() - started
    check = collect()
    # warm up caches, allocators and lazy initialisation (PyTorch's first calls are slow)
    if warmup:
        time_step(step, quick, min_calls=2, budget_s=0.05 if quick else 0.2)
    samples = time_step(step, quick, **options) or [first_call]  # min_calls=0: the first call
    return Measured(statistics.median(samples) * scale, check, [s * scale for s in samples])


def to_numpy(x: Any) -> np.ndarray:
    """A host NumPy copy of an agrad Variable, a torch tensor or an array."""
    if isinstance(x, (np.ndarray, np.generic, int, float)):
        return np.array(x, copy=True)
    if hasattr(x, "detach"):  # a torch tensor
        return x.detach().cpu().numpy().copy()
    return np.array(x.data, copy=True)  # an agrad Variable on the NumPy backend
