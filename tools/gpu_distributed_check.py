"""Single-rank checks of ``agrad.distributed`` on one GPU, through its public API only.

For each engine: the NCCL communicator, and the MPI communicator with CuPy arrays (as MPI takes
them: directly where the MPI library is CUDA-aware, and through host memory with
``AGRAD_MPI_CUDA_AWARE=0``), it checks ``allreduce`` (sum and mean), ``bcast``, and that one
data-parallel training step (``create_multi_node_optimizer``) equals the same plain step. One
rank cannot show that ranks agree, but it drives every code path a real job does on the device:
packing gradients by dtype, the NCCL calls on CuPy's stream, the staging through the host.

    python tools/gpu_distributed_check.py                  # on a GPU machine (gpu_check.sh runs it)
    python tools/gpu_distributed_check.py --emulate-on-cpu # the MPI engine with NumPy arrays;
                                                           # tests this script without a GPU

Exit status 0 when every check passed, 1 when one failed or could not run (the reason printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# an exception in a check is reported, not turned into an MPI_Abort of this one process
os.environ.setdefault("AGRAD_DISTRIBUTED_NO_ABORT_HOOK", "1")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import agrad  # noqa: E402
import agrad.functions as F  # noqa: E402
from agrad.cuda import as_numpy  # noqa: E402
from agrad.distributed import create_communicator, create_multi_node_optimizer  # noqa: E402


def _check_collectives(comm: Any, backend: Any) -> str:
    for dtype in ("float32", "float64"):
        x = backend.asarray(np.arange(6.0).reshape(2, 3), dtype)
        for op in ("sum", "mean"):
            got = comm.allreduce(x, op=op)
            _same_place(got, x, f"allreduce {op} {dtype}")
            np.testing.assert_allclose(as_numpy(got), as_numpy(x) * 1.0, rtol=1e-6)
        got = comm.bcast(x, root=0)
        _same_place(got, x, f"bcast {dtype}")
        np.testing.assert_array_equal(as_numpy(got), as_numpy(x))
    return f"allreduce (sum, mean) and bcast of float32/float64 on {backend.name}: equal, in place"


def _same_place(got: Any, x: Any, what: str) -> None:
    if type(got) is not type(x) or got.dtype != x.dtype or got.shape != x.shape:
        raise AssertionError(
            f"{what}: {type(got).__name__} {got.dtype} {got.shape}, "
            f"expected {type(x).__name__} {x.dtype} {x.shape}"
        )


def _check_data_parallel_step(comm: Any, backend: Any) -> str:
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((32, 6)).astype(np.float32)
    t_host = rng.integers(0, 3, 32)
    with agrad.using_backend(backend):
        x, t = backend.asarray(x_host), backend.asarray(t_host, "int64")
        plain = agrad.models.MLP((16, 3))
        parallel = agrad.models.MLP((16, 3))
        for model in (plain, parallel):  # weights are made at the first call: the same ones
            agrad.seed(0)
            model(x)
        plain_opt = agrad.optimizers.MomentumSGD(lr=0.1).setup(plain)
        parallel_opt = create_multi_node_optimizer(agrad.optimizers.MomentumSGD(lr=0.1), comm)
        parallel_opt.setup(parallel)
        for _ in range(3):
            for model, opt in ((plain, plain_opt), (parallel, parallel_opt)):
                loss = F.softmax_cross_entropy(model(x), t)
                model.cleargrads()
                loss.backward()
                opt.update()
    pairs = list(zip(plain.params(), parallel.params()))
    if not pairs:
        raise AssertionError("the models have no parameters")
    for a, b in pairs:
        _same_place(b.data, a.data, "parameter after the data-parallel step")
        np.testing.assert_allclose(as_numpy(b), as_numpy(a), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(as_numpy(b.grad), as_numpy(a.grad), rtol=1e-5, atol=1e-7)
    return f"3 data-parallel MomentumSGD steps equal the plain steps ({len(pairs)} parameters)"


def _run(label: str, check: Callable[[], str], results: list[tuple[str, bool, str]]) -> None:
    try:
        detail = check()
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        traceback.print_exc(limit=4)
        results.append((label, False, detail))
    else:
        results.append((label, True, detail))
    ok, detail = results[-1][1], results[-1][2]
    print(f"  {label}: {'ok' if ok else 'FAILED'}: {detail}", flush=True)


def _engine(name: str, backend: Any, results: list, cuda_aware: str | None = None) -> None:
    label = name if cuda_aware is None else f"{name} (AGRAD_MPI_CUDA_AWARE={cuda_aware})"
    if cuda_aware is not None:
        os.environ["AGRAD_MPI_CUDA_AWARE"] = cuda_aware
    try:
        comm = create_communicator(name)
    except Exception as exc:
        results.append((f"{label}: communicator", False, f"{type(exc).__name__}: {exc}"))
        print(f"  {label}: FAILED to create the communicator: {results[-1][2]}", flush=True)
        return
    finally:
        if cuda_aware is not None:
            os.environ.pop("AGRAD_MPI_CUDA_AWARE", None)
    extra = ""
    if name == "mpi" and backend.gpu:
        extra = f", CUDA-aware: {comm.cuda_aware}"
    print(f"{label}: rank {comm.rank} of {comm.size}{extra}", flush=True)
    _run(f"{label}: collectives", lambda: _check_collectives(comm, backend), results)
    _run(f"{label}: data-parallel step", lambda: _check_data_parallel_step(comm, backend), results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--emulate-on-cpu",
        action="store_true",
        help="the MPI engine with NumPy arrays only (tests this script without a GPU)",
    )
    args = parser.parse_args(argv)
    results: list[tuple[str, bool, str]] = []
    if args.emulate_on_cpu:
        backend = agrad.get_backend("numpy")
        print("distributed check EMULATED on the CPU: the MPI engine with NumPy arrays")
        _engine("mpi", backend, results)
    else:
        backend = agrad.get_backend("cupy")
        usable, why = backend.probe()
        if not usable:
            print(f"distributed check: FAILED: the cupy backend is not usable here: {why}")
            return 1
        _engine("nccl", backend, results)
        _engine("mpi", backend, results)
        _engine("mpi", backend, results, cuda_aware="0")
    failed = [label for label, ok, _ in results if not ok]
    print(
        f"distributed check: {len(results) - len(failed)} of {len(results)} checks passed"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
