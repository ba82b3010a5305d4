"""Data-parallel training of the spiral MLP: the usual DeZero loop plus three lines.

mpiexec -n 2 python examples/train_distributed.py            # one machine, two processes
mpiexec -n 8 --hostfile hosts python examples/train_distributed.py   # several machines
mpiexec -n 2 python examples/train_distributed.py --checkpoint run.npz   # resumes if it exists

Metrics are evaluated on every process's shard of the test set and averaged over processes.
"""

from __future__ import annotations

import argparse
import os
import time

import agrad
import agrad.distributed as dist
import agrad.functions as F
from agrad import DataLoader, datasets, models, optimizers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None, help="numpy (default), cupy, array_api_strict")
    parser.add_argument("--communicator", default="auto", help="mpi, nccl or auto")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=30, help="global, split over processes")
    parser.add_argument("--quick", action="store_true", help="10 epochs")
    parser.add_argument("--checkpoint", default=None, help="save every epoch; resume from it")
    args = parser.parse_args()
    if args.backend:
        agrad.use(args.backend)
    epochs = 10 if args.quick else args.epochs

    comm = dist.create_communicator(args.communicator)
    agrad.seed(0)  # every process starts from the same weights
    train = dist.scatter_dataset(datasets.Spiral(), comm, shuffle=True, seed=0)
    test = dist.scatter_dataset(datasets.Spiral(train=False), comm)
    loader = DataLoader(train, max(1, args.batch_size // comm.size))
    model = models.MLP((10, 3))
    optimizer = dist.create_multi_node_optimizer(optimizers.SGD(lr=1.0), comm).setup(model)
    first_epoch = 0
    if args.checkpoint and os.path.exists(args.checkpoint):
        first_epoch = dist.load_checkpoint(args.checkpoint, comm, model, optimizer)["epoch"]

    def evaluate() -> dict:
        with agrad.no_grad():
            y = model(test.data)
            return {
                "loss": F.softmax_cross_entropy(y, test.label),
                "accuracy": F.accuracy(y, test.label),
            }

    evaluator = dist.create_multi_node_evaluator(evaluate, comm, model=model)
    start = time.perf_counter()
    for epoch in range(first_epoch, epochs):
        for x, t in loader:
            loss = F.softmax_cross_entropy(model(x), t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
        if args.checkpoint:
            dist.save_checkpoint(args.checkpoint, comm, model, optimizer, epoch=epoch + 1)
        if (epoch + 1) % max(1, epochs // 10) == 0:
            metrics = evaluator()  # every process takes part
            if comm.rank == 0:
                print(
                    f"epoch {epoch + 1:4d}  test loss {metrics['loss']:.4f}  "
                    f"accuracy {metrics['accuracy']:.3f}  ({comm.size} processes, {comm.name})"
                )
    if comm.rank == 0:
        print(f"trained in {time.perf_counter() - start:.1f} s on {comm.size} processes")


if __name__ == "__main__":
    main()
