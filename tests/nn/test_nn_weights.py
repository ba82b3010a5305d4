"""save_weights / load_weights: host files, atomic writes, checked loads, any backend."""

from __future__ import annotations

import os

import numpy as np
import pytest

import agrad
import agrad.layers as L
from agrad.backends.numpy import host
from agrad.cuda import as_numpy
from agrad.models import MLP


def _other(name):
    other = "array_api_strict" if name != "array_api_strict" else "numpy"
    if not agrad.get_backend(other).available:
        pytest.skip(f"{other} not usable")
    return other


def _trained_mlp(xp):
    model = MLP((4, 3))
    model(xp.ones((2, 2), dtype=xp.float32))
    return model


def test_round_trip_between_backends(xp, tmp_path):
    here = agrad.current_backend().name
    other = _other(here)
    model = _trained_mlp(xp)
    path = tmp_path / "weights"
    model.save_weights(path)
    assert (tmp_path / "weights.npz").exists()  # .npz appended, as NumPy does
    assert {p.backend.name for p in model.params()} == {here}  # DeZero moves it to the CPU
    with np.load(tmp_path / "weights.npz") as npz:
        assert list(npz.files) == ["l0/W", "l0/b", "l1/W", "l1/b"]

    with agrad.using_backend(other):
        loaded = _trained_mlp(agrad.get_backend(other).xp)  # initialised on the other backend
    loaded.load_weights(tmp_path / "weights.npz")
    for (k1, p1), (k2, p2) in zip(model.named_params(), loaded.named_params()):
        assert k1 == k2 and p2.backend.name == other and p2.dtype == p2.xp.float32
        np.testing.assert_array_equal(as_numpy(p1), as_numpy(p2))

    # and back: saved from the other backend, loaded here
    loaded.save_weights(tmp_path / "back.npz")
    fresh = MLP((4, 3))  # lazy: parameters take the file's shapes, on the default backend
    fresh.load_weights(tmp_path / "back")
    assert {p.backend.name for p in fresh.params()} == {here}
    x = xp.asarray(np.random.rand(3, 2).astype(np.float32))
    np.testing.assert_allclose(as_numpy(fresh(x)), as_numpy(model(x)), rtol=1e-6)


def test_load_reports_missing_extra_and_wrong_shapes(tmp_path):
    source = MLP((4, 3))
    source(np.ones((1, 2), dtype=np.float32))
    source.save_weights(tmp_path / "w.npz")

    other = MLP((5, 3, 2))
    other(np.ones((1, 2), dtype=np.float32))
    before = [as_numpy(p).copy() for p in other.params()]
    with pytest.raises(L.WeightsMismatchError) as info:
        other.load_weights(tmp_path / "w.npz")
    message = str(info.value)
    assert "missing from the file: l2/W, l2/b" in message
    assert "l0/W: file (2, 4), layer (2, 5)" in message
    assert "l1/W: file (4, 3), layer (5, 3)" in message
    # nothing was loaded
    for p, old in zip(other.params(), before):
        np.testing.assert_array_equal(as_numpy(p), old)

    smaller = MLP((4,))
    with pytest.raises(L.WeightsMismatchError, match=r"not in the layer: l1/W, l1/b"):
        smaller.load_weights(tmp_path / "w.npz")
    assert isinstance(L.WeightsMismatchError("x"), ValueError)


def test_save_refuses_uninitialised_parameters(tmp_path):
    with pytest.raises(ValueError, match=r"l0/W.*not initialised"):
        MLP((3,)).save_weights(tmp_path / "w.npz")
    assert not list(tmp_path.iterdir())


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    model = _trained_mlp(np)
    path = tmp_path / "w.npz"
    model.save_weights(path)
    old = path.read_bytes()

    def broken(file, **arrays):
        file.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(host, "savez_compressed", broken)
    for p in model.params():
        p.data = p.data + 1.0
    with pytest.raises(KeyboardInterrupt):
        model.save_weights(path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["w.npz"]  # no temporary left behind


def test_batchnorm_statistics_are_saved(tmp_path, xp):
    bn = L.BatchNorm()
    bn(xp.asarray(np.random.rand(6, 2).astype(np.float32)))
    bn.save_weights(tmp_path / "bn.npz")
    again = L.BatchNorm()
    again.load_weights(tmp_path / "bn.npz")
    np.testing.assert_array_equal(as_numpy(again.avg_mean), as_numpy(bn.avg_mean))
    np.testing.assert_array_equal(as_numpy(again.avg_var), as_numpy(bn.avg_var))
