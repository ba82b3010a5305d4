"""agrad.jit against eager agrad and the same math by hand, in one process, 1 thread.

    python benchmarks/jit.py                 # every row, ~2 minutes
    python benchmarks/jit.py --quick         # shorter timings (the CI smoke test)
    python benchmarks/jit.py --only mlp --markdown

Each row builds the three steps (by hand, agrad eager, agrad.jit of the very same agrad step
function), checks that they agree, then times them in turns (hand, eager, jit, hand, ...) so
that a busy phase of the machine hits all three; the table gives the median of the per-turn
medians and the ratios against the hand-written step. "first call" is the first call of the
jitted step (the trace; the median over five fresh copies of the step) divided by one eager
call; "first replays" the median of the replays that run the interpreter, against the
hand-written step; "compiling replay" the costliest of the first replays (the one that writes
and compiles the program's code, or where XLA compiles), divided by one eager call. The JAX
rows compare with a hand-written
``jax.jit(jax.value_and_grad(...))`` SGD step; they are skipped where JAX is not installed.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS"):
    if _name == "XLA_FLAGS":
        os.environ.setdefault(
            _name, "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )
    else:
        os.environ[_name] = "1"
for _name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # see benchmarks/README.md
    os.environ.pop(_name, None)

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import time_step, to_numpy  # noqa: E402
from scenarios import deep, mlp, overhead  # noqa: E402

import agrad  # noqa: E402
import agrad.functions as F  # noqa: E402
from agrad.tracing.program import GENERATE_AFTER  # noqa: E402


def _synced(step, sync):
    def call():
        step()
        sync()

    return call


def _eager_call(step) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def _agree(a: dict, b: dict, rtol: float, atol: float, what: str) -> None:
    for key in a:
        np.testing.assert_allclose(
            np.asarray(a[key], dtype=np.float64),
            np.asarray(b[key], dtype=np.float64),
            rtol=rtol,
            atol=atol,
            err_msg=f"{what}: {key}",
        )


FIRST_CALLS = 5  # fresh jitted copies whose first call is timed: one sample is too noisy


def _jitted(step, sync):
    step = agrad.jit(step)
    return _synced(step, sync[0]) if sync else step  # JAX: wait for the step's result


def _row(name, unit, scale, steps, quick, tolerance, fresh):
    """Check, then time ``steps`` ({label: (step, collect)}) in turns; seconds * scale.

    ``fresh()`` makes another copy of the agrad step: the first calls of that many jitted
    copies give the first-call time (their median: the first trace in a process also pays
    for making the tracing machinery's classes, and one call is at the mercy of the machine).
    """
    checks = {}
    first = []
    built = {}
    for label, (step, collect, *sync) in steps.items():
        if label == "jit":
            step = _jitted(step, sync)
        elif sync:
            step = _synced(step, sync[0])
        # two calls each, so that every step compares after the same number of updates: the
        # jitted step traces twice where its first call creates state (gradients, slots)
        if label == "jit":
            first.append(_eager_call(step))  # the trace
        else:
            step()
        step()
        checks[label] = collect()
        built[label] = step
    for label in checks:
        if label != "hand":
            _agree(checks["hand"], checks[label], *tolerance, f"{name}, {label}")
    for _ in range(FIRST_CALLS - 1):
        made, _, *sync = fresh()
        first.append(_eager_call(_jitted(made, sync)))
    # the replays before code generation run the interpreter (built at the first of them);
    # the next one writes and compiles the code (on JAX, XLA compiles at the first replay)
    replays = [_eager_call(built["jit"]) for _ in range(GENERATE_AFTER + 1)]
    for step in built.values():
        time_step(step, quick, min_calls=2, budget_s=0.05 if quick else 0.2)  # warm up
    turns = {label: [] for label in built}
    for _ in range(2 if quick else 5):
        for label, step in built.items():
            samples = time_step(step, quick, min_calls=3, budget_s=0.1 if quick else 0.4)
            turns[label].append(statistics.median(samples))
    value = {label: statistics.median(v) * scale for label, v in turns.items()}
    first_ratio = statistics.median(first) * scale / value["eager"]  # against a warm eager call
    return {
        "name": name,
        "unit": unit,
        **value,
        "first": first_ratio,
        "early": statistics.median(replays[:-1]) * scale / value["hand"],
        "compiling": max(replays) * scale / value["eager"],
    }


def overhead_row(quick):
    x0 = overhead._input((1,))
    rounds = 200 // overhead.OPS_PER_ROUND
    steps = {
        "hand": overhead._numpy(x0, rounds),
        "eager": overhead._agrad(x0, rounds),
        "jit": overhead._agrad(x0, rounds),
    }
    name = "200 elementwise ops on (1,), fwd + bwd"
    return _row(
        name, "µs/op", 1e6 / 200, steps, quick, (1e-9, 1e-12), lambda: overhead._agrad(x0, rounds)
    )


def deep_row(quick):
    x0 = np.random.RandomState(0).uniform(-1.0, 1.0, size=(10,))
    steps = {
        "hand": deep._numpy(x0, 2000),
        "eager": deep._agrad(x0, 2000),
        "jit": deep._agrad(x0, 2000),
    }
    name = "tanh x2,000 on (10,), fwd + bwd"
    return _row(
        name, "µs/op", 1e6 / 2000, steps, quick, (1e-9, 1e-12), lambda: deep._agrad(x0, 2000)
    )


WIDE_SHAPE, WIDE_LAYERS = (100, 1000), 5


def _wide_numpy(x, w, y0):
    """The wide chain by hand: new arrays for every temporary, as NumPy code is written."""
    last = {}

    def step():
        y, saved = y0, []
        for _ in range(WIDE_LAYERS):
            t = np.tanh(y * w + x)
            saved.append((y, t))
            y = t * 0.5
        g, gw, gx = np.ones_like(y), np.zeros_like(w), np.zeros_like(x)
        for y_in, t in reversed(saved):
            g = g * 0.5 * (1 - t * t)
            gx += g
            gw += g * y_in
            g = g * w
        last.update(y=y, gw=gw, gx=gx)

    return step, lambda: {k: to_numpy(v) for k, v in last.items()}


def _wide_agrad(x, w, y0):
    X, W = agrad.Variable(x), agrad.Variable(w)
    last = {}

    def step():
        y = agrad.Variable(y0)
        for _ in range(WIDE_LAYERS):
            y = F.tanh(y * W + X) * 0.5
        X.cleargrad()
        W.cleargrad()
        F.sum(y).backward()
        last["y"] = y.data

    return step, lambda: {"y": to_numpy(last["y"]), "gw": to_numpy(W.grad), "gx": to_numpy(X.grad)}


def wide_row(quick):
    """Large elementwise temporaries: where a generated replay's kept buffers show."""
    rng = np.random.default_rng(0)
    x, w, y0 = (rng.standard_normal(WIDE_SHAPE, dtype=np.float32) for _ in range(3))
    steps = {"hand": _wide_numpy(x, w, y0), "eager": _wide_agrad(x, w, y0)}
    steps["jit"] = _wide_agrad(x, w, y0)
    name = f"{WIDE_LAYERS} x tanh(y*w + x)*0.5 on {WIDE_SHAPE}, float32, fwd + bwd"
    return _row(name, "ms/step", 1e3, steps, quick, (1e-5, 1e-6), lambda: _wide_agrad(x, w, y0))


def mlp_row(quick):
    x, t, params = mlp.shared_data()

    def agrad_step():
        return mlp.agrad_mlp(x, t, [(W.copy(), b.copy()) for W, b in params], "sigmoid")

    steps = {
        "hand": mlp.numpy_mlp(x, t, [(W.copy(), b.copy()) for W, b in params], "sigmoid"),
        "eager": agrad_step(),
        "jit": agrad_step(),
    }
    name = "MLP 784-1000-1000-10 SGD step, batch 100, float32"
    return _row(name, "ms/step", 1e3, steps, quick, (2e-4, 1e-6), agrad_step)


def _jax_steps(sizes, batch):
    import jax
    import jax.numpy as jnp

    x, t, params = mlp.shared_data(sizes=sizes, batch=batch)
    lr = mlp.LR

    def loss_fn(ps, x, t):
        a = x
        for W, b in ps[:-1]:
            a = jax.nn.sigmoid(a @ W + b)
        W, b = ps[-1]
        z = a @ W + b
        return -jnp.mean(jax.nn.log_softmax(z)[jnp.arange(z.shape[0]), t])

    @jax.jit
    def update(ps, x, t):
        loss, grads = jax.value_and_grad(loss_fn)(ps, x, t)
        return [(W - lr * gW, b - lr * gb) for (W, b), (gW, gb) in zip(ps, grads)], loss, grads

    jx, jt = jnp.asarray(x), jnp.asarray(t)
    state = {"p": [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]}

    def hand():
        state["p"], state["loss"], state["grads"] = update(state["p"], jx, jt)
        state["loss"].block_until_ready()

    def hand_collect():
        out = {"loss": np.asarray(state["loss"])}
        for i, (gW, gb) in enumerate(state["grads"]):
            out[f"gW{i}"], out[f"gb{i}"] = np.asarray(gW), np.asarray(gb)
        return out

    def agrad_step():
        from agrad.models import MLP
        from agrad.optimizers import SGD

        model = MLP([W.shape[1] for W, _ in params], activation=F.sigmoid)
        backend = agrad.get_backend("jax")
        for layer, (W, b) in zip(model.layers, params):
            layer.W.data, layer.b.data = backend.asarray(W), backend.asarray(b)
        ax, at = backend.asarray(x), backend.asarray(t)
        optimizer = SGD(lr).setup(model)
        last = {}

        def step():
            loss = F.softmax_cross_entropy(model(ax), at)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            last["loss"] = loss

        def collect():
            out = {"loss": to_numpy(last["loss"])}
            for i, layer in enumerate(model.layers):
                out[f"gW{i}"], out[f"gb{i}"] = to_numpy(layer.W.grad), to_numpy(layer.b.grad)
            return out

        def sync():
            last["loss"].data.block_until_ready()

        return step, collect, sync

    return {"hand": (hand, hand_collect), "eager": agrad_step(), "jit": agrad_step()}, agrad_step


def jax_rows(quick):
    try:
        agrad.get_backend("jax").require()
    except agrad.BackendUnavailableError as exc:
        print(f"skipping the JAX rows: {exc}", file=sys.stderr)
        return []
    rows = []
    for sizes, batch, label in (
        ((784, 1000, 1000, 10), 100, "JAX backend: MLP 784-1000-1000-10 SGD step, batch 100"),
        ((2, 100, 100, 3), 30, "JAX backend: MLP 2-100-100-3, batch 30 (the demo's scale)"),
    ):
        steps, fresh = _jax_steps(sizes, batch)
        rows.append(_row(label, "ms/step", 1e3, steps, quick, (2e-4, 1e-6), fresh))
    return rows


def memory_row(quick):
    """Peak traced memory of one step of MLP 784-2000-2000-10, batch 500 (the Core v2 MLP),
    above what there was before the first call: what a step holds between calls (gradients,
    a generated replay's kept buffers) counts, as well as what it allocates while it runs."""
    x, t, params = mlp.shared_data(sizes=(784, 2000, 2000, 10), batch=500)
    peaks = {}
    for label in ("eager", "interpreted", "generated"):
        tracemalloc.start()
        step, _ = mlp.agrad_mlp(x, t, [(W.copy(), b.copy()) for W, b in params], "sigmoid")
        base = tracemalloc.get_traced_memory()[0]
        if label != "eager":
            step = agrad.jit(step)
        step()
        if label == "interpreted":  # the first call: the step run eagerly while it is recorded
            peaks["first call"] = (tracemalloc.get_traced_memory()[1] - base) / 2**20
        step()  # past the traces
        if label == "generated":  # past the interpreted replays and the one that generates
            for _ in range(GENERATE_AFTER + 1):
                step()
        gc.collect()  # (what the traces left in reference cycles: the collector's next pass)
        tracemalloc.reset_peak()
        step()
        peaks[label] = (tracemalloc.get_traced_memory()[1] - base) / 2**20
        tracemalloc.stop()
    return peaks


ROWS = {
    "overhead": overhead_row,
    "deep": deep_row,
    "wide": wide_row,
    "mlp": mlp_row,
    "jax": jax_rows,
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--only", action="append", choices=[*ROWS, "memory"], help="rows to run")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    chosen = args.only or [*ROWS, "memory"]
    rows = []
    for key in chosen:
        if key == "memory":
            continue
        found = ROWS[key](args.quick)
        rows += found if isinstance(found, list) else [found]
    header = (
        "| case | unit | by hand | agrad eager | agrad.jit | eager/hand | jit/hand "
        "| first call / eager call | first replays / hand | compiling replay / eager call |"
    )
    print(header)
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        print(
            f"| {r['name']} | {r['unit']} | {r['hand']:.3g} | {r['eager']:.3g} | {r['jit']:.3g} "
            f"| {r['eager'] / r['hand']:.2f}x | {r['jit'] / r['hand']:.2f}x | {r['first']:.2f}x "
            f"| {r['early']:.2f}x | {r['compiling']:.2f}x |"
        )
    if "memory" in chosen:
        peaks = memory_row(args.quick)
        print(
            f"\nmemory, peak traced MiB of one step of MLP 784-2000-2000-10 batch 500: "
            f"eager {peaks['eager']:.1f}, agrad.jit interpreted {peaks['interpreted']:.1f} "
            f"({peaks['interpreted'] / peaks['eager']:.2f}x), generated {peaks['generated']:.1f} "
            f"({peaks['generated'] / peaks['eager']:.2f}x); the first call (the trace) "
            f"{peaks['first call']:.1f} ({peaks['first call'] / peaks['eager']:.2f}x)"
        )
    print("\nall steps agreed with the hand-written ones")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
