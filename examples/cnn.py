"""A small convolutional network on generated images: bars that are horizontal, vertical or
diagonal, at random positions, in noise. Runs offline on any backend.

    python examples/cnn.py [--backend array_api_strict] [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import agrad
import agrad.functions as F
import agrad.layers as L
from agrad import DataLoader, Dataset, Model, optimizers

CLASSES = ("horizontal", "vertical", "diagonal")


class Bars(Dataset):
    """``size`` x ``size`` grey images (1 channel) of one bar each, and the bar's direction."""

    def __init__(self, n: int = 600, size: int = 12, train: bool = True) -> None:
        self.n, self.size = n, size
        super().__init__(train=train)

    def prepare(self) -> None:
        rng = np.random.RandomState(0 if self.train else 1)
        n, size = self.n, self.size
        images = rng.rand(n, 1, size, size) * 0.5
        labels = rng.randint(0, len(CLASSES), size=n)
        for i, label in enumerate(labels):
            offset = rng.randint(-size // 3, size // 3 + 1)
            if label == 0:
                images[i, 0, size // 2 + offset, :] += 1.0
            elif label == 1:
                images[i, 0, :, size // 2 + offset] += 1.0
            else:
                images[i, 0] += np.eye(size, k=offset)
        self.data = images.astype(np.float32)
        self.label = labels.astype(np.int64)


class SmallCNN(Model):
    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.conv1 = L.Conv2d(8, kernel_size=3, pad=1)
        self.conv2 = L.Conv2d(16, kernel_size=3, pad=1)
        self.fc = L.Linear(n_classes)

    def forward(self, x):
        x = F.pooling(F.relu(self.conv1(x)), 2, 2)
        x = F.pooling(F.relu(self.conv2(x)), 2, 2)
        return self.fc(F.flatten(x))


def accuracy(model: Model, loader: DataLoader) -> float:
    correct = count = 0
    with agrad.no_grad(), agrad.test_mode():
        for x, t in loader:
            correct += float(F.accuracy(model(x), t).data) * t.shape[0]
            count += t.shape[0]
    return correct / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy, cupy or array_api_strict")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 128 images")
    args = parser.parse_args()
    if args.backend:
        agrad.use(args.backend)
    epochs, n = (1, 128) if args.quick else (args.epochs, 600)

    agrad.seed(0)
    train_loader = DataLoader(Bars(n, train=True), batch_size=32)
    test_loader = DataLoader(Bars(200, train=False), batch_size=100, shuffle=False)
    model = SmallCNN(len(CLASSES))
    optimizer = optimizers.Adam(alpha=0.01).setup(model)

    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        total = 0.0
        for x, t in train_loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            total += float(loss.data) * t.shape[0]
        print(
            f"epoch {epoch}  loss {total / n:.4f}  test accuracy {accuracy(model, test_loader):.3f}"
        )
    backend = agrad.current_backend()
    print(f"{epochs} epochs on {backend.name} in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
