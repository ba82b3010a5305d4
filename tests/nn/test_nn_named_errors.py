"""Layers, models, optimizers and weight files refuse bad arguments by name (issue 22)."""

from __future__ import annotations

import math
import os

import pytest

import agrad
import agrad.layers as L
from agrad import optimizers
from agrad.models import MLP, Sequential


def test_layers_refuse_a_list_input(xp):
    with pytest.raises(
        TypeError, match=r"Linear: the input must be a Variable or an array .* list"
    ):
        L.Linear(2)([[1.0, 2.0]])
    with pytest.raises(TypeError, match=r"Conv2d: the input must be a Variable or an array"):
        L.Conv2d(2, 3)([[[[1.0]]]])
    with pytest.raises(TypeError, match=r"BatchNorm: the input must be a Variable"):
        L.BatchNorm()([[1.0, 2.0]])


def test_models_refuse_bad_layers_at_construction():
    with pytest.raises(ValueError, match=r"MLP: fc_output_sizes is empty"):
        MLP(())
    with pytest.raises(
        TypeError, match=r"MLP: fc_output_sizes must be a sequence of ints .* not 5"
    ):
        MLP(5)
    with pytest.raises(TypeError, match=r"MLP: activation must be a callable"):
        MLP((3,), activation="relu")
    with pytest.raises(TypeError, match=r"Sequential: layer 0 is 3 \(int\); expected a Layer"):
        Sequential(3)
    with pytest.raises(TypeError, match=r"Sequential: layer 1 is 'relu'"):
        Sequential(L.Linear(2), "relu")


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: optimizers.SGD(lr="a"), TypeError, r"SGD: lr must be a real number, not 'a'"),
        (lambda: optimizers.SGD(lr=None), TypeError, r"SGD: lr must be a real number, not None"),
        (
            lambda: optimizers.SGD(lr=-1),
            ValueError,
            r"SGD: lr=-1 is out of range \(allowed: 0.0 <= lr\)",
        ),
        (lambda: optimizers.SGD(lr=math.nan), ValueError, r"SGD: lr=nan is out of range"),
        (lambda: optimizers.MomentumSGD(momentum=-0.5), ValueError, r"MomentumSGD: momentum=-0.5"),
        (lambda: optimizers.AdaGrad(eps=-1), ValueError, r"AdaGrad: eps=-1"),
        (
            lambda: optimizers.AdaDelta(rho=1.5),
            ValueError,
            r"AdaDelta: rho=1.5 .*0.0 <= rho <= 1.0",
        ),
        (lambda: optimizers.Adam(beta1=2), ValueError, r"Adam: beta1=2 .*0.0 <= beta1 < 1.0"),
        (lambda: optimizers.Adam(beta2=1.0), ValueError, r"Adam: beta2=1.0 is out of range"),
        (lambda: optimizers.Adam(alpha=True), TypeError, r"Adam: alpha must be a real number"),
        (lambda: optimizers.ClipGrad(-1), ValueError, r"ClipGrad: max_norm=-1 is out of range"),
        (lambda: optimizers.WeightDecay("x"), TypeError, r"WeightDecay: rate must be a real"),
        (lambda: optimizers.SGD().add_hook(3), TypeError, r"SGD.add_hook: f must be a callable"),
        (lambda: optimizers.SGD().setup(3), TypeError, r"SGD.setup: target must be a Layer/Model"),
        (lambda: optimizers.Adam().setup([3]), TypeError, r"Adam.setup: target holds int \(3\)"),
    ],
)
def test_optimizer_settings_are_checked_at_construction(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_valid_settings_still_work(xp):
    p = agrad.Parameter(xp.asarray([1.0]))
    p.grad = agrad.Variable(xp.asarray([2.0]))
    opt = optimizers.SGD(lr=0.5).setup([p])
    opt.add_hook(optimizers.ClipGrad(0.0 + 10))
    opt.update()
    assert float(agrad.cuda.as_numpy(p)[0]) == 0.0
    optimizers.Adam(beta1=0.0, beta2=0.0, eps=0.0)  # the range ends are allowed


def test_corrupt_weights_with_an_unknown_compression_method_is_a_value_error(tmp_path):
    path = os.path.join(tmp_path, "w.npz")
    L.Linear(2, in_size=3).save_weights(path)
    with open(path, "rb") as file:
        data = bytearray(file.read())
    # the compression method fields of every local and central header: 99 is no known method,
    # on which zipfile raises NotImplementedError
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(signature)
        while at >= 0:
            data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
            at = data.find(signature, at + 1)
    with open(path, "wb") as file:
        file.write(bytes(data))
    with pytest.raises(ValueError, match=r"load_weights: cannot read 'W'.*NotImplementedError"):
        L.Linear(2, in_size=3).load_weights(path)
