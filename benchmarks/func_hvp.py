"""Cost of ``agrad.func.hvp`` against one ``agrad.func.grad`` on the MLP: the ratio of their times.

    python benchmarks/func_hvp.py [--quick] [--rounds 7] [--threads 1] [--no-torch]

The function is the loss of the benchmark MLP (784-1000-1000-10, sigmoid, batch 100, float32,
``scenarios/mlp.py``'s weights and data) as a function of its six parameter arrays:
``softmax_cross_entropy(MLP(x; params), t)``. One ``grad`` is a forward and a backward pass;
``hvp`` (the Hessian times a random direction ``v``, reverse over reverse) records the gradient's
graph and differentiates it again. The issue's target: ``hvp`` at most 3x one ``grad``.

Both run in this process, interleaved (grad, hvp, grad, hvp, ...), so a slow phase of the machine
hits both alike; the ratio is of the medians. PyTorch's own ratio (``torch.func.grad`` against
``torch.autograd.functional.vhp``, also reverse over reverse, and ``.hvp``, which torch computes
with the double-backward trick) is printed for scale. Before anything is timed, agrad's gradient
and hvp are checked against PyTorch's (float32 tolerance); the run stops if they differ.
Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _setup_threads(threads: int) -> None:
    # before NumPy loads its BLAS: the pools read these once
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    for path in (str(HERE.parent), str(HERE)):
        if path not in sys.path:
            sys.path.insert(0, path)


def _agrad_calls(x, t, params, v):
    import agrad.functions as F
    from agrad import func

    def loss(p):
        h = x
        for W, b in p[:-1]:
            h = F.sigmoid(F.linear(h, W, b))
        W, b = p[-1]
        return F.softmax_cross_entropy(F.linear(h, W, b), t)

    gradient = func.grad(loss)

    def grad_call():
        return gradient(params)

    def hvp_call():
        return func.hvp(loss, (params,), (v,))[1][0]

    return grad_call, hvp_call


def _torch_calls(x, t, params, v):
    import torch

    x, t = torch.tensor(x), torch.tensor(t)
    flat = tuple(torch.tensor(a) for pair in params for a in pair)
    vs = tuple(torch.tensor(a) for pair in v for a in pair)

    def loss(*p):
        h = x
        for i in range(0, len(p) - 2, 2):
            h = torch.sigmoid(torch.addmm(p[i + 1], h, p[i]))
        return torch.nn.functional.cross_entropy(torch.addmm(p[-1], h, p[-2]), t)

    gradient = torch.func.grad(loss, argnums=tuple(range(len(flat))))

    def grad_call():
        return gradient(*flat)

    def vhp_call():
        return torch.autograd.functional.vhp(loss, flat, vs)[1]

    def hvp_call():
        return torch.autograd.functional.hvp(loss, flat, vs)[1]

    return grad_call, vhp_call, hvp_call


def _host(a) -> object:
    import numpy as np

    from agrad.cuda import as_numpy

    if hasattr(a, "detach"):
        return a.detach().numpy()
    return np.asarray(as_numpy(a))


def _check(agrad_pair, torch_triple) -> list[str]:
    """Differences between agrad's gradient and hvp and PyTorch's (float32 tolerance)."""
    import numpy as np

    problems = []
    ours = [agrad_pair[0](), agrad_pair[1]()]
    theirs = [torch_triple[0](), torch_triple[1]()]
    for what, got, want in zip(("grad", "hvp"), ours, theirs):
        got = [_host(a) for pair in got for a in pair]
        want = [_host(a) for a in want]
        for i, (g, w) in enumerate(zip(got, want)):
            scale = float(np.max(np.abs(w))) or 1.0
            error = float(np.max(np.abs(g - w)))
            if g.shape != w.shape or g.dtype != w.dtype or not error <= 2e-3 * scale:
                problems.append(
                    f"{what} {i}: shape {g.shape}/{w.shape}, dtype {g.dtype}/{w.dtype}, "
                    f"max |difference| {error:.3g} against max |torch| {scale:.3g}"
                )
    return problems


def _interleaved(calls: dict, rounds: int, per_round: int) -> dict[str, float]:
    """Median seconds per call of each callable, called in turn ``rounds * per_round`` times."""
    for call in calls.values():  # warm-up: allocators, caches, lazy initialisation
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    clock = time.perf_counter
    for _ in range(rounds):
        for _ in range(per_round):
            for name, call in calls.items():
                started = clock()
                call()
                samples[name].append(clock() - started)
    return {name: statistics.median(s) for name, s in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few calls only (a smoke test)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of interleaved calls (7)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (1)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    args = parser.parse_args(argv)
    _setup_threads(args.threads)

    import importlib.util

    import numpy as np
    from scenarios.mlp import SIZES, shared_data

    import agrad

    agrad.use("numpy")
    x, t, params = shared_data()
    r = np.random.RandomState(1)
    v = [tuple(r.standard_normal(a.shape).astype(np.float32) for a in pair) for pair in params]
    ours = _agrad_calls(x, t, [tuple(pair) for pair in params], v)
    use_torch = not args.no_torch and importlib.util.find_spec("torch") is not None
    calls = {"agrad grad": ours[0], "agrad hvp": ours[1]}
    if use_torch:
        import torch

        torch.set_num_threads(args.threads)
        theirs = _torch_calls(x, t, params, v)
        problems = _check(ours, theirs)
        if problems:
            print("agrad and PyTorch disagree; nothing timed:", *problems, sep="\n  ")
            return 1
        calls.update({"torch grad": theirs[0], "torch vhp": theirs[1], "torch hvp": theirs[2]})
    rounds, per_round = (1, 2) if args.quick else (args.rounds, 5)
    medians = _interleaved(calls, rounds, per_round)

    sizes = "-".join(map(str, SIZES))
    load = os.getloadavg()[0]
    print(
        f"MLP {sizes} sigmoid, batch 100, float32; {args.threads} BLAS thread(s); "
        f"{rounds * per_round} interleaved calls each; load average {load:.2f}"
    )
    if use_torch:
        print(f"checked against PyTorch {torch.__version__}: gradient and hvp agree")
    else:
        print("PyTorch not used: nothing checked (pip install torch==2.13.0 for the CPU build)")
    for name, seconds in medians.items():
        print(f"  {name:<12} {seconds * 1e3:8.2f} ms")
    ratio = medians["agrad hvp"] / medians["agrad grad"]
    print(f"agrad hvp / grad: {ratio:.2f}x (target <= 3x: {'met' if ratio <= 3 else 'MISSED'})")
    if use_torch:
        base = medians["torch grad"]
        print(f"torch vhp / grad: {medians['torch vhp'] / base:.2f}x (reverse over reverse)")
        print(f"torch hvp / grad: {medians['torch hvp'] / base:.2f}x (double-backward trick)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
