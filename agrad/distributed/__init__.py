"""Data-parallel training across processes and machines (modelled on ChainerMN).

Launch the usual training script with ``mpiexec -n N python train.py``; in it::

    comm = agrad.distributed.create_communicator("mpi")   # or "nccl" (CuPy on GPUs), "auto"
    optimizer = create_multi_node_optimizer(agrad.optimizers.Adam(), comm).setup(model)
    train = scatter_dataset(agrad.datasets.Spiral(), comm, shuffle=True, seed=0)

Every ``optimizer.update()`` averages the gradients over all processes (one collective per
dtype) before the wrapped optimizer steps; the first one broadcasts rank 0's parameters.
Nothing here imports mpi4py or CuPy until a communicator is created.
"""

from __future__ import annotations

from agrad.distributed.communicator import Communicator, create_communicator
from agrad.distributed.dataset import SubDataset, scatter_dataset
from agrad.distributed.optimizer import MultiNodeOptimizer, create_multi_node_optimizer

__all__ = [
    "Communicator",
    "MultiNodeOptimizer",
    "SubDataset",
    "create_communicator",
    "create_multi_node_optimizer",
    "scatter_dataset",
]
