"""A user's script, type-checked with ``mypy --strict`` in the lint session and in CI.

It exercises agrad's public API the way the guides do, so an annotation of agrad that is missing
or wrong shows up here as an error in user code. pytest does not collect it (not ``test_*``).

A ``# type: ignore[...]`` below marks a known gap in agrad's annotations; ``--strict`` reports an
ignore that is no longer needed, so fixing the gap fails this check until the ignore goes.
"""

from __future__ import annotations

import agrad
import agrad.functions as F
import agrad.layers as L
from agrad import DataLoader, Variable, optimizers, transforms
from agrad.datasets import Spiral
from agrad.models import MLP, Model, Sequential
from agrad.utils import array_allclose, array_equal, get_dot_graph, gradient_check


class Net(Model):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = L.Linear(10)
        self.l2 = L.Linear(3)

    def forward(self, x: Variable) -> Variable:
        # Layer.__call__ is annotated as returning Any
        return self.l2(F.sigmoid(self.l1(x)))  # type: ignore[no-any-return]


def train(epochs: int) -> float:
    agrad.seed(0)
    backend: agrad.backends.Backend = agrad.use("numpy")
    model: Model = MLP((10, 3)) if epochs > 1 else Sequential(L.Linear(3))
    optimizer: optimizers.Optimizer = optimizers.SGD(lr=1.0).setup(model)
    optimizer.add_hook(optimizers.WeightDecay(1e-4))
    loader = DataLoader(Spiral(transform=transforms.AsType("float32")), batch_size=30)
    loss = Variable(backend.asarray(0.0))
    for _ in range(epochs):
        for x, t in loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
    with agrad.test_mode(), agrad.no_grad():
        pass
    return float(loss.data)


def derivative() -> bool:
    x = Variable(agrad.as_array(2.0))
    y = x**3 + 2 * x
    y.backward(create_graph=True)
    gx = x.grad
    assert gx is not None
    same = array_allclose(gx, agrad.as_array(14.0))
    return same and gradient_check(F.tanh, x)


def helpers() -> str:
    backend = agrad.current_backend()
    x = Variable(backend.asarray([1.0, 2.0], dtype="float32"), name="x")
    to_unit = transforms.Compose([transforms.Normalize(0.0, 2.0), transforms.Flatten()])
    host = agrad.cuda.as_numpy(to_unit(x.data))
    with agrad.using_config("train", False), agrad.no_grad():
        y = F.sum(F.relu(x))
    clip: optimizers.ClipGrad = optimizers.ClipGrad(1.0)
    adam = optimizers.Adam(alpha=0.01)
    adam.add_hook(clip)
    adam.add_hook(optimizers.FreezeParam(agrad.Parameter(backend.asarray([0.0]))))
    step: float = adam.lr
    same: bool = array_equal(x, host) and agrad.cuda.gpu_enable in (True, False)
    return f"{get_dot_graph(y, verbose=False)[:9]} {step} {same}"


if __name__ == "__main__":
    print(train(1), derivative(), helpers(), Net())
