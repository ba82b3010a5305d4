#!/usr/bin/env bash
# The GPU check: one command on a machine with a CUDA GPU proves agrad's CuPy backend and
# measures it. See tools/README.md.
#
#   bash tools/gpu_check.sh [extra pytest arguments]
#
# 1. installs the wheels carried in .whl/ (if any) into a temporary site directory and puts it,
#    and this checkout, on PYTHONPATH (agrad is pure Python: no install step is needed);
# 2. prints the device (nvidia-smi, CuPy's device properties) and the library versions;
# 3. runs the whole test suite with the cupy backend (python -m pytest --backend cupy);
# 4. runs the GPU benchmark (benchmarks/gpu_bench.py);
# 5. writes everything to ${OUT:-results/gpu}: env.txt, tests.log, junit.xml, bench.log,
#    gpu_bench.json, summary.txt.
#
# Environment:
#   PYTHON                interpreter (default python3)
#   OUT                   results directory (default results/gpu in the repository)
#   GPU_CHECK_WORKERS     pytest-xdist workers on a GPU machine (default 8; 0 = no xdist)
#   GPU_CHECK_BENCH_ARGS  extra gpu_bench.py arguments (e.g. --quick)
#   GPU_CHECK_SKIP_TESTS=1 / GPU_CHECK_SKIP_BENCH=1   leave out a step
#
# Exit status: 0 the tests passed on a usable CUDA device and the benchmark's checks agreed;
# 1 a test failed (or the setup or benchmark broke); 2 the tests passed but implementations
# disagreed in the benchmark; 3 no usable CUDA device (the suite still ran, its GPU tests were
# skipped, nothing was measured).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
PYTHON="${PYTHON:-python3}"
OUT_DIR="${OUT:-$ROOT/results/gpu}"
WORKERS="${GPU_CHECK_WORKERS:-8}"
export PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
if [[ -z "${OUT:-}" && ! -e "$ROOT/results/.gitignore" ]]; then
  echo '*' >"$ROOT/results/.gitignore"  # results of local runs stay out of git
fi
SUMMARY="$OUT_DIR/summary.txt"
: >"$SUMMARY"

say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
section() { printf '\n== %s ==\n' "$*"; }

# -- 1. what the machine lacks, from carried wheels ----------------------------------------------
section "setup"
if compgen -G ".whl/*.whl" >/dev/null; then
  SITE="$(mktemp -d /tmp/agrad-gpu-site.XXXXXX)"
  echo "installing carried wheels into $SITE: $(cd .whl && echo *.whl)"
  if ! "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl; then
    say "gpu_check: FAILED to install the wheels in .whl/"
    exit 1
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "no wheels in .whl/ (run tools/fetch_gpu_wheels.sh where PyPI is reachable if the"
  echo "machine lacks array-api-compat); using what $PYTHON has"
fi
# agrad from this checkout, ahead of any installed copy
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c "import agrad, pytest, numpy, array_api_compat" 2>"$OUT_DIR/import-error.txt"; then
  say "gpu_check: FAILED: $PYTHON cannot import agrad and its needs:"
  tee -a "$SUMMARY" <"$OUT_DIR/import-error.txt"
  exit 1
fi
rm -f "$OUT_DIR/import-error.txt"
AGRAD_FROM="$("$PYTHON" -c 'import agrad, os; print(os.path.dirname(agrad.__file__))')"
echo "agrad imported from $AGRAD_FROM"

# -- 2. device and versions ------------------------------------------------------------------------
section "device and versions"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host: $(uname -srm)"
  if COMMIT="$(git rev-parse --short HEAD 2>/dev/null)"; then
    git diff --quiet HEAD 2>/dev/null || COMMIT+=" (with local changes)"
  else
    COMMIT="unknown (no git checkout here)"
  fi
  echo "commit: $COMMIT"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1
  else
    echo "nvidia-smi: not found"
  fi
  "$PYTHON" - <<'PY'
import importlib
import platform
from importlib import metadata

print(f"python {platform.python_version()} ({platform.python_implementation()})")
for name in ("agrad", "numpy", "cupy-cuda13x", "cupy-cuda12x", "cupy", "array-api-compat",
             "array-api-strict", "tqdm", "torch", "pytest", "pytest-xdist", "hypothesis"):
    try:
        print(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        if name == "agrad":
            print(f"agrad {importlib.import_module('agrad').__version__} (from the checkout)")

import agrad

backend = agrad.get_backend("cupy")
usable, why = backend.probe()
if usable:
    cupy = importlib.import_module("cupy")
    runtime = cupy.cuda.runtime
    device = cupy.cuda.Device()
    props = runtime.getDeviceProperties(device.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"cupy device {device.id}: {name}, compute capability {device.compute_capability}, "
          f"{props['totalGlobalMem'] / 2**30:.1f} GiB, {props['multiProcessorCount']} SMs")
    print(f"CUDA runtime {runtime.runtimeGetVersion()}, driver {runtime.driverGetVersion()}, "
          f"{runtime.getDeviceCount()} device(s)")
    print(f"agrad: {backend.device_name()}")
else:
    print(f"NO USABLE CUDA DEVICE: agrad's cupy backend is not usable here: {why}")
try:
    import torch

    cuda = torch.cuda.is_available()
    print(f"torch CUDA: {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0) if cuda else 'no CUDA device'}")
except ImportError:
    pass
PY
} 2>&1 | tee "$OUT_DIR/env.txt"
cat "$OUT_DIR/env.txt" >>"$SUMMARY"

