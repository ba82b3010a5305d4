"""save_checkpoint / load_checkpoint in one process, on every backend (the two-process resume is
in test_mpi.py)."""

from __future__ import annotations

import os
import stat
import types

import numpy as np
import pytest

import agrad
import agrad.distributed as dist
import agrad.functions as F
from agrad import models, optimizers
from agrad.cuda import as_numpy

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
