"""Predict the next value of a sine wave with an LSTM (the book's step 60).

Truncated backpropagation through time: ``SeqDataLoader`` feeds parallel streams in order, the
loss is accumulated over ``bptt_length`` steps, and ``unchain_backward`` cuts the graph after
each update so the next stretch starts from the current state without keeping the old graph.

    python examples/sin_lstm.py [--backend array_api_strict] [--quick]
"""

from __future__ import annotations

import argparse
import time

import agrad
import agrad.functions as F
import agrad.layers as L
from agrad import Model, SeqDataLoader, optimizers
from agrad.datasets import SinCurve
from agrad.transforms import AsType


class BetterRNN(Model):
    def __init__(self, hidden_size: int, out_size: int) -> None:
        super().__init__()
        self.rnn = L.LSTM(hidden_size)
        self.fc = L.Linear(out_size)

    def reset_state(self) -> None:
        self.rnn.reset_state()

    def forward(self, x):
        return self.fc(self.rnn(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy, cupy or array_api_strict")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="2 epochs of a smaller LSTM")
    args = parser.parse_args()
    if args.backend:
        agrad.use(args.backend)
    epochs, hidden_size = (2, 20) if args.quick else (args.epochs, 100)
    batch_size, bptt_length = 30, 30

    # float32 items: the curve is float64 (as in DeZero), the LSTM's weights float32
    train_set = SinCurve(train=True, transform=AsType("float32"), target_transform=AsType())
    loader = SeqDataLoader(train_set, batch_size=batch_size)
    seqlen = len(train_set)
    agrad.seed(0)
    model = BetterRNN(hidden_size, 1)
    optimizer = optimizers.Adam().setup(model)

    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.reset_state()
        loss, count, total = 0, 0, 0.0
        for x, t in loader:
            loss += F.mean_squared_error(model(x), t)
            count += 1
            if count % bptt_length == 0 or count == seqlen:
                model.cleargrads()
                loss.backward()
                loss.unchain_backward()
                optimizer.update()
                total += float(loss.data)
                loss = 0
        if epoch % max(1, epochs // 10) == 0 or epoch == epochs:
            print(f"epoch {epoch:4d}  loss {total / count:.6f}")
    backend = agrad.current_backend()
    print(f"{epochs} epochs on {backend.name} in {time.perf_counter() - start:.2f} s")

    # predict the cosine curve of the test split one step at a time
    test_set = SinCurve(train=False)
    model.reset_state()
    error = 0.0
    with agrad.no_grad(), agrad.test_mode():
        for value, target in zip(test_set.data[:200], test_set.label[:200]):
            x = backend.asarray(value.reshape(1, 1), dtype="float32")
            error += (float(model(x).data[0, 0]) - float(target[0])) ** 2
    print(f"mean squared error of one-step predictions of cos(x): {error / 200:.5f}")


if __name__ == "__main__":
    main()
