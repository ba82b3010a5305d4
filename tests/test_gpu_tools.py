"""The GPU tools, tested where there is no GPU: the check must never pass without proving anything.

``tools/gpu_check.sh`` decides from pytest's JUnit report (``tools/gpu_test_verdict.py``); the
benchmark and the distributed check have CPU stand-ins for their GPU code paths.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import agrad

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_path() -> str:
    """This checkout first, then what the caller had (gpu_check.sh puts carried wheels there)."""
    return os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))


_USABLE, _WHY = agrad.get_backend("cupy").probe()
sys.path.insert(0, os.path.join(ROOT, "tools"))
gpu_test_verdict = importlib.import_module("gpu_test_verdict")
sys.path.remove(os.path.join(ROOT, "tools"))


# -- the verdict on a CuPy test run ------------------------------------------------------------
def _junit(tmp_path: Path, cases: str) -> Path:
    path = tmp_path / "junit.xml"
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        + textwrap.dedent(cases)
        + "</testsuite></testsuites>"
    )
    return path


SKIP = '<skipped type="pytest.skip" message="needs a CUDA GPU (cupy backend not usable)"/>'


def test_verdict_refuses_a_run_where_everything_skipped(tmp_path):
    report = _junit(
        tmp_path,
        f"""
        <testcase classname="tests.functions.test_elementwise" name="test_exp[cupy]">{SKIP}
        </testcase>
        <testcase classname="tests.test_gpu" name="test_device_name_and_gpu_flag">{SKIP}
        </testcase>
        <testcase classname="tests.test_core" name="test_backward"/>
        """,
    )
    proven, lines = gpu_test_verdict.verdict(report)
    text = "\n".join(lines)
    assert not proven, text
    assert "no test ran on CuPy (0 executed)" in text
    assert "GPU-only test skipped: test_device_name_and_gpu_flag" in text


def test_verdict_refuses_a_skipped_gpu_only_test_even_when_cupy_tests_ran(tmp_path):
    report = _junit(
        tmp_path,
        f"""
        <testcase classname="tests.functions.test_elementwise" name="test_exp[cupy]"/>
        <testcase classname="tests.test_gpu" name="test_float16_forward_backward">{SKIP}
        </testcase>
        <testcase classname="tests.test_gpu" name="test_device_name_and_gpu_flag"/>
        """,
    )
    proven, lines = gpu_test_verdict.verdict(report)
    assert not proven
    assert any("GPU-only test skipped: test_float16_forward_backward" in line for line in lines)


def test_verdict_refuses_failures(tmp_path):
    report = _junit(
        tmp_path,
        """
        <testcase classname="tests.functions.test_elementwise" name="test_exp[cupy]">
          <failure message="boom"/></testcase>
        <testcase classname="tests.functions.test_elementwise" name="test_log[cupy-float32]"/>
        <testcase classname="tests.test_gpu" name="test_device_name_and_gpu_flag"/>
        """,
    )
    proven, lines = gpu_test_verdict.verdict(report)
    assert not proven
    assert any("1 failed and 0 errors" in line for line in lines)


def test_verdict_accepts_a_run_that_proved_something(tmp_path):
    report = _junit(
        tmp_path,
        """
        <testcase classname="tests.functions.test_elementwise" name="test_exp[cupy]"/>
        <testcase classname="tests.functions.test_conv" name="test_conv2d[cupy-float64-1]">
          <skipped message="Skipped: CuPy lacks float16 atomics"/></testcase>
        <testcase classname="tests.test_gpu" name="test_device_name_and_gpu_flag"/>
        <testcase classname="tests.test_gpu_tools" name="test_something">{SKIP}</testcase>
        """.replace("{SKIP}", SKIP),
    )
    proven, lines = gpu_test_verdict.verdict(report)
    assert proven, lines
    assert any("cupy skip x1: CuPy lacks float16 atomics" in line for line in lines)


def test_verdict_on_this_machines_real_gpu_test_run(tmp_path):
    # the vacuous pass the issue found, reproduced: on a machine without a usable CuPy, pytest
    # exits 0 with every GPU test skipped; the verdict must call that unproven
    if _USABLE:
        pytest.skip("this machine has a usable CUDA GPU, so its GPU tests run")
    report = tmp_path / "junit.xml"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py",
         f"--junitxml={report}"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr  # pytest alone calls it a pass
    proven, lines = gpu_test_verdict.verdict(report)
    assert not proven
    assert any("no test ran on CuPy" in line for line in lines), lines


def test_gpu_check_without_a_gpu_exits_3_with_the_reason_and_a_log(tmp_path):
    if _USABLE:
        pytest.skip("this machine has a usable CUDA GPU: the check would run for minutes")
    out = tmp_path / "out"
    out.mkdir()
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "OUT": str(out),
        "GPU_CHECK_LOG": str(tmp_path / "gpu_check.log"),  # not into the checkout
    }
    done = subprocess.run(
        ["bash", os.path.join(ROOT, "tools", "gpu_check.sh")],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    log = (out / "gpu_check.log").read_text()
    assert log.startswith("commit ")
    assert f"NO USABLE CUDA DEVICE: agrad's cupy backend is not usable here: {_WHY}" in log
    assert "gpu_check: OK" not in log
    assert log == (tmp_path / "gpu_check.log").read_text()


# -- the GPU benchmark's code paths, on the CPU ------------------------------------------------
def _run_benchmark(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": _python_path()}
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )


def test_gpu_benchmark_runs_emulated_on_the_cpu():
    result = _run_benchmark("--emulate-on-cpu", "--quick", "--only", "memory", "--no-torch")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "device: cuda-emulated" in output
    assert "agrad-cupy (emulated)" in output and "cupy-hand (emulated)" in output
    assert "all libraries agree on every checked result" in output
    assert "memory peak, MLP 784-2000-2000-10 b500: agrad/cupy-hand (emulated) <= 1.15x" in output


def test_gpu_benchmark_without_a_gpu_says_why_and_exits_3():
    if _USABLE:
        pytest.skip("this machine has a usable CUDA GPU, so there is no refusal to see")
    result = _run_benchmark("--device", "cuda", "--quick", "--only", "mlp")
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"no usable CUDA device, nothing measured: {_WHY}" in result.stdout


def test_benchmark_timing_synchronises_around_every_clock_read(monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        common = importlib.import_module("common")
    finally:
        sys.path.remove(os.path.join(ROOT, "benchmarks"))
    device = common.Device("cuda-emulated")
    monkeypatch.setattr(common, "DEVICE", device)
    events: list[str] = []
    monkeypatch.setattr(device, "sync", lambda: events.append("sync"))
    samples = common.time_step(lambda: events.append("step"), quick=True, min_calls=3, budget_s=0)
    assert len(samples) == 3
    # every step is followed by a sync before its clock read, and the first clock by one too
    assert events == ["sync", "step", "sync", "step", "sync", "step", "sync"]


def test_distributed_check_runs_emulated_on_the_cpu():
    pytest.importorskip("mpi4py.MPI", reason="needs mpi4py and an MPI library (agrad[mpi])")
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "gpu_distributed_check.py"),
         "--emulate-on-cpu"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": _python_path()},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mpi: data-parallel step: ok" in done.stdout
    assert "distributed check: 2 of 2 checks passed" in done.stdout
