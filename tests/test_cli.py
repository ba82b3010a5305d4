"""The ``agrad`` command line: help, version, usage errors, ``info``'s install hints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import agrad
from agrad import demo
from agrad.__main__ import info_lines, main

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AGRAD_BACKEND", None)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def test_version_flag():
    done = _run("-m", "agrad", "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"agrad {agrad.__version__}"


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: agrad")
    assert "info" in out and "demo" in out and "--version" in out


@pytest.mark.parametrize("argv", [["--help"], ["info", "--help"], ["demo", "--help"]])
def test_help_is_plain_text(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and ":func:" not in out and ":class:" not in out, out


def test_demo_help_names_agrad_demo_as_its_prog(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: agrad demo ")
    for name in agrad.known_backends():
        assert name in out  # --backend lists every backend


def test_module_demo_help_keeps_its_own_prog(capsys):
    with pytest.raises(SystemExit):
        demo.main(["--help"])
    assert capsys.readouterr().out.startswith("usage: python -m agrad.demo ")


@pytest.mark.parametrize("command", [["-m", "agrad", "demo"], ["-m", "agrad.demo"]])
def test_unknown_backend_is_a_usage_error_not_a_traceback(command):
    done = _run(*command, "--backend", "tensorflow", "--epochs", "1")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr, done.stderr
    assert "argument --backend: unknown agrad backend 'tensorflow'" in done.stderr
    assert "known backends: " + ", ".join(agrad.known_backends()) in done.stderr


def test_demo_backend_takes_aliases():
    args = demo.build_parser().parse_args(["--backend", "strict"])
    assert args.backend == "array_api_strict"


def test_info_gives_an_install_hint_for_each_unusable_backend(monkeypatch):
    # made unusable whatever this machine has, so the test checks the hint everywhere
    for name in ("cupy", "array_api_strict", "torch", "jax", "dask"):
        monkeypatch.setattr(
            agrad.get_backend(name), "_probe", (False, f"ModuleNotFoundError: No module {name}")
        )
    lines = info_lines()
    for name in ("cupy", "array_api_strict", "torch", "jax", "dask"):
        at = next(i for i, line in enumerate(lines) if line.strip().startswith(name + " "))
        assert "not usable" in lines[at]
        hint = lines[at + 1]
        assert hint.strip().startswith("to use it: install"), (name, hint)
        assert "pip install" in hint


def test_info_command(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"agrad {agrad.__version__}") and "backends:" in out
