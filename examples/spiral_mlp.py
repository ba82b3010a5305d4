"""Classify the spiral data set with an MLP (the book's steps 48-50), then save and reload it.

Mini-batches come from ``agrad.DataLoader`` on the chosen backend; test accuracy is measured in
``agrad.test_mode()`` without building a graph; the weights are written with ``save_weights``
(an ``.npz`` file that loads on any backend) and read back with ``load_weights``.

    python examples/spiral_mlp.py [--backend array_api_strict] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import agrad
import agrad.functions as F
from agrad import DataLoader, optimizers
from agrad.datasets import Spiral
from agrad.models import MLP


def evaluate(model: MLP, loader: DataLoader) -> tuple[float, float]:
    total_loss = total_acc = 0.0
    count = 0
    with agrad.no_grad(), agrad.test_mode():
        for x, t in loader:
            y = model(x)
            n = t.shape[0]
            total_loss += float(F.softmax_cross_entropy(y, t).data) * n
            total_acc += float(F.accuracy(y, t).data) * n
            count += n
    return total_loss / count, total_acc / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy, cupy or array_api_strict")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="5 epochs only")
    args = parser.parse_args()
    if args.backend:
        agrad.use(args.backend)
    epochs = 5 if args.quick else args.epochs

    train_set, test_set = Spiral(train=True), Spiral(train=False)
    agrad.seed(0)
    train_loader = DataLoader(train_set, batch_size=30)
    test_loader = DataLoader(test_set, batch_size=30, shuffle=False)
    model = MLP((10, 3))
    optimizer = optimizers.SGD(lr=1.0).setup(model)

    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for x, t in train_loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
        if epoch % max(1, epochs // 10) == 0 or epoch == epochs:
            train_loss, train_acc = evaluate(model, train_loader)
            test_loss, test_acc = evaluate(model, test_loader)
            print(
                f"epoch {epoch:4d}  train loss {train_loss:.4f} accuracy {train_acc:.4f}  "
                f"test loss {test_loss:.4f} accuracy {test_acc:.4f}"
            )
    backend = agrad.current_backend()
    print(f"{epochs} epochs on {backend.name} in {time.perf_counter() - start:.2f} s")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "spiral_mlp.npz")
        model.save_weights(path)
        restored = MLP((10, 3))
        restored.load_weights(path)
        _, acc = evaluate(restored, test_loader)
        print(f"weights saved to and reloaded from an .npz file: test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
