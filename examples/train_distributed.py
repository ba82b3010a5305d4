"""Data-parallel training of the spiral MLP: the usual DeZero loop plus three lines.

mpiexec -n 2 python examples/train_distributed.py            # one machine, two processes
mpiexec -n 8 --hostfile hosts python examples/train_distributed.py   # several machines
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()
    if args.backend:
        agrad.use(args.backend)
    epochs = 10 if args.quick else args.epochs

    comm = dist.create_communicator(args.communicator)
    agrad.seed(0)  # every process starts from the same weights
    train = dist.scatter_dataset(datasets.Spiral(), comm, shuffle=True, seed=0)
    loader = DataLoader(train, max(1, args.batch_size // comm.size))
    model = models.MLP((10, 3))
    optimizer = dist.create_multi_node_optimizer(optimizers.SGD(lr=1.0), comm).setup(model)

    start = time.perf_counter()
    for epoch in range(epochs):
        total_loss, total_acc, batches = 0.0, 0.0, 0
        for x, t in loader:
            y = model(x)
            loss = F.softmax_cross_entropy(y, t)
            model.cleargrads()
            loss.backward()
            optimizer.update()
            total_loss += float(loss.data)
            total_acc += float(F.accuracy(y, t).data)
            batches += 1
        mean_loss = comm.allreduce(agrad.as_array(total_loss / batches), op="mean")
        mean_acc = comm.allreduce(agrad.as_array(total_acc / batches), op="mean")
        if comm.rank == 0 and (epoch + 1) % max(1, epochs // 10) == 0:
            print(
                f"epoch {epoch + 1:4d}  loss {float(mean_loss):.4f}  "
                f"accuracy {float(mean_acc):.3f}  ({comm.size} processes, {comm.name})"
            )
    if comm.rank == 0:
        print(f"trained in {time.perf_counter() - start:.1f} s on {comm.size} processes")


if __name__ == "__main__":
    main()
