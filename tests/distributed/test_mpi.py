"""Data-parallel training under ``mpiexec -n 2`` on this machine (loopback)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

import agrad
import agrad.distributed as dist

WORKER = Path(__file__).with_name("mpi_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _mpiexec() -> str | None:
    beside_python = Path(sys.executable).with_name("mpiexec")
    return str(beside_python) if beside_python.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
LAUNCHER_GRACE = 10  # seconds mpiexec may outlive its ranks before `launch` ends it
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
pytestmark = pytest.mark.skipif(
    not (HAVE_MPI4PY and MPIEXEC),
    reason="needs MPI: pip install 'agrad[mpi]' (mpi4py and an mpiexec on PATH)",
)


def launch(
    n: int, *args: object, timeout: float = 90, script: Path = WORKER, **variables: str
) -> subprocess.CompletedProcess:
    env = {
        **variables,
        **os.environ,
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_btl": "self,tcp",  # loopback only; no shared-memory segment size surprises
        "OMPI_MCA_mpi_yield_when_idle": "1",  # a waiting rank must not starve a busy one
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [MPIEXEC, "-n", str(n), "--oversubscribe", sys.executable, str(script)]
    command += [str(a) for a in args]
    # a session of its own, so that a job that outlives its timeout is reported process by
    # process and then ended whole (killing mpiexec alone would leave its ranks running)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as job:
        deadline = time.monotonic() + timeout
        alone_since = None
        ranks_seen = False
        while True:
            try:
                stdout, stderr = job.communicate(timeout=1)  # (retrying loses no output)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            pids = [int(p) for p in _session_processes(job.pid, "pid=").split()]
            ranks_seen = ranks_seen or bool(set(pids) - {job.pid})
            if ranks_seen and set(pids) <= {job.pid}:
                # Open MPI 5's launcher has been seen to hang once its ranks were gone after
                # an MPI_Abort (futex wait, about one run in sixty under load): the job is
                # over, and its exit status lost
                alone_since = alone_since or now
                if now - alone_since > LAUNCHER_GRACE:
                    os.kill(job.pid, signal.SIGKILL)
                    stdout, stderr = job.communicate()
                    note = f"[launch] mpiexec outlived its ranks by {LAUNCHER_GRACE} s: killed"
                    return subprocess.CompletedProcess(
                        command, -signal.SIGKILL, stdout, f"{stderr}\n{note}\n"
                    )
            else:
                alone_since = None
            if now > deadline:
                listing = _session_processes(job.pid, "pid,ppid,stat,etime,wchan:20,args")
                for pid in pids:  # (the ranks have process groups of their own)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                stdout, stderr = job.communicate()
                pytest.fail(
                    f"mpiexec did not end within {timeout} s; its processes then:\n{listing}\n"
                    f"stdout:\n{stdout}\nstderr:\n{stderr}"
                )
    return subprocess.CompletedProcess(command, job.returncode, stdout, stderr)


def _session_processes(session: int, columns: str) -> str:
    return subprocess.run(
        ["ps", "-ww", "-s", str(session), "-o", columns], capture_output=True, text=True
    ).stdout


def check(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.mark.mpi
def test_two_processes_train_like_one_on_the_whole_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    check(launch(1, "single", one))
    check(launch(2, "equivalence", two))
    with np.load(one / "params.npz") as ref_file, np.load(two / "params.npz") as par_file:
        reference, parallel = dict(ref_file), dict(par_file)
    assert sorted(reference) == sorted(parallel) and reference
    for name in reference:
        assert parallel[name].dtype == reference[name].dtype == np.float32
        np.testing.assert_allclose(
            parallel[name], reference[name], rtol=1e-4, atol=1e-5, err_msg=name
        )


@pytest.mark.mpi
def test_collectives(tmp_path):
    check(launch(2, "collectives", tmp_path))
    ranks = [json.loads((tmp_path / f"collectives.{r}.json").read_text()) for r in range(2)]
    for result in ranks:
        assert result["allreduce_sum"] == [3.0, 3.0, 3.0]
        assert result["allreduce_dtype"] == "float32"
        assert result["allreduce_mean"] == [0.5, 0.5]
        assert result["bcast"] == [0.0, 1.0, 2.0, 3.0]
        assert result["grad_means"] == [1.5]  # mean of 1 and 2, every element
        assert result["grad_dtypes"] == ["float32"] * 4 + ["float64"]
        assert result["unused_grad"] is True  # no process had one: it stays None
        assert result["only_rank0"] == [2.0, 2.0]  # (4 + 0) / 2
        # one collective per dtype per step, not one per parameter
        assert sorted(result["collective_calls"]) == ["float32", "float64"]
    assert ranks[0]["params"] == ranks[1]["params"]
    for r in ranks:
        assert r["allgather"] == [[[1, 2], "int64", [[0, 0]]], [[2, 2], "int64", [[1, 1], [1, 1]]]]
        assert r["allgather_strict"] == ["array_api_strict", "array_api_strict"]
        assert r["allreduce_obj"] == [3, 1.5, 1, 0]
        assert r["allgather_obj"] == [0, 10]
        assert "rank 0: float32, rank 1: float64" in r["allgather_dtypes"]
    assert ranks[0]["gather"] is None and ranks[1]["gather"] == [[0.0], [1.5]]
    assert ranks[0]["gather_obj"] == [{"rank": 0}, {"rank": 1}] and ranks[1]["gather_obj"] is None


@pytest.mark.mpi
def test_gradient_exchange_buffers_float16_and_buckets(tmp_path):
    check(launch(2, "exchange", tmp_path))
    ranks = [json.loads((tmp_path / f"exchange.{r}.json").read_text()) for r in range(2)]
    for r in ranks:
        assert r["step0"] == [[[1.5] * 2] * 3, [1.5] * 4]
        assert r["step1"] == [[[2.5] * 2] * 3, [2.5] * 4]
        assert r["same_buffer"] and r["writable"]  # views of one persistent, writable buffer
        assert r["strict"] == ["array_api_strict", "float32", [1.5, 1.5, 1.5]]
        assert r["float16_dtype"] == "float32"
        third = np.float32(np.float16(np.float32(1 / 3) / 2) * 2)  # through float16, scaled
        np.testing.assert_allclose(r["float16"], [third, 1000.5, 1.0], rtol=1e-3)
        assert r["buckets"] == 4
        assert r["any_order"] == [[5.0 + k + 1] * (k + 1) for k in range(4)]
        # MLP (5, 3) has 4 parameters, one bucket each, "extra" one more (the last bucket,
        # always sent by update()); step 1 builds the buffers, then the others leave during
        # backward
        assert r["started_in_all"] == [5, 5, 5]
        assert "changed after it was sent" in r["stale"] and "no_sync" in r["stale"]
        assert r["no_sync"] == "ok"
        assert r["exchanges_kept"] == [2, 2]
        assert r["started_during_backward"] == [0, 4, 4]


@pytest.mark.mpi
def test_scatter_dataset_gives_equal_shards_that_use_every_item(tmp_path):
    check(launch(2, "scatter", tmp_path))
    shards = [json.loads((tmp_path / f"scatter.{r}.json").read_text()) for r in range(2)]
    for shuffle in ("False", "True"):
        a, b = shards[0][shuffle], shards[1][shuffle]
        assert len(a) == len(b) == 150
        assert not set(a) & set(b)
        assert sorted(a + b) == list(range(300))
    assert shards[0]["True"] != list(range(150))
    # 7 items, 2 processes: 4 each, the last shard padded with the first item
    assert shards[0]["pad"] == [0, 1, 2, 3] and shards[1]["pad"] == [4, 5, 6, 0]
    assert shards[0]["pad_len"] == shards[1]["pad_len"] == 4
    assert shards[0]["drop"] == [0, 1, 2] and shards[1]["drop"] == [3, 4, 5]
    assert shards[0]["one"] == [0] and shards[1]["one"] == [0]  # fewer items than processes


@pytest.mark.mpi
def test_evaluator_averages_metrics_and_batchnorm_statistics_are_synced(tmp_path):
    check(launch(2, "evaluator", tmp_path))
    ranks = [json.loads((tmp_path / f"evaluator.{r}.json").read_text()) for r in range(2)]
    for r in ranks:
        assert r["differed"] and r["bcast_is_rank0"]
        assert r["allreduce_is_mean"] == [True, True]
        assert r["dtype"] == "float32"
        assert r["model_size"] == r["exchange_size"] + 2  # avg_mean, avg_var
        assert r["metrics"] == {"loss": 3.0, "n": 4.0}  # (2 + 4) / 2
        assert r["synced"][0] == r["synced"][1]
        assert "rank 0 reports ['m0'], rank 1 reports ['m1']" in r["mismatch"]


@pytest.mark.mpi
def test_resumed_training_equals_uninterrupted_training(tmp_path):
    check(launch(2, "uninterrupted", tmp_path))
    check(launch(2, "resume_first", tmp_path))
    check(launch(2, "resume_second", tmp_path))
    with np.load(tmp_path / "uninterrupted.npz") as a, np.load(tmp_path / "resumed.npz") as b:
        whole, resumed = dict(a), dict(b)
    assert sorted(whole) == sorted(resumed) and any("avg_mean" in k for k in whole)
    for name in whole:
        assert resumed[name].dtype == whole[name].dtype
        np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)


@pytest.mark.mpi
def test_checkpoint_failures_on_any_rank_are_raised_on_every_rank(tmp_path):
    check(launch(2, "checkpoint_errors", tmp_path, timeout=90))
    ranks = [json.loads((tmp_path / f"checkpoint_errors.{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]  # the same error, word for word, on both processes
    r = ranks[0]
    assert r["saved"] == r["ok"] == ["ok", ""]
    assert r["truncated"][0] == "ValueError" and "truncated.npz" in r["truncated"][1]
    assert "damaged" in r["truncated"][1]
    assert r["missing"][0] == "FileNotFoundError" and "no.npz" in r["missing"][1]
    assert r["rank1_model"][0] == "ValueError"
    assert "l0/W: file (3, 4), model (3, 5)" in r["rank1_model"][1]
    assert "(on rank 1)" in r["rank1_model"][1]
    assert "state of a MomentumSGD optimizer, not of the Adam given" in r["adam"][1]
    assert r["lazy_save"][0] == "ValueError" and "not initialised yet" in r["lazy_save"][1]


@pytest.mark.mpi
def test_join_lets_ranks_with_uneven_data_finish_in_step(tmp_path):
    check(launch(2, "uneven_join", tmp_path, timeout=120))
    ranks = [json.loads((tmp_path / f"uneven_join.{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["params"] == ranks[1]["params"]  # the rank that joined early kept in step
    for got, want in zip(ranks[0]["params"], ranks[0]["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.mpi
@pytest.mark.parametrize("scenario", ["uneven_no_join", "exit_zero_midway"])
def test_a_rank_that_stops_early_is_an_error_on_the_others_within_the_timeout(tmp_path, scenario):
    # 3 s instead of the default 300 s; the subprocess timeout stops the test if it hangs
    result = launch(2, scenario, tmp_path, timeout=90, AGRAD_DISTRIBUTED_TIMEOUT="3")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "rank 0 of 2: allreduce did not complete within 3 s" in output
    assert "optimizer.join()" in output


@pytest.mark.mpi
def test_an_exception_on_one_rank_aborts_the_job(tmp_path):
    result = launch(2, "abort", tmp_path, timeout=60)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "boom on rank 1" in output
    assert "rank 1 of 2 failed" in output


@pytest.mark.mpi
def test_a_stalled_mpi_abort_still_ends_the_job(tmp_path):
    # the stalled Abort sleeps 600 s: only the kernel's alarm, 1 s after it, ends that rank
    # within launch's timeout
    result = launch(2, "abort_stalls", tmp_path, timeout=60)
    assert result.returncode != 0
    assert "rank 1 of 2 failed" in result.stdout + result.stderr


@pytest.mark.mpi
def test_sys_exit_on_one_rank_ends_the_job(tmp_path):
    result = launch(2, "exit_midway", tmp_path, timeout=60)
    assert result.returncode != 0
    assert "rank 1 of 2 called sys.exit(3)" in result.stdout + result.stderr


@pytest.mark.mpi
@pytest.mark.parametrize(
    "scenario, expected",
    [
        ("mismatch", "rank 0 'l0/W' shape (4, 3) float32, rank 1 'l0/W' shape (5, 3) float32"),
        ("mismatch_count", "rank 0 has 4 parameters, rank 1 has 6"),
    ],
)
def test_different_models_on_different_ranks_are_named(tmp_path, scenario, expected):
    result = launch(2, scenario, tmp_path, timeout=60)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "the processes' models differ" in output
    assert expected in output


@pytest.mark.mpi
def test_example_runs_on_two_processes(tmp_path):
    example = ROOT / "examples" / "train_distributed.py"
    result = launch(2, "--quick", script=example)
    check(result)
    assert "(2 processes, mpi)" in result.stdout and "trained in" in result.stdout


def test_unknown_communicator_name():
    with pytest.raises(ValueError, match="known: mpi, nccl, auto"):
        dist.create_communicator("gloo")


def test_nccl_engine_refuses_a_cupy_built_without_nccl():
    from agrad.distributed.nccl import nccl_module

    class CupyWithoutNccl:
        def nccl(self):
            return types.SimpleNamespace(available=False)

    with pytest.raises(ImportError, match="available is False"):
        nccl_module(CupyWithoutNccl())


def test_bad_communicator_options_are_named(monkeypatch):
    monkeypatch.delenv("AGRAD_DISTRIBUTED_TIMEOUT", raising=False)
    comm = types.SimpleNamespace(Get_rank=lambda: 0, Get_size=lambda: 1)
    with pytest.raises(ValueError, match=r"allreduce_grad_dtype must be one of .* not int8"):
        dist.Communicator(comm, allreduce_grad_dtype="int8")
    with pytest.raises(ValueError, match="bucket_cap_mb must be a positive number, not 0"):
        dist.Communicator(comm, bucket_cap_mb=0)
    for bad in (0, -1, "soon", True, float("inf")):
        with pytest.raises(ValueError, match=r"timeout must be a positive number of seconds"):
            dist.Communicator(comm, timeout=bad)
    assert dist.Communicator(comm, timeout=None).timeout is None
    assert dist.Communicator(comm).timeout == 300.0
    monkeypatch.setenv("AGRAD_DISTRIBUTED_TIMEOUT", "2.5")
    assert dist.Communicator(comm).timeout == 2.5
    monkeypatch.setenv("AGRAD_DISTRIBUTED_TIMEOUT", "none")
    assert dist.Communicator(comm).timeout is None
    monkeypatch.setenv("AGRAD_DISTRIBUTED_TIMEOUT", "-3")
    with pytest.raises(ValueError, match="AGRAD_DISTRIBUTED_TIMEOUT must be a positive"):
        dist.Communicator(comm)


def test_nccl_needs_a_gpu():
    if agrad.get_backend("cupy").available:
        pytest.skip(
            "this machine has a CUDA GPU; the NCCL engine is exercised by tools/gpu_check.sh"
        )
    with pytest.raises(agrad.BackendUnavailableError):
        dist.create_communicator("nccl")
