"""Mixed precision: autocast runs the products in float16, GradScaler scales and skips steps.

Float16 correctness is checked on NumPy (array-api-strict has no float16); the scaler, which
works in float32, on every backend.
"""

from __future__ import annotations

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import amp, optimizers
from agrad import layers as L
from agrad.functions.casting import AsType

NUMPY = agrad.get_backend("numpy")


def _f32(a):
    return np.asarray(a, dtype=np.float32)


def _dtype_name(dtype) -> str:
    return str(dtype).rsplit(".", 1)[-1]


# -- autocast -----------------------------------------------------------------------------------
PRODUCTS = {
    "matmul": (lambda x, W, b: F.matmul(x, W), (3, 4), (4, 5)),
    "linear": (lambda x, W, b: F.linear(x, W, b), (3, 4), (4, 5)),
    "conv2d": (lambda x, W, b: F.conv2d(x, W, b, pad=1), (2, 3, 5, 5), (4, 3, 3, 3)),
    "deconv2d": (lambda x, W, b: F.deconv2d(x, W, b, stride=2), (2, 3, 4, 4), (3, 4, 3, 3)),
}


@pytest.mark.parametrize("name", PRODUCTS)
def test_autocast_computes_products_in_float16_and_returns_float32(name):
    product, x_shape, W_shape = PRODUCTS[name]
    rng = np.random.default_rng(0)
    bias_size = 5 if name in ("matmul", "linear") else W_shape[0 if name == "conv2d" else 1]
    arrays = [_f32(rng.normal(size=s)) for s in (x_shape, W_shape, (bias_size,))]

    def run(mixed):
        x, W, b = (agrad.Variable(a.copy()) for a in arrays)
        with amp.autocast(enabled=mixed):
            y = product(x, W, b)
        F.sum(y * y).backward()
        return y, x, W, b

    y16, *leaves16 = run(True)
    y32, *leaves32 = run(False)
    assert y16.dtype == np.float32
    assert isinstance(y16.creator, AsType)  # the float16 result cast back
    inner = y16.creator.input_nodes[0].creator
    assert all(node.dtype == np.float16 for node in inner.input_nodes if node is not None)
    assert not isinstance(y32.creator, AsType)
    np.testing.assert_allclose(y16.data, y32.data, rtol=2e-2, atol=2e-2)
    for got, want in zip(leaves16, leaves32):
        if name == "matmul" and want.grad is None:
            continue  # matmul takes no bias
        assert got.grad.dtype == np.float32  # master weights keep float32 gradients
        scale = float(np.abs(want.grad.data).max())
        np.testing.assert_allclose(got.grad.data, want.grad.data, rtol=0, atol=2e-2 * scale)


def test_autocast_keeps_reductions_exp_log_softmax_and_losses_in_float32():
    x = agrad.Variable(_f32([[0.5, -1.0], [2.0, 0.25]]))
    W = agrad.Variable(_f32([[1.0, 0.5, -0.5], [0.25, -1.0, 2.0]]))
    t = np.array([0, 2])
    with amp.autocast():
        h = F.linear(x, W)
        outputs = {
            "sum": F.sum(h),
            "mean": F.mean(h),
            "exp": F.exp(h),
            "log": F.log(F.exp(h)),
            "softmax": F.softmax(h),
            "log_softmax": F.log_softmax(h),
            "softmax_cross_entropy": F.softmax_cross_entropy(h, t),
            "mean_squared_error": F.mean_squared_error(h, F.exp(h)),
        }
    for name, y in outputs.items():
        assert y.dtype == np.float32, name


