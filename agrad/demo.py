"""``python -m agrad.demo``: train an MLP on the spiral data set and report how it went.

The book's step 48 set-up (2 -> 10 -> 3 sigmoid MLP, SGD with lr 1.0, batches of 30, 300
epochs) on the backend of your choice, with a progress bar, loss and accuracy per epoch, the
backend and device used and the time taken. It reaches about 97% training accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import agrad
import agrad.functions as F
from agrad import optimizers
from agrad.datasets import Spiral
from agrad.models import MLP

DEFAULT_EPOCHS = 300
QUICK_EPOCHS = 10


#: the keywords both parsers of the demo are made with (``python -m agrad.demo``, ``agrad demo``)
PARSER: dict[str, Any] = {
    "description": "Train an MLP on the spiral data set (DeZero step 48) with agrad.",
}


def backend_name(value: str) -> str:
    """``--backend``'s type: a known backend name or alias, else argparse's usage error (exit 2)
    naming the known backends, rather than a traceback later."""
    try:
        return agrad.get_backend(value).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the demo's options to ``parser`` (the demo's own, or the ``agrad demo`` subcommand's);
    returns it. New options go here, and :func:`run` reads them."""
    names = ", ".join(agrad.known_backends())
    parser.add_argument(
        "--backend",
        default=None,
        type=backend_name,
        metavar="NAME",
        help=f"one of {names} (default: $AGRAD_BACKEND, else numpy); an unusable one falls "
        "back to numpy with a warning",
    )
    parser.add_argument("--epochs", type=int, default=None, help=f"default {DEFAULT_EPOCHS}")
    parser.add_argument(
        "--quick", action="store_true", help=f"a smoke run of {QUICK_EPOCHS} epochs"
    )
    parser.add_argument("--batch-size", type=int, default=30)
    parser.add_argument("--hidden-size", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1.0, help="SGD learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--jit", action="store_true", help="compile the training step with agrad.jit"
    )
    return parser


def build_parser(prog: str = "python -m agrad.demo") -> argparse.ArgumentParser:
    """The demo's command-line parser."""
    return add_arguments(argparse.ArgumentParser(prog=prog, **PARSER))


def train(
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = 30,
    hidden_size: int = 10,
    lr: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    log: Any = print,
    jit: bool = False,
) -> dict[str, Any]:
    """Train on the current backend; returns the numbers (loss per epoch, accuracies, seconds).

    The weights, the data and the order of the batches come from the host's generator, so a
    seed gives the same losses on every backend (to float32 precision: the layers are float32).
    """
    from tqdm import tqdm

    backend = agrad.current_backend()
    train_set = Spiral(train=True)  # reseeds NumPy's RNG itself (DeZero's fixed data)
    agrad.seed(seed)
    loader = agrad.DataLoader(train_set, batch_size)
    model = MLP((hidden_size, 3))
    optimizer = optimizers.SGD(lr).setup(model)

    def step(x: Any, t: Any) -> tuple[Any, Any]:
        y = model(x)
        batch_loss = F.softmax_cross_entropy(y, t)
        model.cleargrads()
        batch_loss.backward()
        optimizer.update()
        return batch_loss, F.accuracy(y, t)

    if jit:  # traced at the first batch (and at a last batch of another size), then replayed
        step = agrad.jit(step)

    log(
        f"agrad {agrad.__version__} demo: spiral data ({len(train_set)} points, 3 classes), "
        f"MLP 2 -> {hidden_size} -> 3 (sigmoid), SGD lr={lr}, batch {batch_size}, "
        f"{epochs} epochs" + (", agrad.jit" if jit else "")
    )
    log(f"backend: {backend.name} on {backend.device_name()}")
    every = 1 if epochs <= 20 else max(1, epochs // 10)
    # disable=None: no bar when stderr is not a terminal (logs, CI), the epoch lines remain
    bar = tqdm(
        range(1, epochs + 1), desc="training", unit="epoch", disable=None if progress else True
    )
    loss = accuracy = float("nan")
    losses = []
    start = time.perf_counter()
    for epoch in bar:
        # the sums stay on the backend's device: one host read per epoch, not two per batch
        sum_loss = sum_acc = None
        count = 0
        for x, t in loader:
            batch_loss, batch_acc = step(x, t)
            n = t.shape[0]
            batch_acc = batch_acc.data * n
            if sum_loss is None:
                sum_loss, sum_acc = batch_loss.data * n, batch_acc
            else:
                sum_loss, sum_acc = sum_loss + batch_loss.data * n, sum_acc + batch_acc
            count += n
        loss, accuracy = float(sum_loss) / count, float(sum_acc) / count
        losses.append(loss)
        bar.set_postfix(loss=f"{loss:.4f}", accuracy=f"{accuracy:.3f}")
        if epoch % every == 0 or epoch == epochs:
            message = f"epoch {epoch:4d}  loss {loss:.4f}  accuracy {accuracy:.4f}"
            if bar.disable:
                log(message)
            else:
                bar.write(message)
    bar.close()
    seconds = time.perf_counter() - start

    train_accuracy = _accuracy(model, train_set, backend)
    test_accuracy = _accuracy(model, Spiral(train=False), backend)
    log(
        f"trained {epochs} epochs in {seconds:.2f} s on {backend.name} ({backend.device_name()}): "
        f"training accuracy {train_accuracy:.1%}, test accuracy {test_accuracy:.1%}"
    )
    return {
        "backend": backend.name,
        "device": backend.device_name(),
        "epochs": epochs,
        "loss": loss,
        "losses": losses,
        "accuracy": accuracy,
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "seconds": seconds,
    }


def _accuracy(model: Any, dataset: Any, backend: Any) -> float:
    """Accuracy on a whole data set, in test mode and without building a graph."""
    with agrad.no_grad(), agrad.test_mode():
        x = backend.asarray(dataset.data)
        t = backend.asarray(dataset.label)
        return float(F.accuracy(model(x), t).data)


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed options (from :func:`build_parser` or ``agrad demo``)."""
    if args.backend is not None:
        agrad.use(args.backend)
    epochs = args.epochs if args.epochs is not None else QUICK_EPOCHS if args.quick else None
    train(
        epochs=epochs if epochs is not None else DEFAULT_EPOCHS,
        batch_size=args.batch_size,
        hidden_size=args.hidden_size,
        lr=args.lr,
        seed=args.seed,
        progress=not args.no_progress,
        jit=args.jit,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m agrad.demo``."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
