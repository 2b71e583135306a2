"""What a round did: the fused reduction buffer's layout (known only here) and the typed outcome.

Every host fills one int64 buffer per round and one SUM reduction brings them to rank 0::

    [ sums of model m1 (P) | sums of model m2 (P) | ... | metrics (tasks x METRICS) | seconds per rank ]

Sums are ``sum_k w_k theta_k`` in fixed point (hpcfed.round.aggregate) for every model some task trains
(:attr:`hpcfed.round.plan.RoundPlan.trained_models`); the denominators do not travel (rank 0 adds them
from the plan). Metrics are fixed point too, so the reduction is exact in any order.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hpcfed.round.aggregate import SCALE
from hpcfed.round.plan import EVALUATE, TRAIN, RoundPlan, Task

# per task; a train task fills the first three, an evaluate task the loss, correct, total and the squared losses
METRICS = ("loss_sum", "samples", "rejected", "correct", "total", "loss_sq_sum")
COLUMN = {name: i for i, name in enumerate(METRICS)}


@dataclass(frozen=True)
class FusedLayout:
    num_params: int
    models: tuple[int, ...]   # models whose sums travel, in buffer order
    tasks: int
    ranks: int

    @classmethod
    def of(cls, plan: RoundPlan, num_params: int, ranks: int) -> "FusedLayout":
        return cls(num_params, plan.trained_models, len(plan.tasks), ranks)

    @property
    def size(self) -> int:
        return self.num_params * len(self.models) + self.tasks * len(METRICS) + self.ranks

    def sums(self, buf) -> dict:
        """Views of each model's sums (NumPy or torch buffer)."""
        p = self.num_params
        return {m: buf[i * p:(i + 1) * p] for i, m in enumerate(self.models)}

    def metrics(self, buf):
        start = self.num_params * len(self.models)
        return buf[start:start + self.tasks * len(METRICS)].reshape(self.tasks, len(METRICS))

    def rank_seconds(self, buf):
        return buf[self.size - self.ranks:]


@dataclass(frozen=True)
class Outcome:
    """The round's result apart from the sums: named per-task metrics in real units, the tasks
    they belong to, the rank that ran each task, per-rank training seconds and traffic."""

    tasks: tuple[Task, ...]
    metrics: dict[str, np.ndarray]          # name (METRICS) -> (tasks,) float64
    ranks: np.ndarray                       # (tasks,) rank that ran each task (0 in one process)
    rank_seconds: np.ndarray                # (ranks,) seconds each rank spent running its tasks
    traffic: dict[str, int] = field(default_factory=dict)   # mpi_bytes, slice_bytes

    @classmethod
    def decode(cls, plan: RoundPlan, layout: FusedLayout, fused: np.ndarray, ranks: np.ndarray,
               traffic: dict[str, int]) -> "Outcome":
        table = layout.metrics(fused) / SCALE
        return cls(plan.tasks, {name: table[:, COLUMN[name]] for name in METRICS}, ranks,
                   layout.rank_seconds(fused) / SCALE, traffic)

    def contributed(self) -> np.ndarray:
        """Train tasks whose updates went into the sums: at least one batch and not rejected."""
        is_train = np.array([t.kind == TRAIN for t in self.tasks], dtype=bool)
        return is_train & (self.metrics["samples"] > 0) & (self.metrics["rejected"] < 0.5)

    def validation(self) -> dict[tuple[int, object], tuple[int, int]]:
        """Federated validation per (model, spec): (correct, total), summed over clients, so the
        accuracy ``correct / total`` is per example."""
        scores: dict = {}
        for i, task in enumerate(self.tasks):
            if task.kind == EVALUATE:
                correct, total = scores.get((task.model, task.spec), (0, 0))
                scores[(task.model, task.spec)] = (correct + int(round(self.metrics["correct"][i])),
                                                   total + int(round(self.metrics["total"][i])))
        return scores
