"""agrad's benchmark suite: ``python benchmarks/run.py [--quick] [--threads N] [--reps N]``.

``--device cuda`` runs the scenarios that support it on a GPU (agrad on CuPy, hand-written CuPy,
PyTorch on CUDA; the device synchronised before every clock read); ``--emulate-on-cpu`` runs
those code paths with NumPy for CuPy and PyTorch's CPU for CUDA, to test them without a GPU.

Every (scenario, library) pair runs in its own process, the libraries interleaved (agrad, NumPy,
PyTorch, agrad, NumPy, ...) so that a slow phase of the machine hits them all alike; the thread
count of the BLAS/OpenMP pools (and PyTorch's) is pinned to the same number in each child. In the
first repetition every library also reports its loss and gradients, and the run stops with an
error unless they agree with the NumPy baseline. The table shows the medians over repetitions and
the ratios against NumPy and PyTorch. No timing is asserted: a slow machine only gets slower rows.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MARKER = "@@result "
# Set on some machines to pick an OpenBLAS kernel by hand; they can slow NumPy down a lot, so the
# benchmark children run without them (tests and CI keep the environment as it is).
UNSET_IN_CHILDREN = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
CHILD_TIMEOUT_S = 600
EXIT_OK, EXIT_DISAGREE, EXIT_NO_GPU = 0, 1, 3
#: the issue's targets on a GPU: (scenario prefix, library compared against, at most)
GPU_TARGETS = (
    ("mlp ", "numpy", 1.10),
    ("memory peak", "numpy", 1.15),
    ("overhead (1,)", "torch", 1.0),
    ("overhead (100,)", "torch", 1.0),
)


def _import_paths() -> None:
    # the checkout's agrad (not an installed copy) and the scenario modules next to this file
    for path in (str(ROOT), str(HERE)):
        if path not in sys.path:
            sys.path.insert(0, path)


# -- child ------------------------------------------------------------------------------------
def child(scenario: str, library: str, quick: bool, threads: int, check_dir: str | None) -> None:
    """Run every case of one scenario for one library; print the results as one JSON line."""
    _import_paths()
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
    from common import Skip, to_numpy  # noqa: F401 - imported for the scenario modules

    module = importlib.import_module(f"scenarios.{scenario}")
    results: dict[str, Any] = {}
    for case in module.cases(quick):
        try:
            measured = module.run(library, case, quick)
        except Skip as why:
            results[case.name] = {"skipped": str(why)}
            continue
        results[case.name] = {"value": measured.value, "samples": len(measured.samples)}
        if check_dir is not None:
            import numpy as np

            path = Path(check_dir) / f"{scenario}.{_slug(case.name)}.{library}.npz"
            np.savez(path, **measured.check)
            results[case.name]["check"] = str(path)
    sys.stdout.write(MARKER + json.dumps(results) + "\n")


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


# -- parent -----------------------------------------------------------------------------------
def _child_env(threads: int, device: str) -> dict[str, str]:
    env = dict(os.environ)
    env["AGRAD_BENCH_DEVICE"] = device
    for name in UNSET_IN_CHILDREN:
        env.pop(name, None)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    return env


def _spawn(
    scenario: str, library: str, args: argparse.Namespace, check_dir: str | None
) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", scenario, library]
    command += ["--threads", str(args.threads)]
    if args.quick:
        command.append("--quick")
    if check_dir is not None:
        command += ["--check-dir", check_dir]
    try:
        done = subprocess.run(
            command,
            env=_child_env(args.threads, args.device),
            capture_output=True,
            text=True,
            check=False,
            timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"benchmark child {scenario}/{library} ran past {CHILD_TIMEOUT_S} s:\n"
            f"{(exc.stdout or '')[-3000:]}"
        ) from None
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark child {scenario}/{library} failed (exit {done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return json.loads(lines[-1][len(MARKER) :])


def _compare(scenario: str, case: str, files: dict[str, str], tolerance: dict) -> list[str]:
    """Differences between each library's check arrays and the NumPy baseline's."""
    import numpy as np

    reference = dict(np.load(files["numpy"]))
    problems = []
    for library, path in files.items():
        if library == "numpy":
            continue
        got = dict(np.load(path))
        if set(got) != set(reference):
            problems.append(f"{library}: reports {sorted(got)}, NumPy {sorted(reference)}")
            continue
        for key, want in reference.items():
            have = got[key]
            if have.shape != want.shape:
                problems.append(f"{library}: {key} has shape {have.shape}, NumPy {want.shape}")
                continue
            if have.dtype != want.dtype:
                problems.append(f"{library}: {key} is {have.dtype}, NumPy {want.dtype}")
                continue
            scale = float(np.max(np.abs(want))) if want.size else 0.0
            error = float(np.max(np.abs(have - want))) if want.size else 0.0
            allowed = tolerance["atol"] + tolerance["rtol"] * scale
            if not error <= allowed:  # also catches NaN
                problems.append(
                    f"{library}: {key} differs from NumPy by {error:.3g} (allowed {allowed:.3g})"
                )
    return [f"{scenario} / {case}: {p}" for p in problems]


def _versions(libraries: list[str]) -> dict[str, str]:
    _import_paths()
    import numpy as np

    import agrad

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "agrad": agrad.__version__,
    }
    if "torch" in libraries:
        found = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.__version__)"],
            capture_output=True,
            text=True,
            check=False,
        )
        versions["torch"] = found.stdout.strip() or "?"
    return versions


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _format_value(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0:
        return "-"
    return f"{a / b:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (under a minute)")
    parser.add_argument("--threads", type=int, default=1, help="threads per library (1)")
    parser.add_argument("--reps", type=int, default=None, help="processes per library and scenario")
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda", "cuda-emulated"),
        default="cpu",
        help="where to compute: cpu (default), cuda (agrad on CuPy vs CuPy by hand vs torch "
        "CUDA), cuda-emulated (the cuda code paths on the CPU; numbers mean nothing)",
    )
    parser.add_argument(
        "--emulate-on-cpu", action="store_true", help="the same as --device cuda-emulated"
    )
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "LIBRARY"), help=argparse.SUPPRESS)
    parser.add_argument("--check-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.emulate_on_cpu:
        args.device = "cuda-emulated"

    if args.child:
        child(*args.child, args.quick, args.threads, args.check_dir)
        return 0

    # before common is imported: scenarios list their cases (and tolerances) for the device
    os.environ["AGRAD_BENCH_DEVICE"] = args.device
    _import_paths()
    import scenarios
    from common import LIBRARIES, Device

    device = Device(args.device)
    labels = device.labels()
    if device.gpu:
        import agrad

        usable, why = agrad.get_backend("cupy").probe()
        if not usable:
            print(f"benchmarks: no usable CUDA device, nothing measured: {why}", flush=True)
            return EXIT_NO_GPU

    reps = args.reps or (1 if args.quick else 5)
    libraries = list(LIBRARIES)
    notes = []
    if args.no_torch:
        libraries.remove("torch")
        notes.append("PyTorch: left out (--no-torch)")
    elif importlib.util.find_spec("torch") is None:
        libraries.remove("torch")
        notes.append(
            "PyTorch: skipped, not installed (pip install torch==2.13.0 for the CPU build)"
        )
    chosen = args.only or list(scenarios.SCENARIOS)
    unknown = set(chosen) - set(scenarios.SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; known: {scenarios.SCENARIOS}")
    if args.device != "cpu":
        on_device = []
        for scenario in chosen:
            module = importlib.import_module(f"scenarios.{scenario}")
            if args.device in getattr(module, "DEVICES", ("cpu",)):
                on_device.append(scenario)
            else:
                notes.append(
                    f"{scenario}: not run on {args.device}: scenarios/{scenario}.py lists no "
                    f"DEVICES with it (it builds its libraries for the CPU only)"
                )
        chosen = on_device

    started = time.perf_counter()
    versions = _versions(libraries)
    print(f"machine: {_machine()}")
    print(f"device: {_device_description(device)}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"threads: {args.threads} per library ({'/'.join(THREAD_VARIABLES)}"
        + (", torch.set_num_threads" if "torch" in libraries else "")
        + f"); {reps} repetition(s), libraries interleaved; unset in children: "
        + ", ".join(UNSET_IN_CHILDREN)
    )
    for note in notes:
        print(note)
    sys.stdout.flush()

    rows: list[tuple[str, str, dict[str, float | None], dict[str, str]]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="agrad-bench-") as check_dir:
        for scenario in chosen:
            module = importlib.import_module(f"scenarios.{scenario}")
            libs = [lib for lib in libraries if lib in module.LIBRARIES]
            values: dict[str, dict[str, list[float]]] = {}
            skipped: dict[str, dict[str, str]] = {}
            units: dict[str, str] = {}
            order: list[str] = []
            for rep in range(reps):
                for library in libs:  # interleaved: A B C A B C ...
                    result = _spawn(scenario, library, args, check_dir if rep == 0 else None)
                    for case, got in result.items():
                        if case not in order:
                            order.append(case)
                        if "skipped" in got:
                            skipped.setdefault(case, {})[library] = got["skipped"]
                        else:
                            values.setdefault(case, {}).setdefault(library, []).append(got["value"])
                if rep == 0:  # check before any timing is reported
                    for case in order:
                        files = {
                            lib: str(p)
                            for lib in libs
                            if (
                                p := Path(check_dir) / f"{scenario}.{_slug(case)}.{lib}.npz"
                            ).exists()
                        }
                        if "numpy" in files and len(files) > 1:
                            failures += _compare(scenario, case, files, module.TOLERANCE)
                        elif "numpy" not in files:
                            failures.append(f"{scenario} / {case}: no NumPy baseline to check")
                    if failures:
                        break
            for case in module.cases(args.quick):
                units[case.name] = case.unit
            for case in order:
                medians = {
                    lib: statistics.median(v) if (v := values.get(case, {}).get(lib)) else None
                    for lib in libraries
                }
                rows.append((case, units.get(case, ""), medians, skipped.get(case, {})))
            print(f"  {scenario}: done ({time.perf_counter() - started:.0f} s)", flush=True)
            if failures:
                break

    if failures:
        print("\nRESULTS DISAGREE; no timings reported:", file=sys.stderr)
        for failure in failures:
            print("  " + failure, file=sys.stderr)
        return EXIT_DISAGREE

    _print_table(rows, libraries, args.markdown, labels)
    if device.name != "cpu":
        _print_targets(rows, labels)
    skipped_notes = sorted(
        {f"{lib} skipped in '{case}': {why}" for case, _, _, s in rows for lib, why in s.items()}
    )
    for note in skipped_notes:
        print(note)
    print(
        f"all libraries agree on every checked result; total {time.perf_counter() - started:.0f} s"
    )
    return EXIT_OK


def _device_description(device: Any) -> str:
    if device.name == "cpu":
        return "cpu"
    if device.name == "cuda-emulated":
        return (
            "cuda-emulated: NumPy stands in for CuPy, PyTorch's CPU for CUDA (numbers mean nothing)"
        )
    return f"cuda: {device.backend.device_name()}, synchronised before every clock read"


def _print_targets(rows: list, labels: dict[str, str]) -> None:
    print("targets (agrad against the library named; lower is better):")
    for case, _, medians, _ in rows:
        for prefix, other, limit in GPU_TARGETS:
            if not case.startswith(prefix):
                continue
            a, b = medians.get("agrad"), medians.get(other)
            if a is None or b is None or b <= 0:
                verdict = "not measured"
            else:
                verdict = f"{a / b:.2f}x: {'met' if a / b <= limit else 'MISSED'}"
            print(f"  {case}: agrad/{labels[other]} <= {limit}x: {verdict}")
    print()


def _print_table(
    rows: list, libraries: list[str], markdown: bool, labels: dict[str, str] | None = None
) -> None:
    labels = labels or {lib: lib for lib in libraries}
    header = ["scenario", "unit", *[labels[lib] for lib in libraries]]
    header.append(f"agrad/{labels['numpy']}" if labels["numpy"] != "numpy" else "agrad/numpy")
    if "torch" in libraries:
        header.append(f"agrad/{labels['torch']}" if labels["torch"] != "torch" else "agrad/torch")
    table = []
    for case, unit, medians, _ in rows:
        line = [case, unit, *[_format_value(medians.get(lib)) for lib in libraries]]
        line.append(_ratio(medians.get("agrad"), medians.get("numpy")))
        if "torch" in libraries:
            line.append(_ratio(medians.get("agrad"), medians.get("torch")))
        table.append(line)
    print()
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" if i < 2 else "--:" for i in range(len(header))) + "|")
        for line in table:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
        for i, line in enumerate([header, *table]):
            cells = [
                c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths))
            ]
            print("  ".join(cells))
            if i == 0:
                print("  ".join("-" * w for w in widths))
    print()


if __name__ == "__main__":
    sys.exit(main())
