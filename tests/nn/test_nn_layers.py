"""Layers and models: registration order, lazy initialisation, recurrent state, moving."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import agrad
import agrad.functions as F
import agrad.layers as L
from agrad import Parameter
from agrad.cuda import as_numpy
from agrad.models import MLP, Model, Sequential


def backend_name(x):
    return agrad.backends.backend_of(x.data if isinstance(x, agrad.Variable) else x).name


def test_registration_keeps_assignment_order_and_forgets_reassigned_names():
    layer = L.Layer()
    layer.z = Parameter(np.zeros(1))
    layer.a = Parameter(np.ones(1))
    layer.m = L.Linear(2, in_size=1)
    layer.not_a_param = 3
    assert list(layer._params) == ["z", "a", "m"]
    assert [p.name for p in layer.params()] == [None, None, "W", "b"]
    assert [k for k, _ in layer.named_params()] == ["z", "a", "m/W", "m/b"]
    layer.a = None  # DeZero would keep yielding None here
    assert [k for k, _ in layer.named_params()] == ["z", "m/W", "m/b"]
    del layer.z
    assert list(layer._params) == ["m"]


def test_call_keeps_weak_references_and_returns_tuple_for_many_outputs(xp):
    class Two(L.Layer):
        def forward(self, x):
            return x * 2.0, x * 3.0

    layer = Two()
    x = agrad.Variable(xp.asarray([1.0]))
    a, b = layer(x)
    assert layer.inputs[0]() is x
    assert layer.outputs[1]() is b
    assert float(a.data[0]) == 2.0


def test_linear_lazy_init_float32_on_input_backend(xp):
    agrad.seed(0)
    with agrad.using_backend("numpy"):
        layer = L.Linear(4)  # bias made on numpy before the input is seen
    x = xp.asarray(np.random.rand(5, 3).astype(np.float32))
    y = layer(x)
    assert layer.W.shape == (3, 4)
    assert layer.W.dtype == xp.float32 and layer.b.dtype == xp.float32
    assert backend_name(layer.W) == backend_name(x) == backend_name(layer.b)
    assert y.shape == (5, 4) and y.dtype == xp.float32
    # DeZero's draw: randn(I, O) scaled by sqrt(1/I), from NumPy's global RNG
    agrad.seed(0)
    np.random.rand(5, 3)
    expected = (np.random.randn(3, 4).astype(np.float32) * np.float32(np.sqrt(1 / 3))).astype(
        np.float32
    )
    # drawn on the host on every backend (the same weights for the same seed), moved once
    np.testing.assert_allclose(as_numpy(layer.W), expected, rtol=1e-6)


def test_linear_eager_and_float64_and_nobias(xp):
    layer = L.Linear(3, nobias=True, dtype=np.float64, in_size=2)
    assert layer.b is None and list(layer._params) == ["W"]
    assert layer.W.shape == (2, 3) and layer.W.dtype == xp.float64
    assert backend_name(layer.W) == agrad.current_backend().name
    y = layer(xp.ones((1, 2), dtype=xp.float64))
    assert y.dtype == xp.float64


def test_linear_gradients_flow(xp):
    layer = L.Linear(2)
    y = F.sum(layer(xp.ones((3, 4), dtype=xp.float32)))
    y.backward()
    assert layer.W.grad.shape == (4, 2)
    np.testing.assert_allclose(as_numpy(layer.b.grad), [3.0, 3.0])
    layer.cleargrads()
    assert all(p.grad is None for p in layer.params())


def test_conv2d_and_deconv2d_lazy_shapes(xp):
    conv = L.Conv2d(4, kernel_size=3, stride=1, pad=1)
    x = xp.asarray(np.random.rand(2, 3, 5, 5).astype(np.float32))
    y = conv(x)
    assert conv.W.shape == (4, 3, 3, 3) and conv.W.dtype == xp.float32
    assert y.shape == (2, 4, 5, 5)
    deconv = L.Deconv2d(2, kernel_size=2, stride=2)
    z = deconv(y)
    assert deconv.W.shape == (4, 2, 2, 2)
    assert z.shape == (2, 2, 10, 10)
    F.sum(z).backward()
    assert conv.W.grad.shape == conv.W.shape and conv.b.grad.shape == (4,)


def test_rnn_state_and_reset(xp):
    rnn = L.RNN(3, in_size=2)  # in_size != hidden_size (DeZero's h2h would not fit)
    x = xp.ones((1, 2), dtype=xp.float32)
    h1 = rnn(x)
    h2 = rnn(x)
    assert h1.shape == h2.shape == (1, 3)
    assert rnn.h is h2
    assert not np.allclose(as_numpy(h1), as_numpy(h2))  # the second step used the state
    rnn.reset_state()
    assert rnn.h is None
    np.testing.assert_allclose(as_numpy(rnn(x)), as_numpy(h1), rtol=1e-6)


def test_lstm_state_reset_and_unchain(xp):
    lstm = L.LSTM(4)
    x = xp.asarray(np.random.rand(2, 3).astype(np.float32))
    first = lstm(x)
    assert lstm.h.shape == lstm.c.shape == (2, 4)
    second = lstm(x)
    loss = F.sum(second)
    loss.backward()
    assert lstm.x2f.W.grad.shape == (3, 4) and lstm.h2f.W.grad.shape == (4, 4)
    lstm.h.unchain_backward()
    assert lstm.h.creator is not None and lstm.c.creator is None
    lstm.reset_state()
    assert lstm.h is None and lstm.c is None
    np.testing.assert_allclose(as_numpy(lstm(x)), as_numpy(first), rtol=1e-6)


def test_embed_id(xp):
    agrad.seed(1)
    embed = L.EmbedID(5, 3)
    assert embed.W.shape == (5, 3) and embed.W.dtype == xp.float32
    ids = xp.asarray([0, 4, 4])
    y = embed(ids)
    assert y.shape == (3, 3)
    np.testing.assert_allclose(as_numpy(y)[1], as_numpy(embed.W)[4])
    F.sum(y).backward()
    np.testing.assert_allclose(as_numpy(embed.W.grad)[4], [2.0, 2.0, 2.0])


def test_batchnorm_train_and_test_mode(xp):
    bn = L.BatchNorm()
    data = np.random.RandomState(0).randn(8, 3).astype(np.float32) * 2.0 + 5.0
    x = xp.asarray(data)
    y = bn(x)
    assert [k for k, _ in bn.named_params()] == ["avg_mean", "avg_var", "gamma", "beta"]
    assert y.dtype == xp.float32
    np.testing.assert_allclose(as_numpy(y).mean(axis=0), 0.0, atol=1e-5)
    running_mean = as_numpy(bn.avg_mean).copy()
    np.testing.assert_allclose(running_mean, 0.1 * data.mean(axis=0), rtol=1e-4)
    with agrad.test_mode():
        y_test = bn(x)
    np.testing.assert_allclose(as_numpy(bn.avg_mean), running_mean)  # not updated in test mode
    expected = (data - running_mean) / np.sqrt(as_numpy(bn.avg_var) + 2e-5)
    np.testing.assert_allclose(as_numpy(y_test), expected, rtol=1e-4, atol=1e-4)
    F.sum(y * y).backward()
    assert bn.gamma.grad is not None and bn.avg_mean.grad is None


def test_sequential_and_mlp(xp):
    seq = Sequential(L.Linear(5), L.Linear(2))
    x = xp.ones((3, 4), dtype=xp.float32)
    assert seq(x).shape == (3, 2)
    assert [k for k, _ in seq.named_params()] == ["l0/W", "l0/b", "l1/W", "l1/b"]
    mlp = MLP((6, 6, 2), activation=F.relu)
    assert mlp(x).shape == (3, 2)
    assert len(mlp.layers) == 3 and len(list(mlp.params())) == 6
    assert isinstance(mlp, Model)


def test_layer_to_moves_params_and_state(xp):
    other = "array_api_strict" if agrad.current_backend().name == "numpy" else "numpy"
    if not agrad.get_backend(other).available:
        pytest.skip(f"{other} not usable")
    model = Sequential(L.Linear(3), L.RNN(2))
    model(xp.ones((1, 4), dtype=xp.float32))
    assert model.to(other) is model
    assert {backend_name(p) for p in model.params()} == {other}
    assert backend_name(model.l1.h) == other
    model.l1.reset_state()
    y = model(agrad.get_backend(other).xp.ones((1, 4), dtype=agrad.get_backend(other).xp.float32))
    assert backend_name(y) == other
    model.to_cpu()
    assert {backend_name(p) for p in model.params()} == {"numpy"}


def test_model_plot_writes_dot(tmp_path, xp):
    model = MLP((3, 2))
    target = tmp_path / "model.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no Graphviz here: plot_dot_graph warns, keeps the DOT
        model.plot(xp.ones((1, 2), dtype=xp.float32), to_file=str(target))
    written = sorted(tmp_path.iterdir())
    assert written, f"plot wrote nothing for {target}"
    for dot in tmp_path.glob("*.dot"):
        text = dot.read_text()
        assert "digraph" in text and "Linear" in text


def test_linear_on_a_1d_input_is_one_sample(xp):
    """As PyTorch: features on the last axis. A 1-D input used to raise IndexError (lazy W)."""
    layer = L.Linear(2)
    x = xp.asarray(np.arange(3.0, dtype=np.float32))
    y = layer(x)
    assert layer.W.shape == (3, 2) and y.shape == (2,)
    batch = layer(xp.reshape(x, (1, 3)))
    np.testing.assert_allclose(as_numpy(y), as_numpy(batch)[0], rtol=1e-6)
    F.sum(y).backward()
    assert layer.W.grad.shape == (3, 2) and layer.b.grad.shape == (2,)
    stacked = layer(xp.ones((4, 5, 3), dtype=xp.float32))  # leading axes are batch axes
    assert stacked.shape == (4, 5, 2)


def test_linear_names_a_feature_mismatch_and_a_0d_input(xp):
    layer = L.Linear(2, in_size=3)
    with pytest.raises(ValueError, match=r"input has 4 features .*\(5, 4\).* in_size=3"):
        layer(xp.ones((5, 4), dtype=xp.float32))
    with pytest.raises(ValueError, match=r"0-d input"):
        L.Linear(2)(xp.asarray(1.0))


@pytest.mark.parametrize("as_variable", [False, True])
def test_float64_data_keeps_a_float32_layer_float32(xp, as_variable):
    """The input is cast to the layer's dtype (as Keras does), so W's gradient stays float32;
    a Variable input gets its gradient in its own dtype."""
    layer = L.Linear(2, in_size=3)
    data = xp.asarray(np.random.default_rng(0).standard_normal((4, 3)))  # float64
    x = agrad.Variable(data) if as_variable else data
    y = layer(x)
    assert y.dtype == xp.float32
    F.sum(y * y).backward()
    assert layer.W.grad.dtype == layer.b.grad.dtype == xp.float32
    if as_variable:
        assert x.grad.dtype == xp.float64
        expected = 2 * as_numpy(y) @ as_numpy(layer.W).T
        np.testing.assert_allclose(as_numpy(x.grad), expected, rtol=1e-5)


def test_mixed_dtype_input_double_backward(xp):
    layer = L.Linear(2, in_size=3)
    x = agrad.Variable(xp.asarray(np.random.default_rng(1).standard_normal((4, 3))))
    F.sum(F.sin(layer(x))).backward(create_graph=True)
    gx = x.grad
    assert gx.dtype == xp.float64
    x.cleargrad()
    F.sum(gx).backward()
    assert x.grad.dtype == xp.float64 and x.grad.shape == (4, 3)


def test_conv_and_batchnorm_layers_cast_their_input(xp):
    conv = L.Conv2d(2, kernel_size=3, pad=1)
    conv(xp.ones((1, 3, 4, 4), dtype=xp.float32))
    y = conv(xp.ones((1, 3, 4, 4), dtype=xp.float64))
    assert y.dtype == xp.float32
    F.sum(y).backward()
    assert conv.W.grad.dtype == xp.float32
    bn = L.BatchNorm()
    bn(xp.ones((4, 2), dtype=xp.float32))
    z = bn(xp.asarray(np.random.default_rng(2).standard_normal((4, 2))))
    assert z.dtype == xp.float32 and bn.avg_mean.dtype == xp.float32


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: L.Linear(0), r"Linear: out_size must be a positive int \(>= 1\), got 0"),
        (lambda: L.Linear(-2), r"Linear: out_size .* got -2"),
        (lambda: L.Linear(3, in_size=0), r"Linear: in_size .* got 0"),
        (lambda: L.EmbedID(0, 3), r"EmbedID: in_size .* got 0"),
        (lambda: L.EmbedID(4, -1), r"EmbedID: out_size .* got -1"),
    ],
)
def test_layer_sizes_must_be_positive(xp, make, message):
    """Linear(0) made an empty layer, in_size=0 raised ZeroDivisionError."""
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("size", [2.5, "3", True])
def test_layer_sizes_must_be_ints(size):
    with pytest.raises(TypeError, match=r"Linear: out_size must be a positive int, not"):
        L.Linear(size)
