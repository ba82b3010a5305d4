"""Eager per-operation cost: issue 21's three scenarios at fixed sizes, any agrad against any other.

``python benchmarks/eager.py`` times this checkout's agrad against hand-written NumPy;
``--agrad PATH`` (repeatable) adds other agrad checkouts (say agrad 0.1 in a git worktree), so
that versions are compared in one run::

    git worktree add /tmp/agrad01 a67690f
    python benchmarks/eager.py --agrad /tmp/agrad01 --agrad . --reps 5

Each (scenario, library, repetition) runs in its own process with one BLAS/OpenMP thread, the
libraries interleaved (agrad 0.1, this agrad, NumPy, agrad 0.1, ...) so that a busy phase of the
machine hits them all; the table shows the median over repetitions of each child's median.
Only API that agrad 0.1 already had is used (``Variable``, ``agrad.functions``, operators,
``cleargrad``, ``backward``).

``benchmarks/instructions.py`` counts the instructions of the same three steps, for CI.

The scenarios (the same math as ``scenarios/overhead.py``, ``deep.py``, ``cleargrad.py``):

* ``overhead``: a chain of 200 elementwise ops (``sin, exp, *0.5, +x`` repeated) on shape (1,),
  float64, forward + backward; per op.
* ``deep``: ``tanh`` applied 2,000 times to a (10,) vector, forward + backward; per op.
* ``cleargrad``: Rosenbrock gradient descent on two 0-d variables (a new graph from the same
  leaves each iteration, ``cleargrad``, ``backward``, in-place update); per iteration.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MARKER = "@@eager "
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
UNSET_IN_CHILDREN = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

#: scenario -> (operations per step at the timing size, unit)
SCENARIOS = {
    "overhead": (200, "µs/op"),
    "deep": (2_000, "µs/op"),
    "cleargrad": (100, "µs/iter"),
}
LR = 0.001


def build(scenario: str, library: str, size: int | None = None) -> Callable[[], object]:
    """One step of ``scenario`` for ``library`` ("agrad" or "numpy") doing ``size`` ops.

    ``size`` defaults to the timing size of :data:`SCENARIOS`; ``overhead`` rounds it down to a
    multiple of 4 (one round is ``sin, exp, *0.5, +x``).
    """
    n = SCENARIOS[scenario][0] if size is None else size
    return _BUILDERS[(scenario, library)](n)


def _agrad_overhead(n: int) -> Callable[[], object]:
    import numpy as np

    import agrad
    import agrad.functions as F

    x = agrad.Variable(np.random.RandomState(0).uniform(-1.0, 1.0, size=(1,)))
    rounds = n // 4

    def step() -> object:
        y = x
        for _ in range(rounds):
            y = F.sin(y)
            y = F.exp(y)
            y = y * 0.5
            y = y + x
        x.cleargrad()
        y.backward()
        return y.data

    return step


def _numpy_overhead(n: int) -> Callable[[], object]:
    import numpy as np

    x = np.random.RandomState(0).uniform(-1.0, 1.0, size=(1,))
    rounds = n // 4

    def step() -> object:
        saved = []
        y = x
        for _ in range(rounds):
            s = np.sin(y)
            e = np.exp(s)
            saved.append((y, e))
            y = e * 0.5 + x
        g = np.ones_like(y)
        gx = np.zeros_like(x)
        for sin_input, e in reversed(saved):
            gx = gx + g
            g = g * 0.5
            g = g * e
            g = g * np.cos(sin_input)
        return y, gx + g

    return step


def _agrad_deep(n: int) -> Callable[[], object]:
    import numpy as np

    import agrad
    import agrad.functions as F

    x = agrad.Variable(np.random.RandomState(0).uniform(-1.0, 1.0, size=(10,)))

    def step() -> object:
        y = x
        for _ in range(n):
            y = F.tanh(y)
        x.cleargrad()
        y.backward()
        return y.data

    return step


def _numpy_deep(n: int) -> Callable[[], object]:
    import numpy as np

    x = np.random.RandomState(0).uniform(-1.0, 1.0, size=(10,))

    def step() -> object:
        ys = []
        y = x
        for _ in range(n):
            y = np.tanh(y)
            ys.append(y)
        g = np.ones_like(y)
        for y_i in reversed(ys):
            g = g * (1 - y_i * y_i)
        return y, g

    return step


def _agrad_cleargrad(n: int) -> Callable[[], object]:
    import numpy as np

    import agrad

    x0 = agrad.Variable(np.array(0.0))
    x1 = agrad.Variable(np.array(2.0))

    def step() -> object:
        for _ in range(n):
            y = 100 * (x1 - x0**2) ** 2 + (1 - x0) ** 2
            x0.cleargrad()
            x1.cleargrad()
            y.backward()
            x0.data -= LR * x0.grad.data
            x1.data -= LR * x1.grad.data
        return x0.data, x1.data

    return step


def _numpy_cleargrad(n: int) -> Callable[[], object]:
    import numpy as np

    x = np.array([0.0, 2.0])

    def step() -> object:
        for _ in range(n):
            x0, x1 = x[0], x[1]
            inner = x1 - x0 * x0
            g0 = -400.0 * inner * x0 - 2.0 * (1 - x0)
            g1 = 200.0 * inner
            x[0] -= LR * g0
            x[1] -= LR * g1
        return x

    return step


_BUILDERS = {
    ("overhead", "agrad"): _agrad_overhead,
    ("overhead", "numpy"): _numpy_overhead,
    ("deep", "agrad"): _agrad_deep,
    ("deep", "numpy"): _numpy_deep,
    ("cleargrad", "agrad"): _agrad_cleargrad,
    ("cleargrad", "numpy"): _numpy_cleargrad,
}


# -- timing -----------------------------------------------------------------------------------
def _child(scenario: str, library: str, budget_s: float) -> None:
    step = build(scenario, library)
    n = SCENARIOS[scenario][0]
    for _ in range(3):  # warm up caches and lazy initialisation
        step()
    clock = time.perf_counter
    samples = []
    started = clock()
    while len(samples) < 5 or clock() - started < budget_s:
        t0 = clock()
        step()
        samples.append(clock() - t0)
    where = ""
    if library == "agrad":
        import agrad

        where = str(Path(agrad.__file__).resolve().parent.parent)
    result = {"us": statistics.median(samples) * 1e6 / n, "calls": len(samples), "agrad": where}
    print(MARKER + json.dumps(result), flush=True)


def _child_env(path: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env[name] = "1"
    for name in UNSET_IN_CHILDREN:
        env.pop(name, None)
    env["PYTHONPATH"] = path if path is not None else str(ROOT)
    return env


def _run_child(scenario: str, library: str, path: str | None, budget_s: float) -> float:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", scenario, library]
    command += ["--budget", str(budget_s)]
    done = subprocess.run(
        command, env=_child_env(path), capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{scenario}/{library} ({path}) failed:\n{done.stderr}")
    line = next(li for li in done.stdout.splitlines() if li.startswith(MARKER))
    result = json.loads(line[len(MARKER) :])
    if path is not None and Path(result["agrad"]) != Path(path).resolve():
        raise SystemExit(f"the child imported agrad from {result['agrad']}, not {path}")
    return result["us"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--agrad",
        action="append",
        default=None,
        metavar="PATH",
        help="an agrad checkout to time (repeatable; default: this one)",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds of timing per child")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "LIBRARY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)  # fmt: skip
    if args.child:
        _child(args.child[0], args.child[1], args.budget)
        return 0
    trees = [str(Path(p).resolve()) for p in (args.agrad or [str(ROOT)])]
    columns = [("agrad", t) for t in trees] + [("numpy", None)]
    names = [f"agrad {Path(t).name}" for t in trees] + ["numpy"]
    scenarios = args.only or list(SCENARIOS)
    samples: dict[tuple[str, int], list[float]] = {}
    for rep in range(args.reps):
        for scenario in scenarios:
            for i, (library, path) in enumerate(columns):
                us = _run_child(scenario, library, path, args.budget)
                samples.setdefault((scenario, i), []).append(us)
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    header = ["scenario", "unit", *names] + [f"{n} / numpy" for n in names[:-1]]
    print("| " + " | ".join(header) + " |")
    print("|---|---|" + "--:|" * (len(header) - 2))
    for scenario in scenarios:
        medians = [statistics.median(samples[(scenario, i)]) for i in range(len(columns))]
        spreads = [
            f"{statistics.median(s):.2f} ({min(s):.2f}-{max(s):.2f})"
            for s in (samples[(scenario, i)] for i in range(len(columns)))
        ]
        ratios = [f"{m / medians[-1]:.2f}x" for m in medians[:-1]]
        print(f"| {scenario} | {SCENARIOS[scenario][1]} | " + " | ".join(spreads + ratios) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
