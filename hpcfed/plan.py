"""The round plan that rank 0 broadcasts, and the cost-aware mapping of clients to workers.

The plan is small metadata (pickled): which client trains which subnet spec with which weight on
which worker, and how many weight values each worker will receive. Weights never travel in it.
"""
from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass, field

import numpy as np

from hpcfed.supernet import SubnetSpec

METRICS_PER_CLIENT = 3   # loss x samples, samples, rejected (non-finite update)


def fused_size(num_params: int, slots: int, ranks: int) -> int:
    """Length of the fused int64 reduction buffer:
    [weighted sums of the updates | per-client metrics | per-rank training seconds]. The weights'
    sums (the denominators) do not travel: rank 0 adds them from the plan (hpcfed.aggregate.add_weight)."""
    return num_params + slots * METRICS_PER_CLIENT + ranks


def split_fused(fused, num_params: int, slots: int):
    """Views of a fused buffer (NumPy or torch): weighted sums (P,), metrics (slots, 3), rank seconds."""
    end = num_params + slots * METRICS_PER_CLIENT
    return fused[:num_params], fused[num_params:end].reshape(slots, METRICS_PER_CLIENT), fused[end:]


def contributed(metrics: np.ndarray) -> np.ndarray:
    """Which clients' updates went into the sums, from their metrics (in real units, not fixed point):
    trained on at least one batch and not rejected."""
    return (metrics[:, 1] > 0) & (metrics[:, 2] < 0.5)


@dataclass(frozen=True)
class ClientTask:
    slot: int            # the client's row in this round's metrics block
    client: int
    spec: SubnetSpec
    weight: float        # normalised aggregation weight
    cost: float          # predicted training MACs (for mapping)
    group: int = 0       # clients of one group train together (hpcfed.batched) on one worker


@dataclass(frozen=True)
class RoundPlan:
    round: int
    tasks: dict[int, tuple[ClientTask, ...]] = field(default_factory=dict)   # worker rank -> its tasks
    shipped: dict[int, int] = field(default_factory=dict)   # worker rank -> values of its slices' union it receives
    slots: int = 0
    stop: bool = False


def assign_groups(tasks: list[ClientTask], batch_clients: int) -> list[ClientTask]:
    """Number groups of up to ``batch_clients`` tasks with the same spec, in slot order.

    Groups depend only on the round's tasks, never on the number of ranks, so batched training
    gives the same results however many ranks run.
    """
    open_groups: dict = {}       # spec -> (group id, members so far)
    grouped, next_id = [], 0
    for task in sorted(tasks, key=lambda t: t.slot):
        gid, members = open_groups.get(task.spec, (None, 0))
        if gid is None or members == batch_clients:
            gid, members, next_id = next_id, 0, next_id + 1
        open_groups[task.spec] = (gid, members + 1)
        grouped.append(dataclasses.replace(task, group=gid))
    return grouped


def map_to_workers(tasks: list[ClientTask], workers: list[int]) -> dict[int, tuple[ClientTask, ...]]:
    """Longest-processing-time-first over groups: the costliest group to the least loaded worker,
    so workers finish together; a group stays on one worker."""
    groups: dict[int, list[ClientTask]] = {}
    for task in tasks:
        groups.setdefault(task.group, []).append(task)
    heap = [(0.0, w) for w in workers]
    heapq.heapify(heap)
    mapping: dict[int, list[ClientTask]] = {w: [] for w in workers}
    for members in sorted(groups.values(), key=lambda ts: (-sum(t.cost for t in ts), ts[0].slot)):
        load, worker = heapq.heappop(heap)
        mapping[worker].extend(members)
        heapq.heappush(heap, (load + sum(t.cost for t in members), worker))
    return {w: tuple(sorted(ts, key=lambda t: t.slot)) for w, ts in mapping.items()}
