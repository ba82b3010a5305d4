"""The multi-node evaluator's averaging and its errors, on every backend, without MPI."""

from __future__ import annotations

import types

import pytest

import agrad
import agrad.distributed as dist


def _pair(other: dict):
    """Rank 0 of two; the other process reports ``other``."""
    return types.SimpleNamespace(rank=0, size=2, allgather_obj=lambda obj: [obj, other])


def test_metrics_of_any_kind_are_averaged_over_processes(xp):
    def evaluate():
        return {
            "loss": agrad.Variable(xp.asarray(1.0, dtype=xp.float32)),
            "accuracy": xp.asarray([0.5], dtype=xp.float64),
            "count": 10,
        }

    metrics = dist.create_multi_node_evaluator(
        evaluate, _pair({"loss": 3.0, "accuracy": 1.0, "count": 20.0})
    )()
    assert metrics == {"loss": 2.0, "accuracy": 0.75, "count": 15.0}


def test_a_metric_that_is_not_one_number_is_named(xp):
    evaluator = dist.create_multi_node_evaluator(
        lambda: {"per_class": xp.zeros(3)}, _pair({"per_class": 0.0})
    )
    with pytest.raises(TypeError, match=r"metric 'per_class' .* of shape \(3,\)"):
        evaluator()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="batch_norm must be 'allreduce', 'bcast' or None"):
        dist.create_multi_node_evaluator(lambda: {}, _pair({}), batch_norm="sync")
    with pytest.raises(TypeError, match="must return a dict of metrics, not list"):
        dist.create_multi_node_evaluator(lambda: [1.0], _pair({}))()
