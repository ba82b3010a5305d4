"""PyTorch's spellings beside DeZero's: operators, Variable methods, Model/Layer and Optimizer.

Each behaviour is checked on every backend of the ``xp`` fixture, against NumPy's answer or
PyTorch's documented one.
"""

from __future__ import annotations

import numpy as np
import pytest

import agrad
import agrad.functions as F
from agrad import Variable
from agrad.cuda import as_numpy
from agrad.utils import gradient_check

# no element near a step of % 2, % 2.5 or // 2, where finite differences would jump
DATA = np.array([[5.3, -1.25, 0.75], [-3.7, 2.2, 7.1]])


def host(v):
    return np.asarray(as_numpy(v))


# -- operators that raised before -----------------------------------------------------------
def test_abs_operator_and_its_gradient(xp):
    x = Variable(xp.asarray(DATA))
    y = abs(x)
    np.testing.assert_array_equal(host(y), np.abs(DATA))
    F.sum(y).backward()
    np.testing.assert_array_equal(host(x.grad), np.sign(DATA))
    gradient_check(lambda v: abs(v), xp.asarray(DATA))


@pytest.mark.parametrize("divisor", [2, 2.5, -2.0])
def test_remainder_matches_python_and_is_differentiable_in_its_first_argument(xp, divisor):
    x = Variable(xp.asarray(DATA))
    y = x % divisor
    np.testing.assert_allclose(host(y), DATA % divisor)
    F.sum(y).backward()
    np.testing.assert_array_equal(host(x.grad), np.ones_like(DATA))  # PyTorch: 1 everywhere
    gradient_check(lambda v: v % divisor, xp.asarray(DATA))


def test_remainder_by_a_variable_gets_minus_floor_quotient(xp):
    a = Variable(xp.asarray(DATA))  # a raw array-api-strict array on the left would raise
    b = np.array([1.5, -2.25, 0.5])  # no element of DATA / b is near an integer step
    x = Variable(xp.asarray(b))
    y = a % x
    np.testing.assert_allclose(host(y), DATA % b)
    F.sum(y).backward()
    np.testing.assert_allclose(host(x.grad), -np.floor_divide(DATA, b).sum(axis=0))
    gradient_check(lambda v: a % v, xp.asarray(b))
    # both arguments Variables, and double backward (the gradient is linear in gy)
    gradient_check(lambda v: F.sum(F.sin(v % 2.0)), xp.asarray(DATA))


def test_remainder_keeps_float32(xp):
    x = Variable(xp.asarray(DATA, dtype=xp.float32))
    assert (x % 2).dtype == xp.float32
    assert (7.0 % x).dtype == xp.float32


