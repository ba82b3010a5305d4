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


def _arrays_of(model):
    return {key: as_numpy(p).copy() for key, p in model.named_params()}


def _write_npz(path, model, **replace):
    arrays = _arrays_of(model)
    arrays.update(replace)
    np.savez(path, **arrays)


def test_float64_file_keeps_a_float32_model_float32(xp, tmp_path):
    """The file's dtype used to replace the parameter's (a float32 model turned float64)."""
    model = _trained_mlp(xp)
    path = tmp_path / "w64.npz"
    np.savez(path, **{k: v.astype(np.float64) + 0.25 for k, v in _arrays_of(model).items()})
    expected = {
        k: (v.astype(np.float64) + 0.25).astype(np.float32) for k, v in _arrays_of(model).items()
    }
    model.load_weights(path)
    for key, p in model.named_params():
        assert p.dtype == xp.float32, key
        np.testing.assert_array_equal(as_numpy(p), expected[key])


def test_lazy_parameters_take_their_layers_dtype(xp, tmp_path):
    path = tmp_path / "w64.npz"
    np.savez(path, **{k: v.astype(np.float64) for k, v in _arrays_of(_trained_mlp(xp)).items()})
    fresh = MLP((4, 3))  # W not created yet: Linear's dtype (float32) decides
    fresh.load_weights(path)
    assert all(p.dtype == xp.float32 for p in fresh.params())


def test_int_file_casts_into_float_parameters(xp, tmp_path):
    model = _trained_mlp(xp)
    path = tmp_path / "ints.npz"
    _write_npz(path, model, **{"l0/b": np.arange(4, dtype=np.int64)})
    model.load_weights(path)
    assert model.l0.b.dtype == xp.float32
    np.testing.assert_array_equal(as_numpy(model.l0.b), [0, 1, 2, 3])


BAD_ARRAYS = {
    "strings": (np.array(["a", "b", "c"]), TypeError, r"'l1/b' holds strings \(dtype <U1\)"),
    "bytes": (np.array([b"a", b"b", b"c"]), TypeError, r"'l1/b' holds bytes"),
    "dates": (np.array(["2020-01-01"] * 3, dtype="datetime64[D]"), TypeError, r"holds dates"),
    "durations": (np.array([1, 2, 3], dtype="timedelta64[s]"), TypeError, r"holds time deltas"),
    "complex": (np.ones(3, dtype=complex), TypeError, r"complex128 .* cannot be cast safely"),
    "too_large": (
        np.array([1e300, 0.0, 0.0]),
        ValueError,
        r"too large for the parameter's float32",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_ARRAYS))
def test_bad_arrays_are_refused_by_name_and_nothing_changes(xp, tmp_path, kind):
    """All or nothing: on array_api_strict earlier parameters used to be overwritten first."""
    array, error, message = BAD_ARRAYS[kind]
    model = _trained_mlp(xp)
    before = _arrays_of(model)
    dtypes = [p.dtype for p in model.params()]
    path = tmp_path / "bad.npz"
    # every other entry is valid and different, so a partial load would show
    arrays = {k: v + 1.0 for k, v in before.items()}
    arrays["l1/b"] = array
    np.savez(path, **arrays)
    with pytest.raises(error, match=message):
        model.load_weights(path)
    for (key, p), dtype in zip(model.named_params(), dtypes):
        assert p.dtype == dtype
        np.testing.assert_array_equal(as_numpy(p), before[key], err_msg=key)


def test_object_arrays_are_refused(tmp_path):
    model = _trained_mlp(np)
    path = tmp_path / "objects.npz"
    _write_npz(path, model, **{"l1/b": np.array([1, "x", None], dtype=object)})
    before = _arrays_of(model)
    with pytest.raises(ValueError, match=r"cannot read 'l1/b' from .*objects\.npz.*Object arrays"):
        model.load_weights(path)
    for key, p in model.named_params():
        np.testing.assert_array_equal(as_numpy(p), before[key])


def test_a_npy_file_is_named(xp, tmp_path):
    path = tmp_path / "single.npy"
    np.save(path, np.ones(3))
    with pytest.raises(ValueError, match=r"single.npy' holds a single array"):
        _trained_mlp(xp).load_weights(path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_a_corrupt_file_is_named(xp, tmp_path, damage):
    model = _trained_mlp(xp)
    path = tmp_path / "w.npz"
    model.save_weights(path)
    data = path.read_bytes()
    if damage == "garbage":
        data = b"this is not a weights file" * 10
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:  # one byte of the compressed data of the first member changed
        data = data[:60] + bytes([data[60] ^ 0xFF]) + data[61:]
    path.write_bytes(data)
    before = _arrays_of(model)
    with pytest.raises(ValueError, match=r"w.npz"):
        model.load_weights(path)
    for key, p in model.named_params():
        np.testing.assert_array_equal(as_numpy(p), before[key])


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.npz"):
        _trained_mlp(np).load_weights(tmp_path / "nothing.npz")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_save_honours_the_umask_like_np_savez(tmp_path, umask):
    """mkstemp's 0600 used to be kept whatever the umask."""
    old = os.umask(umask)
    try:
        _trained_mlp(np).save_weights(tmp_path / "w.npz")
        np.savez(tmp_path / "reference.npz", a=np.ones(1))
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "w.npz").st_mode & 0o777
    assert mode == 0o666 & ~umask == os.stat(tmp_path / "reference.npz").st_mode & 0o777


def test_save_over_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    _trained_mlp(np).save_weights(path)
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_next_save_removes_temporaries_of_killed_saves(tmp_path):
    """A save killed midway (SIGKILL: no cleanup runs) left its *.tmp behind for good."""
    model = _trained_mlp(np)
    dead_pid = _a_dead_pid()
    killed = [
        tmp_path / f".w.npz.agrad-{dead_pid}-k1ll3d_x.tmp",  # this version's name
        tmp_path / ".w.npz.ab12cd_3.tmp",  # the name earlier versions used
    ]
    running = tmp_path / f".w.npz.agrad-{os.getppid()}-inflight.tmp"  # a live process's save
    unrelated = [
        tmp_path / ".other.npz.ab12cd_3.tmp",  # another file's
        tmp_path / "notes.tmp",
        tmp_path / ".w.npz.my_backup_copy.tmp",  # the user's own, not mkstemp's 8 characters
    ]
    for p in [*killed, running, *unrelated]:
        p.write_bytes(b"x" * 100)
    model.save_weights(tmp_path / "w.npz")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["w.npz", running.name, *(p.name for p in unrelated)])


def _a_dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout)


def test_a_real_leftover_temporary_is_recognised(tmp_path, monkeypatch):
    """The names save_weights really writes match the clean-up pattern."""
    model = _trained_mlp(np)
    path = tmp_path / "w.npz"

    def killed(file, **arrays):
        file.write(b"half a file")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(host, "savez_compressed", killed)
        patch.setattr(os, "remove", lambda p: None)  # as if the process died before cleaning up
        with pytest.raises(KeyboardInterrupt):
            model.save_weights(path)
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tmp")
    model.save_weights(path)
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]
