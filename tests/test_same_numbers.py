"""The same code gives the same numbers on every backend: with ``agrad.seed(s)`` the initial
weights, the data and the order of the batches are drawn on the host, so training runs compare
across backends (dropout masks are drawn on the device and differ; see the backends guide)."""

from __future__ import annotations

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import demo, layers, optimizers
from agrad.datasets import Spiral


def _on_numpy(fn, *args, **kwargs):
    with agrad.using_backend("numpy"):
        return fn(*args, **kwargs)


def _host(x) -> np.ndarray:
    return agrad.cuda.as_numpy(x)


def _initial_weights(seed: int) -> list[np.ndarray]:
    agrad.seed(seed)
    made = [
        layers.Linear(4, in_size=3).W,
        layers.Linear(2, in_size=5, dtype="float64").W,
        layers.Conv2d(2, 3, in_channels=1).W,
        layers.Deconv2d(2, 3, in_channels=1).W,
        layers.EmbedID(6, 3).W,
    ]
    return [_host(w.data) for w in made]


def test_initial_weights_are_the_same_on_every_backend(xp):
    expected = _on_numpy(_initial_weights, 7)
    got = _initial_weights(7)
    for want, have in zip(expected, got):
        assert have.dtype == want.dtype
        np.testing.assert_array_equal(have, want)  # bit for bit: one draw, moved once
    assert not np.array_equal(_initial_weights(8)[0], got[0])  # and the seed matters


def test_lazily_built_linear_draws_the_same_weights(xp):
    def first_weight():
        agrad.seed(3)
        layer = layers.Linear(3)
        layer(agrad.current_backend().asarray([[1.0, 2.0]], dtype="float32"))
        return _host(layer.W.data)

    np.testing.assert_array_equal(first_weight(), _on_numpy(first_weight))


def test_dataloader_order_is_the_same_on_every_backend(xp):
    def labels():
        agrad.seed(5)
        loader = agrad.DataLoader(Spiral(), batch_size=50)
        return np.concatenate([_host(t) for _, t in loader] + [_host(t) for _, t in loader])

    np.testing.assert_array_equal(labels(), _on_numpy(labels))


def test_host_randn_matches_numpy_s_draw(xp):
    backend = agrad.current_backend()
    agrad.seed(11)
    got = backend.host_randn((3, 2), "float32")
    agrad.seed(11)
    want = np.random.standard_normal((3, 2)).astype(np.float32)
    assert backend.dtype_name(got.dtype) == "float32"
    np.testing.assert_array_equal(_host(got), want)
    assert backend.dtype_name(backend.host_randn((2,)).dtype) == "float64"


def test_demo_prints_the_same_losses_on_every_backend(xp):
    def losses():
        result = demo.train(epochs=3, progress=False, log=lambda message: None)
        return result["losses"], result["train_accuracy"]

    want, want_accuracy = _on_numpy(losses)
    got, accuracy = losses()
    # float32 layers: summation orders differ between libraries, nothing else does
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert accuracy == pytest.approx(want_accuracy, abs=1 / 300)  # at most one point flips


def _float64_run(epochs: int = 2) -> list[float]:
    agrad.seed(2)
    model = agrad.models.Sequential(
        layers.Linear(8, dtype="float64"), F.tanh, layers.Linear(3, dtype="float64")
    )
    optimizer = optimizers.MomentumSGD(lr=0.1).setup(model)
    loader = agrad.DataLoader(Spiral(), batch_size=60)
    losses = []
    for _ in range(epochs):
        for x, t in loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            losses.append(float(loss.data))
    return losses


def test_float64_training_agrees_closely_on_every_backend(xp):
    np.testing.assert_allclose(_float64_run(), _on_numpy(_float64_run), rtol=1e-12)
