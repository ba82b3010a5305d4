"""An MLP on MNIST (the book's step 51), when the MNIST files are on this machine.

Without them it says how to get them and exits: ``--download`` fetches the four files once
(about 11 MB, checked against their SHA-256 sums) into ``$AGRAD_DATA_DIR/mnist`` or
``~/.agrad/datasets/mnist``; copying the four ``*-ubyte.gz`` files there works too.

    python examples/mnist.py [--backend cupy] [--quick] [--download]
"""

from __future__ import annotations

import argparse
import sys
import time

import agrad
import agrad.functions as F
from agrad import DataLoader, optimizers
from agrad.datasets import MNIST
from agrad.models import MLP


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy, cupy or array_api_strict")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 2000 images")
    parser.add_argument("--download", action="store_true", help="fetch the files if missing")
    args = parser.parse_args()
    if not args.download and not (MNIST.available(train=True) and MNIST.available(train=False)):
        print(
            f"MNIST files not found in {MNIST.folder()}.\n"
            "Get them once with:  python examples/mnist.py --download\n"
            "or copy train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz there "
            "(set AGRAD_DATA_DIR to use another folder)."
        )
        return 0
    if args.backend:
        agrad.use(args.backend)
    epochs = 1 if args.quick else args.epochs

    train_set, test_set = MNIST(train=True), MNIST(train=False)
    if args.quick:
        for dataset, n in ((train_set, 2000), (test_set, 1000)):
            dataset.data, dataset.label = dataset.data[:n], dataset.label[:n]
    agrad.seed(0)
    train_loader = DataLoader(train_set, batch_size=100)
    test_loader = DataLoader(test_set, batch_size=100, shuffle=False)
    model = MLP((1000, 10), activation=F.relu)
    optimizer = optimizers.Adam().setup(model)

    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        total_loss = total_acc = 0.0
        for x, t in train_loader:
            y = model(x)
            loss = F.softmax_cross_entropy(y, t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            total_loss += float(loss.data) * t.shape[0]
            total_acc += float(F.accuracy(y, t).data) * t.shape[0]
        correct = 0.0
        with agrad.no_grad(), agrad.test_mode():
            for x, t in test_loader:
                correct += float(F.accuracy(model(x), t).data) * t.shape[0]
        n = len(train_set)
        print(
            f"epoch {epoch}  train loss {total_loss / n:.4f} accuracy {total_acc / n:.4f}  "
            f"test accuracy {correct / len(test_set):.4f}"
        )
    backend = agrad.current_backend()
    print(
        f"{epochs} epochs on {backend.name} ({backend.device_name()}) in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