def test_autocast_leaves_float64_and_integers_alone_and_casts_data_batches_without_a_node():
    x64 = agrad.Variable(np.ones((2, 3)))
    W64 = agrad.Variable(np.ones((3, 2)))
    batch = _f32(np.ones((2, 3)))
    W = agrad.Variable(_f32(np.ones((3, 2))))
    with amp.autocast():
        y64 = F.matmul(x64, W64)
        y = F.linear(batch, W)
    assert y64.dtype == np.float64 and not isinstance(y64.creator, AsType)
    with amp.autocast():
        mixed = F.matmul(W, x64)  # float16 @ float64 is float64, as without autocast
    assert mixed.dtype == np.float64
    linear = y.creator.input_nodes[0].creator
    assert linear.input_nodes[0].dtype == np.float16 and linear.input_nodes[0].creator is None
    y.backward()
    assert W.grad.dtype == np.float32


def test_autocast_layers_and_switches():
    layer = L.Linear(3, in_size=2)
    x = _f32([[1.0, 2.0]])
    assert not amp.is_autocast_enabled()
    with amp.autocast():
        assert amp.is_autocast_enabled()
        y = layer(x)
        with amp.autocast(enabled=False):
            assert not amp.is_autocast_enabled()
            plain = layer(x)
    assert not amp.is_autocast_enabled()
    assert isinstance(y.creator, AsType) and not isinstance(plain.creator, AsType)
    assert layer.W.data.dtype == np.float32  # the master weights are never converted
    with (
        pytest.raises(ValueError, match="dtype must be one of float16, bfloat16, not 'int8'"),
        amp.autocast(dtype="int8"),
    ):
        pass
    with (
        pytest.raises(TypeError, match="enabled must be True or False, not 1"),
        amp.autocast(enabled=1),
    ):
        pass


def test_autocast_on_a_backend_without_float16_names_it():
    strict = agrad.get_backend("array_api_strict")
    if not strict.available:
        pytest.skip(f"needs array-api-strict ({strict.probe()[1]})")
    assert not amp.autocast_available(backend="array_api_strict")
    assert amp.autocast_available(backend="numpy")
    x = agrad.Variable(strict.asarray([[1.0, 2.0]], dtype="float32"))
    with (
        pytest.raises(TypeError, match="backend 'array_api_strict' has no float16 dtype"),
        amp.autocast(),
    ):
        F.matmul(x, x.T)


# -- GradScaler ---------------------------------------------------------------------------------
def test_grad_scaler_has_pytorchs_defaults():
    scaler = amp.GradScaler()
    assert scaler.get_scale() == 2.0**16
    assert scaler.state_dict() == {
        "scale": 65536.0,
        "growth_factor": 2.0,
        "backoff_factor": 0.5,
        "growth_interval": 2000,
        "_growth_tracker": 0,
    }


def _param(xp, values):
    return agrad.Parameter(xp.asarray(values, dtype=xp.float32))


def _grad(xp, values):
    return agrad.Variable(xp.asarray(values, dtype=xp.float32))


def test_scale_multiplies_and_keeps_float16_losses_from_overflowing(xp):
    scaler = amp.GradScaler(init_scale=1024.0)
    loss = agrad.Variable(xp.asarray(2.0, dtype=xp.float32))
    scaled = scaler.scale(loss)
    assert float(scaled.data) == 2048.0 and scaled.dtype == xp.float32
    assert [float(v.data) for v in scaler.scale([loss, loss])] == [2048.0, 2048.0]
    if amp.autocast_available(backend=agrad.current_backend()):
        half = agrad.Variable(xp.asarray(2.0, dtype=xp.float16))
        big = amp.GradScaler().scale(half)  # 2 * 65536 is inf in float16
        assert big.dtype == xp.float32 and float(big.data) == 131072.0
    with pytest.raises(TypeError, match="expected a Variable, not float"):
        scaler.scale(1.0)


