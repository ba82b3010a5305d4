"""Data-parallel training across processes and machines (modelled on ChainerMN).

Launch the usual training script with ``mpiexec -n N python train.py``; in it::

    comm = agrad.distributed.create_communicator("mpi")   # or "nccl" (CuPy on GPUs), "auto"
    optimizer = create_multi_node_optimizer(agrad.optimizers.Adam(), comm).setup(model)
    train = scatter_dataset(agrad.datasets.Spiral(), comm, shuffle=True, seed=0)

Every ``optimizer.update()`` averages the gradients over all processes (in buckets, sent during
backward from the second step on) before the wrapped optimizer steps; ``setup`` broadcasts rank
0's parameters (lazily created ones at the first ``update()``).
Nothing here imports mpi4py or CuPy until a communicator is created.

The examples in these docstrings run in one process without MPI: where a communicator is needed
they pass a stand-in with the attributes that function uses. What needs a real MPI job is shown
as a ``code-block`` (run it with ``mpiexec -n 2 python script.py``).

Examples
--------
.. code-block:: python

    import agrad
    import agrad.functions as F
    from agrad.distributed import (
        create_communicator, create_multi_node_optimizer, scatter_dataset
    )

    comm = create_communicator("mpi")
    agrad.seed(comm.rank)  # each process shuffles its shard differently
    model = agrad.models.MLP((10, 3))
    optimizer = create_multi_node_optimizer(agrad.optimizers.SGD(lr=1.0), comm).setup(model)
    shard = scatter_dataset(agrad.datasets.Spiral(), comm, shuffle=True, seed=0)
    for x, t in agrad.DataLoader(shard, batch_size=30):
        loss = F.softmax_cross_entropy(model(x), t)
        model.cleargrads()
        loss.backward()
        optimizer.update()  # gradients averaged over every process, then one SGD step
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