def test_floor_division_has_a_zero_gradient(xp):
    # PyTorch raises when differentiating floor_divide; every floating leaf takes part in
    # agrad's graphs, so the derivative where it exists (zero) is used instead, as for round
    x = Variable(xp.asarray(DATA))
    y = x // 2
    np.testing.assert_array_equal(host(y), DATA // 2)
    np.testing.assert_array_equal(host(10.0 // x), 10.0 // DATA)
    F.sum(x * y).backward()
    np.testing.assert_array_equal(host(x.grad), DATA // 2)  # only the product rule's x term
    d = Variable(xp.asarray(np.array([2.0, -1.5, 4.0])))
    F.sum(x // d).backward()
    np.testing.assert_array_equal(host(d.grad), np.zeros(3))


@pytest.mark.parametrize("ndigits", [None, 0, 1, 2, -1])
def test_round_matches_numpy_and_has_a_zero_gradient(xp, ndigits):
    values = np.array([0.5, 1.5, 2.5, -0.5, 0.126, 14.96, -15.0])
    x = Variable(xp.asarray(values))
    y = round(x) if ndigits is None else round(x, ndigits)
    np.testing.assert_allclose(host(y), np.round(values, ndigits or 0), rtol=1e-12)
    assert y.dtype == x.dtype
    F.sum(y * y).backward()
    np.testing.assert_array_equal(host(x.grad), np.zeros_like(values))  # PyTorch's round


def test_round_of_integers(xp):
    x = Variable(xp.asarray(np.array([124, -135, 7])))
    np.testing.assert_array_equal(host(round(x, 1)), [124, -135, 7])
    np.testing.assert_array_equal(host(round(x, -1)), np.round(np.array([124, -135, 7]), -1))


def test_builtin_max_and_min_with_a_number(xp):
    s = Variable(xp.asarray(3.0))
    assert max(s, 2.0) is s
    assert max(s, 4.0) == 4.0
    assert min(s, 2.0) == 2.0
    assert min(s, 4.0) is s


# -- comparisons and truth values -----------------------------------------------------------
@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a == b,
        lambda a, b: a != b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
    ids=["eq", "ne", "lt", "le", "gt", "ge"],
)
def test_comparisons_are_elementwise_boolean_variables(xp, op):
    other = np.array([5.5, 0.0, 0.75])
    x = Variable(xp.asarray(DATA))
    for right, expected in [
        (2.0, op(DATA, 2.0)),
        (Variable(xp.asarray(other)), op(DATA, other)),
        (xp.asarray(other), op(DATA, other)),
    ]:
        result = op(x, right)
        assert isinstance(result, Variable)
        assert result.dtype == xp.bool
        assert result.creator is None  # never differentiated
        np.testing.assert_array_equal(host(result), expected)
    # the reflected forms: a number or an array on the left
    np.testing.assert_array_equal(host(op(2.0, x)), op(2.0, DATA))
    if agrad.current_backend().name != "array_api_strict":  # its arrays raise, never defer
        np.testing.assert_array_equal(host(op(xp.asarray(other), x)), op(other, DATA))


def test_equality_of_values_not_identity(xp):
    s = Variable(xp.asarray(3.14159))
    assert s == 3.14159
    assert (s != 3.14159).item() is False
    x = Variable(xp.asarray(3.0))
    (x * x).backward()
    assert x.grad == 6
    assert x.grad != 5
    # a comparison with something that is not an array falls back to identity, as PyTorch
    assert (x == None) is False  # noqa: E711
    assert (x != "x") is True


def test_float32_compares_in_float32(xp):
    x = Variable(xp.asarray([0.1], dtype=xp.float32))
    assert bool(x == 0.1) == bool(np.float32(0.1) == 0.1)  # the weak scalar of NumPy's rules
    assert (x == x).item() is True


def test_comparison_across_backends_is_refused(xp):
    if agrad.current_backend().name == "numpy":
        pytest.skip("needs a second backend besides numpy to compare with")
    x = Variable(xp.asarray([1.0]))
    with pytest.raises(TypeError, match="different backends"):
        x == Variable(np.asarray([1.0]))  # noqa: B015


def test_hash_stays_identity_and_containers_work_by_identity(xp):
    a = Variable(xp.asarray([1.0, 2.0]))
    b = Variable(xp.asarray([1.0, 2.0]))
    assert hash(a) != hash(b)
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b"
    assert len({a, b}) == 2


def test_bool_of_one_element_and_of_larger_variables(xp):
    assert bool(Variable(xp.asarray([2.0]))) is True
    assert bool(Variable(xp.asarray(0.0))) is False
    assert not Variable(xp.asarray([[0.0]]))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(Variable(xp.zeros(3)))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(Variable(xp.zeros((0,))))
    loss = Variable(xp.asarray(0.5))
    assert "ok" if loss else "zero"  # `if loss:` works on a scalar loss


# -- Variable: PyTorch's names ----------------------------------------------------------------
def test_numpy_is_a_host_copy(xp):
    x = Variable(xp.asarray(DATA))
    host_copy = x.numpy()
    assert type(host_copy) is np.ndarray
    np.testing.assert_array_equal(host_copy, DATA)
    host_copy[0, 0] = 100.0  # writable, and the Variable keeps its value
    np.testing.assert_array_equal(host(x), DATA)
    assert Variable(xp.asarray(2.5)).numpy().shape == ()


def test_tolist(xp):
    assert Variable(xp.asarray(DATA)).tolist() == DATA.tolist()
    assert Variable(xp.asarray(2.5)).tolist() == 2.5


def test_detach_shares_data_and_cuts_the_graph(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    y = x * x
    z = y.detach()
    assert z.data is y.data
    assert z.creator is None and z.grad is None and z.is_leaf
    assert y.creator is not None  # the original keeps its place in the graph
    F.sum(z * x).backward()
    np.testing.assert_array_equal(host(x.grad), [1.0, 4.0])  # z is a constant


def test_cpu_moves_to_numpy(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    assert x.cpu() is x
    assert x.backend.name == "numpy"
    assert x.device == "numpy:cpu"


def test_requires_grad_and_is_leaf(xp):
    x = Variable(xp.asarray([1.0, 2.0]))
    assert x.requires_grad and x.is_leaf
    y = x * 2
    assert y.requires_grad and not y.is_leaf
    with agrad.no_grad():
        z = x * 2
    assert z.is_leaf and z.creator is None
    # integer Variables take part, as in DeZero's book (their gradients come in floating point)
    assert Variable(xp.asarray([1, 2])).requires_grad is True
    assert Variable(xp.asarray([True, False])).requires_grad is False
    assert (x > 0).requires_grad is False
    assert Variable(None).requires_grad is False
    with pytest.raises(AttributeError):
        x.requires_grad = False  # read-only: agrad decides by dtype and graph


def test_device_names_backend_and_device(xp):
    backend = agrad.current_backend()
    device = Variable(xp.asarray([1.0])).device
    expected = {"cupy": "cupy:0"}.get(backend.name, f"{backend.name}:cpu")
    assert device == expected


@pytest.mark.parametrize(
    ("method", "function"),
    [
        (lambda v: v.mean(), lambda v: F.mean(v)),
        (lambda v: v.mean(axis=1, keepdims=True), lambda v: F.mean(v, 1, True)),
        (lambda v: v.sum(0), lambda v: F.sum(v, 0)),
        (lambda v: v.max(axis=1), lambda v: F.max(v, 1)),
        (lambda v: v.min(), lambda v: F.min(v)),
        (lambda v: v.exp(), F.exp),
        (lambda v: abs(v).log(), lambda v: F.log(F.abs(v))),
        (lambda v: v.sin(), F.sin),
        (lambda v: v.cos(), F.cos),
        (lambda v: v.tanh(), F.tanh),
        (lambda v: abs(v).sqrt(), lambda v: F.sqrt(F.abs(v))),
        (lambda v: v.square(), F.square),
        (lambda v: v.abs(), F.abs),
        (lambda v: v.sign(), F.sign),
        (lambda v: v.relu(), F.relu),
        (lambda v: v.sigmoid(), F.sigmoid),
        (lambda v: v.clip(-1.0, 1.0), lambda v: F.clip(v, -1.0, 1.0)),
    ],
)
def test_method_forms_match_the_functions(xp, method, function):
    a = Variable(xp.asarray(DATA))
    b = Variable(xp.asarray(DATA))
    ya, yb = method(a), function(b)
    np.testing.assert_array_equal(host(ya), host(yb))
    F.sum(ya * ya).backward()
    F.sum(yb * yb).backward()
    np.testing.assert_array_equal(host(a.grad), host(b.grad))


# -- Model / Layer ------------------------------------------------------------------------------
class Net(agrad.Model):
    """Linear -> BatchNorm -> dropout -> Linear: every piece that has state or a mode."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = agrad.layers.Linear(4, in_size=3)
        self.bn = agrad.layers.BatchNorm()
        self.l2 = agrad.layers.Linear(2, in_size=4)

    def forward(self, x):
        return self.l2(F.dropout(self.bn(self.l1(x)), 0.5))


def batch(xp, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal((5, 3)))


NET_NAMES = ["l1.W", "l1.b", "bn.avg_mean", "bn.avg_var", "bn.gamma", "bn.beta", "l2.W", "l2.b"]


def test_parameters_and_named_parameters(xp):
    model = Net()
    model(batch(xp))
    assert [id(p) for p in model.parameters()] == [id(p) for p in model.params()]
    assert [name for name, _ in model.named_parameters()] == NET_NAMES
    named = dict(model.named_parameters(prefix="net."))
    assert named["net.l1.W"] is model.l1.W and named["net.bn.avg_var"] is model.bn.avg_var


def test_zero_grad_clears_every_gradient(xp):
    model = Net()
    F.sum(model(batch(xp))).backward()
    assert model.l1.W.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def _run(model, x):
    """The output and whether BatchNorm's running mean moved."""
    before = host(model.bn.avg_mean).copy() if model.bn.avg_mean.data is not None else None
    y = host(model(x))
    after = host(model.bn.avg_mean)
    return y, before is None or not np.array_equal(before, after)


@pytest.mark.parametrize("layer_train", [True, False])
@pytest.mark.parametrize("global_train", [True, False])
def test_train_eval_combine_with_the_global_switch(xp, layer_train, global_train):
    agrad.seed(0)
    model = Net()
    x = batch(xp)
    model(x)  # create the parameters and move the running statistics once
    model.train(layer_train)
    assert all(layer.training is layer_train for layer in (model, model.l1, model.bn, model.l2))
    with agrad.using_config("train", global_train):
        first, moved = _run(model, x)
        second, _ = _run(model, x)
    training = layer_train and global_train  # a layer trains only if both say so
    assert moved is training  # batch_norm updates its running statistics only in training
    # dropout draws a new mask each call in training, none in test mode
    assert np.array_equal(first, second) is not training
    assert agrad.Config.train is True  # the global switch is restored after the block


def test_eval_mode_matches_global_test_mode(xp):
    model = Net()
    x = batch(xp)
    model(x)
    with agrad.test_mode():
        expected = host(model(x))
    np.testing.assert_array_equal(host(model.eval()(x)), expected)
    assert agrad.Config.train is True  # eval() changes the model, never the global switch
    with pytest.raises(TypeError, match="mode must be True or False"):
        model.train("yes")


def test_state_dict_is_a_copy_and_round_trips(xp):
    model = Net()
    x = batch(xp)
    model(x)
    state = model.state_dict()
    assert list(state) == NET_NAMES
    assert all(type(a) is type(model.l1.W.data) for a in state.values())
    saved = {k: host(v).copy() for k, v in state.items()}
    F.sum(model(x)).backward()
    optimizer = agrad.optimizers.SGD(lr=0.5).setup(model)
    optimizer.update()  # training on changes the model, not the dict taken before
    for name, value in state.items():
        np.testing.assert_array_equal(host(value), saved[name])
    fresh = Net()
    fresh(x)
    assert fresh.load_state_dict(state) == ([], [])
    for name, param in fresh.named_parameters():
        np.testing.assert_array_equal(host(param), saved[name])
    model.eval(), fresh.eval()
    model.load_state_dict(state)
    np.testing.assert_array_equal(host(model(x)), host(fresh(x)))


def test_state_dict_loads_into_a_model_not_run_yet(xp):
    model = Net()
    model(batch(xp))
    fresh = Net()
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(host(fresh.bn.avg_var), host(model.bn.avg_var))
    with pytest.raises(ValueError, match="not initialised yet"):
        Net().state_dict()


def test_load_state_dict_is_strict_and_all_or_nothing(xp):
    model = Net()
    model(batch(xp))
    good = model.state_dict()
    before = {k: host(v).copy() for k, v in good.items()}
    fresh = Net()
    fresh(batch(xp, 1))
    original = {k: host(v).copy() for k, v in fresh.state_dict().items()}

    def unchanged():
        for name, param in fresh.named_parameters():
            np.testing.assert_array_equal(host(param), original[name])

    missing = dict(good)
    del missing["bn.avg_var"]
    with pytest.raises(agrad.layers.WeightsMismatchError, match=r"missing from .*bn\.avg_var"):
        fresh.load_state_dict(missing)
    unchanged()
    extra = dict(good, **{"l3.W": good["l2.W"]})
    with pytest.raises(agrad.layers.WeightsMismatchError, match=r"not in the layer: l3\.W"):
        fresh.load_state_dict(extra)
    unchanged()
    wrong_shape = dict(good, **{"l2.W": xp.zeros((5, 2))})
    with pytest.raises(agrad.layers.WeightsMismatchError, match=r"wrong shape: l2\.W"):
        fresh.load_state_dict(wrong_shape)
    unchanged()
    integral = dict(good, **{"l2.b": xp.asarray([1, 2])})  # int into float: allowed, cast
    fresh.load_state_dict(integral)
    assert fresh.l2.b.dtype == fresh.l2.W.dtype
    np.testing.assert_array_equal(host(fresh.l2.b), [1.0, 2.0])
    fresh.load_state_dict({k: xp.asarray(v) for k, v in original.items()})
    with pytest.raises(TypeError, match="must be an array"):
        fresh.load_state_dict(dict(good, **{"l2.b": [1.0, 2.0]}))
    with pytest.raises(TypeError, match="must be a dict"):
        fresh.load_state_dict(list(good.items()))
    unchanged()
    # not strict: the names both have, and what was left out
    partial = {"l1.W": good["l1.W"], "l9.W": good["l1.W"]}
    result = fresh.load_state_dict(partial, strict=False)
    assert result == ([n for n in NET_NAMES if n != "l1.W"], ["l9.W"])
    np.testing.assert_array_equal(host(fresh.l1.W), before["l1.W"])
    np.testing.assert_array_equal(host(fresh.l2.W), original["l2.W"])


def test_load_state_dict_refuses_an_unsafe_cast(xp):
    model = agrad.layers.Linear(2, in_size=3, dtype="float32")
    if agrad.current_backend().name == "array_api_strict":
        bad = {"W": np.full((3, 2), 1e300), "b": np.zeros(2)}
    else:
        bad = {"W": xp.asarray(np.full((3, 2), 1e300)), "b": xp.zeros(2)}
    before = host(model.W).copy()
    with pytest.raises(ValueError, match=r"too large for the parameter's float32"):
        model.load_state_dict(bad)
    np.testing.assert_array_equal(host(model.W), before)  # nothing was assigned


# -- Optimizer ----------------------------------------------------------------------------------
class Small(agrad.Model):
    """No dropout: a resumed run must repeat the uninterrupted one bit for bit."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = agrad.layers.Linear(4, in_size=3)
        self.bn = agrad.layers.BatchNorm()
        self.l2 = agrad.layers.Linear(1, in_size=4)

    def forward(self, x):
        return self.l2(F.tanh(self.bn(self.l1(x))))


def _train_steps(model, optimizer, xp, steps):
    for step in steps:
        x = batch(xp, step)
        loss = F.sum(model(x) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


OPTIMIZERS = {
    "SGD": lambda: agrad.optimizers.SGD(lr=0.1),
    "MomentumSGD": lambda: agrad.optimizers.MomentumSGD(lr=0.1, momentum=0.8),
    "Adam": lambda: agrad.optimizers.Adam(alpha=0.05),
    "AdaGrad": lambda: agrad.optimizers.AdaGrad(lr=0.05),
    "AdaDelta": lambda: agrad.optimizers.AdaDelta(),
}


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_checkpoint_and_resume_equals_the_uninterrupted_run(xp, kind):
    agrad.seed(1)
    whole = Small()
    agrad.seed(1)
    interrupted = Small()
    for model in (whole, interrupted):
        model(batch(xp, 99))  # create the parameters from the same seed
    make = OPTIMIZERS[kind]
    optimizer = make().setup(whole)
    _train_steps(whole, optimizer, xp, range(6))

    first = make().setup(interrupted)
    _train_steps(interrupted, first, xp, range(3))
    checkpoint = {"model": interrupted.state_dict(), "optimizer": first.state_dict()}
    _train_steps(interrupted, first, xp, range(3, 5))  # training on must not touch the copy

    resumed = Small()
    resumed.load_state_dict(checkpoint["model"])
    second = make().setup(resumed)
    second.load_state_dict(checkpoint["optimizer"])
    _train_steps(resumed, second, xp, range(3, 6))
    for (name, a), (_, b) in zip(whole.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(host(a), host(b), err_msg=name)
    assert second.state_dict()["hyperparameters"] == optimizer.state_dict()["hyperparameters"]


def test_optimizer_state_dict_names_and_copies(xp):
    model = Small()
    model(batch(xp))
    optimizer = agrad.optimizers.Adam().setup(model)
    _train_steps(model, optimizer, xp, range(2))
    state = optimizer.state_dict()
    assert state["type"] == "Adam"
    assert state["hyperparameters"]["t"] == 2
    trained = [n for n in NET_NAMES if "avg_" not in n]  # running statistics get no gradient
    assert list(state["state"]["ms"]) == trained and list(state["state"]["vs"]) == trained
    m = state["state"]["ms"]["l1.W"]
    assert m is not optimizer.ms[model.l1.W] and type(m) is type(model.l1.W.data)
    # a list of Parameters is keyed by position
    p = agrad.Parameter(xp.asarray([1.0, 2.0]))
    p.grad = Variable(xp.asarray([1.0, 1.0]))
    momentum = agrad.optimizers.MomentumSGD().setup([p])
    momentum.step()
    assert list(momentum.state_dict()["state"]["vs"]) == [0]


def test_optimizer_load_state_dict_is_checked_and_all_or_nothing(xp):
    model = Small()
    model(batch(xp))
    adam = agrad.optimizers.Adam().setup(model)
    _train_steps(model, adam, xp, range(2))
    good = adam.state_dict()
    target = agrad.optimizers.Adam(alpha=0.5).setup(model)
    _train_steps(model, target, xp, range(1))
    before = target.state_dict()

    def unchanged():
        after = target.state_dict()
        assert after["hyperparameters"] == before["hyperparameters"]
        for slot, entries in before["state"].items():
            for name, array in entries.items():
                np.testing.assert_array_equal(host(after["state"][slot][name]), host(array))

    def with_entry(slot, name, value):
        state = {"type": "Adam", "hyperparameters": dict(good["hyperparameters"]),
                 "state": {k: dict(v) for k, v in good["state"].items()}}  # fmt: skip
        state["state"][slot][name] = value
        return state

    momentum = agrad.optimizers.MomentumSGD().setup(model)
    _train_steps(model, momentum, xp, range(1))
    cases = [
        (momentum.state_dict(), TypeError, "saved from 'MomentumSGD', not from 'Adam'"),
        ([1, 2], TypeError, "state must be a dict"),
        (dict(good, hyperparameters={**good["hyperparameters"], "t": -1}), TypeError, "count"),
        (dict(good, hyperparameters={**good["hyperparameters"], "t": 2.5}), TypeError, "count"),
        (dict(good, hyperparameters={**good["hyperparameters"], "alpha": "a"}), TypeError,
         "'alpha'"),
        (dict(good, hyperparameters={"t": 1}), ValueError, "hyperparameters differ"),
        (with_entry("ms", "l9.W", good["state"]["ms"]["l1.W"]), ValueError, "'l9.W'"),
        (with_entry("ms", "l2.b", xp.zeros(3)), ValueError, r"shape \(3,\)"),
        (with_entry("vs", "l2.b", [0.0]), TypeError, "must be an array"),
        (with_entry("vs", "l2.b", np.array(["x"])), TypeError, "strings"),
    ]  # fmt: skip
    for state, error, message in cases:
        with pytest.raises(error, match=message):
            target.load_state_dict(state)
        unchanged()
    target.load_state_dict(good)
    assert target.t == 2 and target.alpha == good["hyperparameters"]["alpha"]


def test_optimizer_step_and_zero_grad(xp):
    p = agrad.Parameter(xp.asarray([1.0, 2.0]))
    p.grad = Variable(xp.asarray([1.0, -1.0]))
    optimizer = agrad.optimizers.SGD(lr=0.5).setup([p])
    optimizer.step()
    np.testing.assert_array_equal(host(p), [0.5, 2.5])
    optimizer.zero_grad()
    assert p.grad is None
    with pytest.raises(RuntimeError, match="call setup"):
        agrad.optimizers.SGD().zero_grad()