def test_step_skips_on_inf_or_nan_and_the_scale_backs_off(xp):
    p = _param(xp, [1.0, 2.0])
    optimizer = optimizers.Adam().setup(p)
    scaler = amp.GradScaler(init_scale=8.0, growth_interval=2)
    for bad in (float("inf"), float("nan")):
        p.grad = _grad(xp, [bad, 1.0])
        assert scaler.step(optimizer) is False
        scaler.update()
        assert bool(xp.all(p.data == xp.asarray([1.0, 2.0], dtype=xp.float32)))
    assert scaler.get_scale() == 2.0
    assert optimizer.t == 0  # Adam's step count did not move either
    p.grad = _grad(xp, [2.0, 2.0])
    assert scaler.step(optimizer) is True
    scaler.update()
    assert optimizer.t == 1
    assert scaler.get_scale() == 2.0  # one clean step of two
    p.grad = _grad(xp, [2.0, 2.0])
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 4.0  # two clean steps in a row: grows
    p.grad = _grad(xp, [float("inf"), 2.0])
    scaler.step(optimizer)
    scaler.update()
    p.grad = _grad(xp, [2.0, 2.0])
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() == 2.0  # the backoff restarted the count: no growth yet


OPTIMIZERS = {
    "SGD": lambda: optimizers.SGD(lr=0.1),
    "MomentumSGD": lambda: optimizers.MomentumSGD(lr=0.1),
    "AdaGrad": lambda: optimizers.AdaGrad(lr=0.1),
    "AdaDelta": lambda: optimizers.AdaDelta(),
    "Adam": lambda: optimizers.Adam(alpha=0.1),
}
HOOKS = {
    "none": lambda model: None,
    "WeightDecay": lambda model: optimizers.WeightDecay(0.1),
    "ClipGrad": lambda model: optimizers.ClipGrad(0.5),
    "FreezeParam": lambda model: optimizers.FreezeParam(model.l1),
}


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_scaled_step_equals_an_unscaled_one_for_every_optimizer_and_hook(xp, name, hook):
    rng = np.random.default_rng(0)
    x = xp.asarray(_f32(rng.normal(size=(4, 3))))
    t = xp.asarray(np.array([0, 1, 1, 0]))

    def two_steps(scaler):
        agrad.seed(0)
        model = agrad.models.MLP((5, 2))
        optimizer = OPTIMIZERS[name]().setup(model)
        made = HOOKS[hook](model)
        if made is not None:
            optimizer.add_hook(made)
        for _ in range(2):
            model.cleargrads()
            loss = F.softmax_cross_entropy(model(x), t)
            if scaler is None:
                loss.backward()
                optimizer.update()
            else:
                scaler.scale(loss).backward()
                assert scaler.step(optimizer)
                scaler.update()
        return [p.data for p in model.params()]

    # a power of two: scaling and unscaling are exact
    for got, want in zip(two_steps(amp.GradScaler(init_scale=2.0**10)), two_steps(None)):
        assert bool(xp.all(got == want)), (name, hook)


def test_unscale_by_hand_then_step(xp):
    p = _param(xp, [1.0])
    optimizer = optimizers.SGD(lr=1.0).setup(p)
    scaler = amp.GradScaler(init_scale=4.0)
    p.grad = _grad(xp, [8.0])
    assert scaler.unscale_(optimizer) is True
    assert float(p.grad.data[0]) == 2.0
    with pytest.raises(RuntimeError, match="already called for this optimizer"):
        scaler.unscale_(optimizer)
    assert scaler.step(optimizer) is True  # does not unscale a second time
    assert float(p.data[0]) == -1.0
    scaler.update()
    with pytest.raises(RuntimeError, match="no step\\(optimizer\\) or unscale_"):
        scaler.update()


