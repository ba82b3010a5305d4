"""The verdict on a ``pytest --backend cupy`` run, from its JUnit report: did it prove anything?

A run passes only if nothing failed, more than 0 tests ran on CuPy (``xp``-parametrized with
``cupy``), and every GPU-only test (``tests/test_gpu.py``) ran: none skipped. Skips of
CuPy-parametrized tests are listed with their reasons, grouped, for a person to judge (they
should only be where CuPy itself lacks a feature).

    python tools/gpu_test_verdict.py junit.xml

Exit status 0 when proven, 1 when not (the reasons printed).
"""

from __future__ import annotations

import collections
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

CUPY_CASE = re.compile(r"[\[-]cupy[-\]]")
GPU_ONLY_MODULE = re.compile(r"^tests\.test_gpu(\.|$)")


def verdict(junit: Path) -> tuple[bool, list[str]]:
    """(proven, report lines) for one JUnit XML file."""
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    outcome = {id(c): _outcome(c) for c in cases}
    counts = collections.Counter(outcome.values())
    cupy = [c for c in cases if CUPY_CASE.search(c.get("name", ""))]
    gpu_only = [c for c in cases if GPU_ONLY_MODULE.match(c.get("classname", ""))]
    cupy_ran = [c for c in cupy if outcome[id(c)] != "skipped"]
    gpu_skipped = [c for c in gpu_only if outcome[id(c)] == "skipped"]
    lines = [
        f"tests: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
        f"{counts['skipped']} skipped of {len(cases)}",
        f"tests on CuPy (cupy-parametrized): {len(cupy_ran)} ran, "
        f"{len(cupy) - len(cupy_ran)} skipped of {len(cupy)}",
        f"GPU-only tests (tests/test_gpu.py): {len(gpu_only) - len(gpu_skipped)} ran, "
        f"{len(gpu_skipped)} skipped of {len(gpu_only)}",
    ]
    reasons = collections.Counter(
        _skip_reason(c) for c in cupy if outcome[id(c)] == "skipped"
    ).most_common(10)
    for reason, n in reasons:
        lines.append(f"  cupy skip x{n}: {reason}")
    problems = []
    if not cases:
        problems.append("the report holds no tests")
    if counts["failed"] or counts["error"]:
        problems.append(f"{counts['failed']} failed and {counts['error']} errors")
        for c in cases:
            if outcome[id(c)] in ("failed", "error") and len(problems) < 12:
                problems.append(f"  {outcome[id(c)]}: {c.get('classname')}::{c.get('name')}")
    if not cupy_ran:
        problems.append("no test ran on CuPy (0 executed): nothing on the GPU was proven")
    if not gpu_only:
        problems.append("the GPU-only tests (tests/test_gpu.py) were not collected")
    for c in gpu_skipped[:5]:
        problems.append(f"GPU-only test skipped: {c.get('name')}: {_skip_reason(c)}")
    if len(gpu_skipped) > 5:
        problems.append(f"... and {len(gpu_skipped) - 5} more GPU-only tests skipped")
    if problems:
        lines.append("tests verdict: NOT PROVEN:")
        lines += [f"  {p}" for p in problems]
    else:
        lines.append(
            "tests verdict: proven (tests ran on CuPy, every GPU-only test ran, none failed)"
        )
    return not problems, lines


def _outcome(case: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return "failed" if tag == "failure" else tag
    return "passed"


def _skip_reason(case: ET.Element) -> str:
    skipped = case.find("skipped")
    message = "" if skipped is None else skipped.get("message", "")
    return message.removeprefix("Skipped: ")[:200]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__)
        return 2
    path = Path(args[0])
    if not path.is_file():
        print(f"tests verdict: NOT PROVEN: no JUnit report at {path} (did pytest run?)")
        return 1
    proven, lines = verdict(path)
    print("\n".join(lines))
    return 0 if proven else 1


if __name__ == "__main__":
    sys.exit(main())
