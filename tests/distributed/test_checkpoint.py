"""save_checkpoint / load_checkpoint in one process, on every backend (the two-process resume is
in test_mpi.py)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

import agrad
import agrad.distributed as dist
import agrad.functions as F
from agrad import models, optimizers
from agrad.cuda import as_numpy

ROOT = Path(__file__).resolve().parents[2]
SOLO = types.SimpleNamespace(
    rank=0, size=1, barrier=lambda: None, bcast_obj=lambda obj, root=0: obj
)


def _trained(xp, steps: int = 2):
    agrad.seed(0)
    model = models.MLP((4, 3))
    opt = optimizers.Adam(alpha=0.1).setup(model)
    x = xp.reshape(xp.arange(6, dtype=xp.float32), (2, 3)) / 6
    for _ in range(steps):
        model.cleargrads()
        F.sum(model(x) ** 2).backward()
        opt.update()
    return model, opt


def test_checkpoint_restores_parameters_optimizer_state_and_extra_state(xp, tmp_path):
    model, opt = _trained(xp)
    path = tmp_path / "run.npz"
    dist.save_checkpoint(path, SOLO, model, opt, epoch=7, note="x")
    agrad.seed(5)
    fresh = models.MLP((4, 3))
    fresh_opt = optimizers.Adam(alpha=0.1).setup(fresh)
    state = dist.load_checkpoint(path, SOLO, fresh, fresh_opt)
    assert state == {"epoch": 7, "note": "x"}
    assert fresh_opt.t == opt.t == 2
    for (name, p), (_, q) in zip(model.named_params(), fresh.named_params()):
        assert q.backend is p.backend and q.dtype == p.dtype, name
        np.testing.assert_array_equal(as_numpy(q.data), as_numpy(p.data), err_msg=name)
        np.testing.assert_array_equal(as_numpy(fresh_opt.ms[q]), as_numpy(opt.ms[p]))
        np.testing.assert_array_equal(as_numpy(fresh_opt.vs[q]), as_numpy(opt.vs[p]))


def test_checkpoint_of_another_model_is_refused_by_name_and_nothing_changes(xp, tmp_path):
    model, opt = _trained(xp)
    dist.save_checkpoint(tmp_path / "run.npz", SOLO, model, opt)
    other = models.MLP((5, 3))
    other(xp.ones((1, 3), dtype=xp.float32))
    before = [as_numpy(p.data).copy() for p in other.params()]
    with pytest.raises(ValueError, match=r"l0/W: file \(3, 4\), model \(3, 5\)"):
        dist.load_checkpoint(tmp_path / "run.npz", SOLO, other)
    for p, b in zip(other.params(), before):
        np.testing.assert_array_equal(as_numpy(p.data), b)
    with pytest.raises(OSError, match=r"cannot read .*missing\.npz"):
        dist.load_checkpoint(tmp_path / "missing.npz", SOLO, other)


def test_checkpoint_file_follows_the_umask_and_leaves_no_temporary(tmp_path):
    model, opt = _trained(np, steps=1)
    previous = os.umask(0o027)
    try:
        dist.save_checkpoint(tmp_path / "run.npz", SOLO, model, opt)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "run.npz").stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.npz"]


def _rewritten(tmp_path, change):
    """A checkpoint of the trained model, with ``change(contents)`` applied to its arrays."""
    model, opt = _trained(np)
    path = tmp_path / "run.npz"
    dist.save_checkpoint(path, SOLO, model, opt)
    with np.load(path) as npz:
        contents = dict(npz)
    change(contents)
    np.savez(path, **contents)
    return path


def _fresh(xp, optimizer=optimizers.Adam):
    agrad.seed(5)
    model = models.MLP((4, 3))
    model(xp.ones((1, 3), dtype=xp.float32))
    opt = optimizer().setup(model)
    return model, opt


def _unchanged(model, opt, load):
    """Run ``load`` (which must raise) and check that nothing changed."""
    before = [as_numpy(p.data).copy() for p in model.params()]
    settings = {k: v for k, v in vars(opt).items() if isinstance(v, (int, float))}
    with pytest.raises((TypeError, ValueError)) as info:
        load()
    for p, b in zip(model.params(), before):
        np.testing.assert_array_equal(as_numpy(p.data), b)
    assert {k: v for k, v in vars(opt).items() if isinstance(v, (int, float))} == settings
    assert all(not store for store in vars(opt).values() if isinstance(store, dict))
    return str(info.value)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "text"])
def test_a_damaged_checkpoint_is_a_named_value_error(xp, tmp_path, damage):
    model, opt = _trained(np)
    path = tmp_path / "run.npz"
    dist.save_checkpoint(path, SOLO, model, opt)
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":  # inside the first member's compressed-or-stored bytes
        for k in range(40, len(data) - 200, 97):
            data[k] ^= 0xFF
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"not a checkpoint")
    path.write_bytes(bytes(data))
    fresh, fresh_opt = _fresh(xp)
    message = _unchanged(
        fresh, fresh_opt, lambda: dist.load_checkpoint(path, SOLO, fresh, fresh_opt)
    )
    assert "run.npz" in message


def test_another_optimizers_state_is_refused_before_anything_changes(xp, tmp_path):
    model, _ = _trained(np)
    momentum = optimizers.MomentumSGD().setup(model)
    model.cleargrads()
    F.sum(model(np.ones((2, 3), dtype=np.float32)) ** 2).backward()
    momentum.update()
    path = tmp_path / "run.npz"
    dist.save_checkpoint(path, SOLO, model, momentum)
    fresh, adam = _fresh(xp)
    message = _unchanged(fresh, adam, lambda: dist.load_checkpoint(path, SOLO, fresh, adam))
    assert "holds the state of a MomentumSGD optimizer, not of the Adam given" in message

    def older_file(contents):  # written before the class was recorded: the settings tell
        meta = json.loads(str(contents["meta"]))
        del meta["optimizer_class"]
        contents["meta"] = np.asarray(json.dumps(meta))

    path = _rewritten(tmp_path, older_file)
    fresh, momentum = _fresh(xp, optimizers.MomentumSGD)
    message = _unchanged(fresh, momentum, lambda: dist.load_checkpoint(path, SOLO, fresh, momentum))
    assert "MomentumSGD has no setting 't'" in message and "'ms'" in message


def test_a_string_array_in_the_last_parameter_is_refused_before_anything_changes(xp, tmp_path):
    def strings(contents):
        last = [k for k in contents if k.startswith("model/")][-1]
        contents[last] = np.full(contents[last].shape, "x")

    path = _rewritten(tmp_path, strings)
    fresh, opt = _fresh(xp)
    message = _unchanged(fresh, opt, lambda: dist.load_checkpoint(path, SOLO, fresh, opt))
    assert "holds strings" in message and "load_checkpoint" in message


@pytest.mark.parametrize(
    ("value", "error", "expected"),
    [
        (1e300, ValueError, "too large for the parameter's float32"),
        (1 + 2j, TypeError, "has dtype complex128 and cannot be cast safely"),
    ],
)
def test_values_that_do_not_fit_the_dtype_are_refused_as_load_weights_refuses(
    xp, tmp_path, value, error, expected
):
    def widen(contents):
        contents["model/l0/b"] = np.full(contents["model/l0/b"].shape, value)

    path = _rewritten(tmp_path, widen)
    fresh, opt = _fresh(xp)
    message = _unchanged(fresh, opt, lambda: dist.load_checkpoint(path, SOLO, fresh, opt))
    assert expected in message and "load_checkpoint" in message
    with pytest.raises(error):
        dist.load_checkpoint(path, SOLO, fresh, opt)


def test_optimizer_state_of_the_wrong_shape_is_refused(xp, tmp_path):
    def reshape(contents):
        contents["optimizer/ms/l0/b"] = np.zeros(7, dtype=np.float32)

    path = _rewritten(tmp_path, reshape)
    fresh, opt = _fresh(xp)
    message = _unchanged(fresh, opt, lambda: dist.load_checkpoint(path, SOLO, fresh, opt))
    assert "state ms/l0/b has shape (7,), its parameter (4,)" in message


def test_a_failed_save_is_raised_and_leaves_no_temporary(tmp_path):
    model, opt = _trained(np, steps=1)
    with pytest.raises(TypeError, match="JSON values"):
        dist.save_checkpoint(tmp_path / "run.npz", SOLO, model, opt, bad=object())
    lazy = models.MLP((2,))
    with pytest.raises(ValueError, match="not initialised yet"):
        dist.save_checkpoint(tmp_path / "run.npz", SOLO, lazy)
    assert list(tmp_path.iterdir()) == []


KILLER = """
import os, signal, sys, threading
import numpy as np
import agrad, agrad.distributed as dist
from agrad import models, optimizers
import agrad.backends.numpy as nb
comm = type("Solo", (), dict(rank=0, size=1, bcast_obj=lambda self, o, root=0: o))()
model = models.MLP((256, 256, 3))
model(np.ones((1, 256), dtype=np.float32))
opt = optimizers.Adam().setup(model)
savez = nb.host.savez
def savez_then_die(f, **arrays):  # killed with the temporary half written
    f.write(b"PK" * 1000)
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[2] == "kill":
    nb.host.savez = savez_then_die