def test_a_step_reads_the_host_once():
    strict = agrad.get_backend("array_api_strict")
    if not strict.available:
        pytest.skip(f"needs array-api-strict ({strict.probe()[1]})")
    xs = strict.xp
    params = [_param(xs, [1.0, 2.0]), _param(xs, [[3.0]]), _param(xs, 4.0)]
    for p in params:
        p.grad = agrad.Variable(p.data * 2.0)
    optimizer = optimizers.SGD().setup(params)
    reads = []
    original = strict.array_type.__bool__

    def counting(self):
        reads.append(1)
        return original(self)

    scaler = amp.GradScaler(init_scale=2.0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(strict.array_type, "__bool__", counting)
        scaler.step(optimizer)
    assert len(reads) == 1


def test_disabled_scaler_passes_through_and_state_round_trips(xp):
    p = _param(xp, [1.0])
    p.grad = _grad(xp, [1.0])
    scaler = amp.GradScaler(enabled=False)
    loss = agrad.Variable(xp.asarray(3.0, dtype=xp.float32))
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and not scaler.is_enabled()
    assert scaler.step(optimizers.SGD(lr=1.0).setup(p)) is True
    assert float(p.data[0]) == 0.0
    scaler.update()
    first = amp.GradScaler(init_scale=8.0, growth_interval=3)
    second = amp.GradScaler()
    second.load_state_dict(first.state_dict())
    assert second.state_dict() == first.state_dict()


def test_bad_scaler_settings_are_named():
    with pytest.raises(ValueError, match="init_scale must be > 0, not 0"):
        amp.GradScaler(init_scale=0)
    with pytest.raises(ValueError, match=r"growth_factor must be > 1, not 0\.5"):
        amp.GradScaler(growth_factor=0.5)
    with pytest.raises(ValueError, match="backoff_factor must be between 0 and 1, not 2"):
        amp.GradScaler(backoff_factor=2)
    with pytest.raises(TypeError, match=r"growth_interval must be an int, not 1\.5"):
        amp.GradScaler(growth_interval=1.5)


def test_a_second_step_before_update_raises_and_changes_nothing(xp):
    # PyTorch raises too: a second step would apply the same gradients again
    p = _param(xp, [1.0])
    optimizer = optimizers.SGD(lr=1.0).setup(p)
    scaler = amp.GradScaler(init_scale=4.0)
    p.grad = _grad(xp, [8.0])
    assert scaler.step(optimizer) is True
    assert float(p.data[0]) == -1.0
    with pytest.raises(RuntimeError, match=r"step\(optimizer\) was already called .* update\(\)"):
        scaler.step(optimizer)
    assert float(p.data[0]) == -1.0
    scaler.update()
    p.grad = _grad(xp, [8.0 * scaler.get_scale() / 4.0])
    assert scaler.step(optimizer) is True  # a new step after update() works
    assert float(p.data[0]) == -3.0
    # a skipped step (inf) counts as a step too
    scaler.update()
    p.grad = _grad(xp, [float("inf")])
    assert scaler.step(optimizer) is False
    with pytest.raises(RuntimeError, match="already called"):
        scaler.step(optimizer)
    other = optimizers.SGD(lr=1.0).setup(_param(xp, [1.0]))  # another optimizer may step once
    other.target.grad = _grad(xp, [1.0])
    scaler.step(other)


@pytest.mark.parametrize(
    ("key", "value", "error", "message"),
    [
        ("scale", -1.0, ValueError, r"scale must be > 0, not -1\.0"),
        ("scale", float("nan"), ValueError, r"scale must be > 0, not nan"),
        ("scale", "big", TypeError, r"scale must be a number, not 'big'"),
        ("growth_factor", 0.5, ValueError, r"growth_factor must be > 1"),
        ("backoff_factor", 1.5, ValueError, r"backoff_factor must be between 0 and 1"),
        ("growth_interval", 0, ValueError, r"growth_interval must be >= 1, not 0"),
        ("growth_interval", 2.5, TypeError, r"growth_interval must be an int"),
        ("_growth_tracker", -3, ValueError, r"_growth_tracker must be >= 0, not -3"),
    ],
)
def test_load_state_dict_refuses_what_the_constructor_refuses(key, value, error, message):
    scaler = amp.GradScaler(init_scale=8.0)
    before = scaler.state_dict()
    state = dict(before, **{key: value})
    with pytest.raises(error, match=rf"GradScaler.load_state_dict: {message}"):
        scaler.load_state_dict(state)
    assert scaler.state_dict() == before  # nothing was assigned


# -- training in float16 ------------------------------------------------------------------------
def _spiral(n, seed):
    rng = np.random.default_rng(seed)
    xs, ts = [], []
    for j in range(3):
        r = rng.uniform(0, 1, n)
        theta = j * 4.0 + 4.0 * r + rng.normal(0, 0.2, n)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ts.append(np.full(n, j))
    return _f32(np.concatenate(xs)), np.concatenate(ts)


def _bars(n, seed):
    """8x8 images of a horizontal, vertical, diagonal or anti-diagonal bar in noise."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 4, n)
    x = _f32(rng.normal(0, 0.3, (n, 1, 8, 8)))
    line = np.arange(1, 7)
    for i in range(n):
        p = rng.integers(1, 7)
        rows, cols = [(p, line), (line, p), (line, line), (line, 7 - line)][t[i]]
        x[i, 0, rows, cols] += 1.0
    return x, t


class _CNN(agrad.Model):
    def __init__(self):
        super().__init__()
        self.conv = L.Conv2d(8, 3, pad=1)
        self.out = L.Linear(4)

    def forward(self, x):
        h = F.pooling(F.relu(self.conv(x)), 2, 2)
        return self.out(F.reshape(h, (h.shape[0], -1)))


def _train(make_model, data, test, mixed, epochs, lr, init_scale=2.0**16):
    agrad.seed(0)
    model = make_model()
    optimizer = optimizers.Adam(alpha=lr).setup(model)
    scaler = amp.GradScaler(init_scale=init_scale, enabled=mixed)
    x, t = data
    order_rng = np.random.default_rng(1)
    skipped = 0
    for _ in range(epochs):
        order = order_rng.permutation(len(x))
        for start in range(0, len(x), 50):
            batch = order[start : start + 50]
            with amp.autocast(enabled=mixed):
                loss = F.softmax_cross_entropy(model(x[batch]), t[batch])
            model.cleargrads()
            scaler.scale(loss).backward()
            skipped += not scaler.step(optimizer)
            scaler.update()
    with agrad.no_grad(), amp.autocast(enabled=mixed):
        accuracy = float(F.accuracy(model(test[0]), test[1]).data)
    finite = all(bool(np.isfinite(p.data).all()) for p in model.params())
    return accuracy, skipped, scaler.get_scale(), finite


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_model, data, test, epochs",
    [
        (lambda: agrad.models.MLP((32, 32, 3)), _spiral(300, 0), _spiral(1000, 1), 40),
        (_CNN, _bars(600, 0), _bars(1000, 1), 5),
    ],
    ids=["mlp", "cnn"],
)
def test_float16_training_matches_float32_accuracy(make_model, data, test, epochs):
    full, _, _, _ = _train(make_model, data, test, False, epochs, lr=0.02)
    mixed, skipped, _, finite = _train(make_model, data, test, True, epochs, lr=0.02)
    assert full > 0.95  # both learn the task: the comparison means something
    assert abs(mixed - full) <= 0.01, (mixed, full)
    assert finite and skipped == 0


# NumPy warns when a float16 cast overflows: here that is the point
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_scale_backs_off_until_float16_gradients_fit():
    data, test = _bars(600, 0), _bars(1000, 1)
    full, _, _, _ = _train(_CNN, data, test, False, 5, lr=0.02)
    # 2**40 times the loss overflows float16 (max 65504) in the backward of the products
    mixed, skipped, scale, finite = _train(_CNN, data, test, True, 5, lr=0.02, init_scale=2.0**40)
    assert skipped > 0
    assert scale == 2.0 ** (40 - skipped)  # halved once per skipped step, never grown (< 2000)
    assert finite
    assert abs(mixed - full) <= 0.02, (mixed, full)  # a few skipped steps of 60


def test_a_data_parallel_optimizer_is_refused_by_name(xp):
    from agrad.distributed.optimizer import MultiNodeOptimizer

    p = _param(xp, [1.0])
    p.grad = _grad(xp, [1.0])
    wrapped = MultiNodeOptimizer(optimizers.SGD(), communicator=None)
    wrapped.actual_optimizer.setup(p)
    with pytest.raises(NotImplementedError, match="MultiNodeOptimizer averages gradients"):
        amp.GradScaler().step(wrapped)
