"""The round plan: a frozen value that says everything the round will do (issue 10, "the round as values").

Rank 0 computes it once per round. Every :class:`Task` names its kind (train or evaluate), the
client, the model it belongs to, the subnet it receives, its per-batch schedule of subnets, the
footprint it updates, its aggregation weight and its predicted cost. Workers derive nothing the
plan holds; what both sides compute from it to save bandwidth (the slices a worker needs,
:func:`needed_slices`) comes from one function here. Weights never travel in the plan.
"""
from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass

from hpcfed.learning.sandwich import Schedule
from hpcfed.supernet import SubnetSpec

TRAIN, EVALUATE = "train", "evaluate"



@dataclass(frozen=True)
class Task:
    slot: int                        # the task's row in the round's metrics block (its index in the plan)
    kind: str                        # TRAIN | EVALUATE
    client: int
    model: int                       # which of the run's weight vectors it reads (and, training, updates)
    spec: SubnetSpec                 # the subnet it receives (evaluate: the subnet it scores)
    schedule: Schedule | None = None  # per-batch subnets; None = ``spec`` alone in every batch
    footprint: tuple[SubnetSpec, ...] = ()   # train: the specs whose union it updates and returns
    weight: float = 0.0              # normalised aggregation weight (train)
    cost: float = 0.0                # predicted MACs (for mapping tasks to workers)
    seconds: float = 0.0             # train: predicted virtual round time of the client (hpcfed.population.devices)
    group: int = 0                   # train tasks of one group run together (hpcfed.learning.batched) on one worker

    @property
    def reads(self) -> tuple[SubnetSpec, ...]:
        """The slices of its model the task needs: its footprint (train) or its spec (evaluate)."""
        return self.footprint if self.kind == TRAIN else (self.spec,)


@dataclass(frozen=True)
class RoundPlan:
    round: int
    tasks: tuple[Task, ...] = ()

    @property
    def trained_models(self) -> tuple[int, ...]:
        """The models some train task updates, ascending: the ones whose sums travel back."""
        return tuple(sorted({t.model for t in self.tasks if t.kind == TRAIN}))

    def of_kind(self, kind: str) -> tuple[Task, ...]:
        return tuple(t for t in self.tasks if t.kind == kind)


def needed_slices(tasks) -> dict[int, tuple[SubnetSpec, ...]]:
    """Per model, the distinct specs whose union a host of ``tasks`` needs (both ends compute it,
    so only the values travel). Ordered by model, specs in first-use order."""
    needed: dict[int, dict[SubnetSpec, None]] = {}
    for task in tasks:
        needed.setdefault(task.model, {}).update(dict.fromkeys(task.reads))
    return {m: tuple(specs) for m, specs in sorted(needed.items())}


def assign_groups(tasks: list[Task], batch_clients: int) -> list[Task]:
    """Number groups of up to ``batch_clients`` train tasks with the same model and spec and no
    schedule, in slot order; every other task is a group of its own.

    Groups depend only on the round's tasks, never on the number of ranks, so batched training
    gives the same results however many ranks run.
    """
    open_groups: dict = {}       # (model, spec) -> (group id, members so far)
    grouped, next_id = [], 0
    for task in sorted(tasks, key=lambda t: t.slot):
        key = (task.model, task.spec) if task.kind == TRAIN and task.schedule is None else None
        gid, members = open_groups.get(key, (None, 0)) if key else (None, 0)
        if gid is None or members == batch_clients:
            gid, members, next_id = next_id, 0, next_id + 1
        if key:
            open_groups[key] = (gid, members + 1)
        grouped.append(dataclasses.replace(task, group=gid))
    return grouped


def map_to_workers(tasks, workers: list[int]) -> dict[int, tuple[Task, ...]]:
    """Longest-processing-time-first over groups: the costliest group to the least loaded worker,
    so workers finish together; a group stays on one worker."""
    groups: dict[int, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.group, []).append(task)
    heap = [(0.0, w) for w in workers]
    heapq.heapify(heap)
    mapping: dict[int, list[Task]] = {w: [] for w in workers}
    for members in sorted(groups.values(), key=lambda ts: (-sum(t.cost for t in ts), ts[0].slot)):
        load, worker = heapq.heappop(heap)
        mapping[worker].extend(members)
        heapq.heappush(heap, (load + sum(t.cost for t in members), worker))
    return {w: tuple(sorted(ts, key=lambda t: t.slot)) for w, ts in mapping.items()}