if "$PYTHON" -c "import agrad, sys; sys.exit(0 if agrad.get_backend('cupy').available else 1)"; then
  HAVE_GPU=1
else
  HAVE_GPU=0
  say ""
  say "gpu_check: no usable CUDA device here: the suite still runs, but its CuPy tests are"
  say "skipped and nothing is measured (exit status 3). Run this on a machine with a CUDA GPU."
fi

# -- 3. the whole suite on the cupy backend --------------------------------------------------------
TEST_RC=0
if [[ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ]]; then
  section "tests: python -m pytest --backend cupy"
  PYTEST_ARGS=(--backend cupy -rfEs -p no:cacheprovider --junitxml="$OUT_DIR/junit.xml")
  if [[ "$HAVE_GPU" == 1 && "$WORKERS" != 0 ]] && "$PYTHON" -c "import xdist" 2>/dev/null; then
    PYTEST_ARGS+=(-n "$WORKERS")  # CuPy compiles each kernel once: workers share the work
  fi
  if "$PYTHON" -c "import pytest_timeout" 2>/dev/null; then
    PYTEST_ARGS+=(--timeout 300)  # a hung kernel fails one test instead of the whole run
  fi
  "$PYTHON" -m pytest "${PYTEST_ARGS[@]}" "$@" 2>&1 | tee "$OUT_DIR/tests.log"
  TEST_RC=${PIPESTATUS[0]}
  say ""
  say "tests (pytest --backend cupy): $(tail -n 1 "$OUT_DIR/tests.log" | sed 's/=//g; s/^ *//; s/ *$//')"
  if [[ -f "$OUT_DIR/junit.xml" ]]; then
    "$PYTHON" - "$OUT_DIR/junit.xml" <<'PY' | tee -a "$SUMMARY"
import re
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
print(f"junit: {passed} passed, {total['failures']} failed, {total['errors']} errors, "
      f"{total['skipped']} skipped of {total['tests']}")
gpu = [c for s in suites for c in s.iter("testcase")
       if "test_gpu" in c.get("classname", "") or re.search(r"[\[-]cupy[-\]]", c.get("name", ""))]
ran = [c for c in gpu if c.find("skipped") is None]
print(f"junit: {len(gpu)} tests on the GPU (cupy-parametrized or tests/test_gpu.py), "
      f"{len(ran)} ran, {len(gpu) - len(ran)} skipped")
PY
  fi
fi

# -- 4. the benchmark ------------------------------------------------------------------------------
BENCH_RC=0
if [[ "${GPU_CHECK_SKIP_BENCH:-0}" != 1 ]]; then
  section "benchmark: benchmarks/gpu_bench.py"
  # shellcheck disable=SC2086  # GPU_CHECK_BENCH_ARGS is a list of words
  "$PYTHON" benchmarks/gpu_bench.py --json "$OUT_DIR/gpu_bench.json" ${GPU_CHECK_BENCH_ARGS:-} \
    2>&1 | tee "$OUT_DIR/bench.log"
  BENCH_RC=${PIPESTATUS[0]}
  say ""
  case "$BENCH_RC" in
    0) say "benchmark: measured; every implementation agreed"
       sed -n '/^| scenario/,$p' "$OUT_DIR/bench.log" >>"$SUMMARY" ;;
    2) say "benchmark: implementations DISAGREED (see bench.log)"
       sed -n '/^| scenario/,$p' "$OUT_DIR/bench.log" >>"$SUMMARY" ;;
    3) say "benchmark: skipped, no usable CUDA device" ;;
    *) say "benchmark: FAILED with exit status $BENCH_RC (see bench.log)" ;;
  esac
fi

# -- 5. verdict ----------------------------------------------------------------------------------
section "summary ($OUT_DIR)"
cat "$SUMMARY"
if [[ "$TEST_RC" != 0 ]]; then
  say "gpu_check: FAILED: the test suite exited with status $TEST_RC"
  exit 1
fi
if [[ "$BENCH_RC" != 0 && "$BENCH_RC" != 2 && "$BENCH_RC" != 3 ]]; then
  exit 1
fi
if [[ "$HAVE_GPU" != 1 ]]; then
  say "gpu_check: NOT PROVEN: no usable CUDA device (exit status 3)"
  exit 3
fi
if [[ "$BENCH_RC" == 2 ]]; then
  exit 2
fi
say "gpu_check: OK"
exit 0