for step in range(1 if sys.argv[2] != "loop" else 10**6):
    dist.save_checkpoint(sys.argv[1], comm, model, opt, step=1)
    if step == 0 and sys.argv[2] == "loop":
        print("saving", flush=True)
"""


def test_a_save_killed_midway_leaves_the_old_file_and_the_next_save_cleans_up(tmp_path):
    script = tmp_path / "save.py"
    script.write_text(KILLER)
    target = tmp_path / "ck" / "run.npz"
    target.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(mode):
        return subprocess.run(
            [sys.executable, str(script), str(target), mode],
            env=env,
            timeout=120,
            capture_output=True,
            text=True,
        )

    assert run("save").returncode == 0
    good = target.read_bytes()
    for _ in range(3):
        result = run("kill")
        assert result.returncode == -signal.SIGKILL, result.stderr
        assert target.read_bytes() == good  # the old checkpoint is intact
    # each killed save removed the one killed before it: one temporary is left
    left = sorted(p.name for p in target.parent.iterdir())
    assert len(left) == 2 and left[0].startswith(".run.npz.agrad-") and left[1] == "run.npz"
    rng = np.random.default_rng(0)
    for _ in range(4):  # killed from outside, at some moment of a loop of saves
        saver = subprocess.Popen(
            [sys.executable, str(script), str(target), "loop"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert saver.stdout.readline() == "saving\n"
            time.sleep(float(rng.uniform(0.0, 0.3)))
        finally:
            saver.kill()
            saver.wait(timeout=60)
            saver.stdout.close()
        _load_big(target)  # whatever moment it died, the file is a complete checkpoint
    assert run("save").returncode == 0
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.npz"]
    _load_big(target)


def _load_big(path):
    model = models.MLP((256, 256, 3))
    model(np.ones((1, 256), dtype=np.float32))
    assert dist.load_checkpoint(path, SOLO, model, optimizers.Adam().setup(model)) == {"step": 1}
