"""Eager per-operation cost as CPU instructions: deterministic, so CI can hold it to a baseline.

    python benchmarks/instructions.py              # measure, compare with the stored baseline
    python benchmarks/instructions.py --update     # measure and store as the new baseline
    python benchmarks/instructions.py --agrad PATH # measure another checkout of agrad

Timings on a shared machine move by ±10 % between runs; instruction counts under Valgrind's
callgrind move by well under 1 %. The three scenarios of issue 21 run in one child process
under ``valgrind --tool=callgrind``, each inside its own otherwise unused C function of
CPython (``functools.reduce``, ``itertools.starmap`` and ``itertools.filterfalse``), and
callgrind counts instructions only inside those (``--toggle-collect``), so importing NumPy and
agrad and warming up are left out. The result is instructions per operation (per iteration
for the Rosenbrock loop).

Python's cyclic garbage collector is off inside the counted regions, as ``timeit`` turns it
off: a full collection walks every object of the process (~7.7 million instructions here),
and whether one falls inside a region depends on everything allocated before it, so any
change anywhere moved a scenario by up to 25 %. What the collector costs agrad grows with
the objects its graph keeps alive, so that is counted instead, exactly: the GC-tracked objects
a 200-op chain's graph holds, per op. The check fails (exit status 1) when a figure exceeds
the baseline by more than ``TOLERANCE``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "instructions_baseline.json"
# measured run to run: under 0.2 % (NumPy's and CPython's allocators); 3 % leaves room for a
# different but equivalent build of the same versions, and catches any real per-op regression
TOLERANCE = 0.03
SCENARIOS = {
    # name: (C function that brackets it, operations per call, calls counted)
    "chain (1,) x200 fwd+bwd, per op": ("functools_reduce", 200, 3),
    "tanh x2,000 (10,) fwd+bwd, per op": ("starmap_next", 2000, 3),
    "rosenbrock cleargrad loop, per iteration": ("filterfalse_next", 1, 99),
}
GRAPH_OBJECTS = "GC-tracked objects a chain's graph keeps, per op"


def _child() -> None:
    """Build the three steps, warm them up, then run each inside its counted C function."""
    import numpy as np

    import agrad
    import agrad.functions as F

    x = agrad.Variable(np.random.RandomState(0).uniform(-1.0, 1.0, size=(1,)))

    def chain(_a=None, _b=None):
        y = x
        for _ in range(50):
            y = F.sin(y)
            y = F.exp(y)
            y = y * 0.5
            y = y + x
        x.cleargrad()
        y.backward()
        return 0

    xt = agrad.Variable(np.random.RandomState(0).uniform(-1.0, 1.0, size=(10,)))

    def deep():
        y = xt
        for _ in range(2000):
            y = F.tanh(y)
        xt.cleargrad()
        y.backward()
        return 0

    x0 = agrad.Variable(np.array(0.0))
    x1 = agrad.Variable(np.array(2.0))

    def rosenbrock(_a=None):
        y = 100 * (x1 - x0**2) ** 2 + (1 - x0) ** 2
        x0.cleargrad()
        x1.cleargrad()
        y.backward()
        x0.data -= 0.001 * x0.grad.data
        x1.data -= 0.001 * x1.grad.data
        return 0

    # steady state: CPython specializes a code object after it ran a few times, and each
    # function class runs its own copy of Function.__call__, which the Rosenbrock loop calls
    # once or twice per iteration (3 iterations left it 5 % short of its steady count)
    for step, warm_up in ((chain, 3), (deep, 3), (rosenbrock, 30)):
        for _ in range(warm_up):
            step()
    calls = [calls for _, _, calls in SCENARIOS.values()]
    gc.collect()
    gc.disable()
    # Each scenario also runs once uncounted just before its count: the first allocations after
    # the previous scenario's graph was freed make glibc consolidate its free lists, a one-off
    # (about 330,000 instructions before the first Rosenbrock iteration after the tanh chain,
    # which made up a fifth of that scenario's figure when it counted 3 iterations).
    chain()
    functools.reduce(chain, range(calls[0] + 1))  # reduce calls it calls[0] times
    deep()
    list(itertools.starmap(deep, [()] * calls[1]))
    rosenbrock()
    list(itertools.filterfalse(rosenbrock, range(calls[2])))
    gc.enable()

    def forward_chain():
        y = x
        for _ in range(50):
            y = F.exp(F.sin(y)) * 0.5 + x
        return y

    gc.collect()
    before = len(gc.get_objects())
    graph = forward_chain()
    kept = len(gc.get_objects()) - before
    del graph
    print(json.dumps({GRAPH_OBJECTS: kept / 200}))


def measure(agrad_path: str | None) -> dict[str, float]:
    """Instructions per operation of each scenario, from one callgrind run."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")
    if agrad_path is not None:
        env["PYTHONPATH"] = agrad_path
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        toggles = [f"--toggle-collect={fn}" for fn, _, _ in SCENARIOS.values()]
        command = [
            valgrind,
            "--tool=callgrind",
            "--collect-atstart=no",
            *toggles,
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"the measured process failed:\n{done.stderr[-3000:]}")
        annotate = shutil.which("callgrind_annotate")
        report = subprocess.run(
            [annotate, "--inclusive=yes", "--threshold=100", str(out)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for name, (function, ops, calls) in SCENARIOS.items():
        match = re.search(rf"^\s*([\d,]+)\s.*\b{function}\b", report, re.MULTILINE)
        if match is None:
            raise SystemExit(f"no count for {function} in callgrind's report")
        result[name] = int(match.group(1).replace(",", "")) / (calls * ops)
    result[GRAPH_OBJECTS] = result.pop(GRAPH_OBJECTS)  # listed last
    return result


def _versions() -> dict[str, str]:
    import numpy

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--update", action="store_true", help="store the result as baseline")
    parser.add_argument("--agrad", default=None, help="measure the agrad at this path")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child()
        return 0
    measured = measure(args.agrad)
    stored = json.loads(BASELINE.read_text()) if BASELINE.exists() else None
    print(
        f"{'scenario (instructions unless named)':50} {'measured':>12} {'baseline':>12} "
        f"{'change':>8}"
    )
    failed = False
    for name, value in measured.items():
        base = stored["instructions"].get(name) if stored else None
        change = "" if base is None else f"{value / base - 1:+.1%}"
        digits = 2 if value < 100 else 0
        print(f"{name:50} {value:12,.{digits}f} {base or 0:12,.{digits}f} {change:>8}")
        if base is not None and value > base * (1 + TOLERANCE):
            failed = True
    if args.update:
        BASELINE.write_text(
            json.dumps({"versions": _versions(), "instructions": measured}, indent=2) + "\n"
        )
        print(f"baseline written to {BASELINE.name}")
        return 0
    if stored is not None and stored["versions"] != _versions():
        # another CPython or NumPy executes other instructions: no like-for-like comparison
        print(
            f"not compared: the baseline was measured with {stored['versions']}, this run "
            f"has {_versions()}; run with --update on the old code to compare"
        )
        return 0
    if failed:
        print(f"FAILED: a scenario grew by more than {TOLERANCE:.0%} over the baseline")
        return 1
    print(f"ok: every scenario within {TOLERANCE:.0%} of the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
