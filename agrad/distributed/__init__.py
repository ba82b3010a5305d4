"""Data-parallel training across processes and machines (modelled on ChainerMN).

Launch the usual training script with ``mpiexec -n N python train.py``; in it::

    comm = agrad.distributed.create_communicator("mpi")   # or "nccl" (CuPy on GPUs), "auto"
    optimizer = create_multi_node_optimizer(agrad.optimizers.Adam(), comm).setup(model)
    train = scatter_dataset(agrad.datasets.Spiral(), comm, shuffle=True, seed=0)

Every ``optimizer.update()`` averages the gradients over all processes (in buckets, sent during
backward from the second step on) before the wrapped optimizer steps; ``setup`` broadcasts rank
0's parameters (lazily created ones at the first ``update()``).
Nothing here imports mpi4py or CuPy until a communicator is created.
"""

from __future__ import annotations

from agrad.distributed.checkpoint import load_checkpoint, save_checkpoint
from agrad.distributed.communicator import Communicator, create_communicator
from agrad.distributed.dataset import SubDataset, scatter_dataset
from agrad.distributed.evaluation import MultiNodeEvaluator, create_multi_node_evaluator
from agrad.distributed.optimizer import MultiNodeOptimizer, create_multi_node_optimizer

__all__ = [
    "Communicator",
    "MultiNodeEvaluator",
    "MultiNodeOptimizer",
    "SubDataset",
    "create_communicator",
    "create_multi_node_evaluator",
    "create_multi_node_optimizer",
    "load_checkpoint",
    "save_checkpoint",
    "scatter_dataset",
]
