"""The merge: new weights of every model as a pure function of (sums, plan, outcome, previous weights).

Each model aggregates only its own train tasks. For every element e of model m (ALGORITHMS.md,
"The one aggregation rule")::

    W_m[e] <- sum_k w_k theta_k[e] / D_m[e]     where D_m[e] > 0, else W_m[e] unchanged

with the sums over m's tasks k that contributed (trained, not rejected) and whose footprint covers
e. The denominator D_m is, by default, the sum of the covering tasks' weights; a strategy may
change it (:meth:`hpcfed.strategies.Strategy.merge_denominator`, e.g. E-FedSup's "selected"
divisor). Denominators are summed in fixed point per distinct footprint: integer sums are exact in
any grouping, so this equals adding them per task.
"""
from __future__ import annotations

from typing import Callable

import torch

from hpcfed.round.aggregate import add_weight, divide_keep, fixed_weight
from hpcfed.round.outcome import Outcome
from hpcfed.round.plan import RoundPlan

Denominator = Callable[[torch.Tensor, int], torch.Tensor]   # (covering fixed weights, all contributing) -> D


def covering(acc_weight: torch.Tensor, total: int) -> torch.Tensor:
    """The one rule's denominator: the covering tasks' weights."""
    return acc_weight


def merge(sums: dict[int, torch.Tensor], plan: RoundPlan, outcome: Outcome, previous: dict[int, torch.Tensor],
          union_index: Callable, denominator: Denominator = covering) -> dict[int, torch.Tensor]:
    """New weights of every model in ``previous``; models no task trained are returned as they were.

    ``sums`` holds each trained model's fixed-point ``sum w theta`` (int64, P); ``union_index(specs)``
    gives the flat positions a footprint covers (hpcfed.supernet.ElasticResNet.union_index).
    """
    made = outcome.contributed()
    per_footprint: dict[int, dict[tuple, int]] = {}
    for task, ok in zip(plan.tasks, made):
        if ok:
            weights = per_footprint.setdefault(task.model, {})
            weights[task.footprint] = weights.get(task.footprint, 0) + fixed_weight(task.weight)
    merged = dict(previous)
    for model, acc_sum in sums.items():
        old = previous[model]
        acc_weight = torch.zeros(old.numel(), dtype=torch.int64)
        footprints = per_footprint.get(model, {})
        for footprint, fixed in footprints.items():
            add_weight(acc_weight, union_index(footprint), fixed)
        merged[model] = divide_keep(acc_sum, denominator(acc_weight, sum(footprints.values())), old)
    return merged
