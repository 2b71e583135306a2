"""The round plan that rank 0 broadcasts, and the cost-aware mapping of clients to workers.

The plan is small metadata (pickled): which client trains which subnet spec with which weight on
which worker, and how many weight values each worker will receive. Weights never travel in it.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from hpcfed.supernet import SubnetSpec

METRICS_PER_CLIENT = 3   # loss x samples, samples, rejected (non-finite update)


def fused_size(num_params: int, slots: int) -> int:
    """Length of the fused int64 reduction buffer: [weighted sums | weights | per-client metrics]."""
    return 2 * num_params + slots * METRICS_PER_CLIENT


@dataclass(frozen=True)
class ClientTask:
    slot: int            # the client's row in this round's metrics block
    client: int
    spec: SubnetSpec
    weight: float        # normalised aggregation weight
    cost: float          # predicted training MACs (for mapping)


@dataclass(frozen=True)
class RoundPlan:
    round: int
    tasks: dict[int, tuple[ClientTask, ...]] = field(default_factory=dict)   # worker rank -> its tasks
    shipped: dict[int, int] = field(default_factory=dict)   # worker rank -> weight values it receives
    slots: int = 0
    stop: bool = False


def map_to_workers(tasks: list[ClientTask], workers: list[int]) -> dict[int, tuple[ClientTask, ...]]:
    """Longest-processing-time-first: costliest task to the least loaded worker, so workers finish together."""
    heap = [(0.0, w) for w in workers]
    heapq.heapify(heap)
    mapping: dict[int, list[ClientTask]] = {w: [] for w in workers}
    for task in sorted(tasks, key=lambda t: (-t.cost, t.slot)):
        load, worker = heapq.heappop(heap)
        mapping[worker].append(task)
        heapq.heappush(heap, (load + task.cost, worker))
    return {w: tuple(sorted(ts, key=lambda t: t.slot)) for w, ts in mapping.items()}
