"""The cost model and the ledger: what a client's work costs before the round, what it cost after.

Before the round (:class:`Costs`): whether a client fits a subnet (memory and, with a deadline,
time), its local schedule and training MACs, and its virtual round time (hpcfed.population.devices; with a
share that changes within the round, integrated from the round's start). After
the round (:func:`client_ledger`): per sampled client the samples, MACs, bytes and loss the round
actually spent, from the plan and the outcome. Nothing here sends or trains.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hpcfed.config import JobConfig
from hpcfed.learning.training import batch_lengths, min_batch
from hpcfed.population.devices import Population, round_time
from hpcfed.round.outcome import Outcome
from hpcfed.round.plan import Schedule
from hpcfed.strategies import ClientSlot, Strategy
from hpcfed.supernet import Arch, ResNetSpace, SubnetSpec, cost

cached_cost = cost   # cost() remembers its counts per (space, arch, channel counts); the old name stays


@dataclass(frozen=True)
class Cohort:
    """What rank 0 decided about the round's sampled clients (one row each), for the ledger."""

    slots: list[ClientSlot]
    assigned: list[tuple[int, SubnetSpec] | None]   # (model, spec) each client received, or None
    times: np.ndarray                               # virtual round time of each (inf = no subnet)
    kept: np.ndarray                                # made the deadline and the cut
    duration: float                                 # virtual seconds the round lasted
    weights: np.ndarray                             # normalised aggregation weight (0 if not kept)
    chosen: np.ndarray                              # rows of the kept clients, in train-task order


class Costs:
    """The cost model of one job; schedules and MACs are remembered for the current round.
    With a ``population`` whose share changes within a round (``Population.within_round``), round
    times integrate it from the slot's ``start_s``; otherwise the slot's start share holds."""

    def __init__(self, job: JobConfig, space: ResNetSpace, strategy: Strategy, population: Population | None = None):
        self.job, self.space, self.strategy = job, space, strategy
        self.varying = population if population is not None and population.within_round else None
        self.round, self.planned = -1, {}   # (client, spec) -> (schedule or None, training MACs)

    def local_work(self, r: int, slot: ClientSlot, spec: SubnetSpec) -> tuple[Schedule | None, float]:
        """The client's local schedule in round ``r`` (None = ``spec`` alone) and its training MACs:
        samples x local epochs on the subnet, or the sum over the schedule's batches and subnets."""
        if r != self.round:
            self.round, self.planned = r, {}
        key = (slot.client, spec)
        if key not in self.planned:
            schedule = self.strategy.schedule(r, slot, spec)
            if schedule is None:
                macs = cached_cost(self.space, spec).train_macs(slot.samples * self.job.train.local_epochs)
            else:
                schedule = tuple(tuple(batch) for batch in schedule)
                lengths = batch_lengths(slot.samples, self.job.train, min_batch(self.space.norm))
                macs = sum(n * sum(cached_cost(self.space, s).train_macs(1) for s in specs)
                           for n, specs in zip(lengths, schedule))
            self.planned[key] = (schedule, macs)
        return self.planned[key]

    def train_macs(self, r: int, slot: ClientSlot, spec: SubnetSpec) -> float:
        return self.local_work(r, slot, spec)[1]

    def fits(self, r: int, slot: ClientSlot, arch: Arch) -> bool:
        """The client can train ``arch``: it fits its memory and, with a deadline, its time budget
        (a multi-subnet rule holds one subnet's activations at a time: the largest, ``arch``)."""
        if cached_cost(self.space, arch).train_memory_bytes(self.job.train.batch_size) > slot.device.memory_bytes:
            return False
        deadline = self.job.clients.deadline_s
        return deadline <= 0 or self.client_time(r, slot, SubnetSpec(arch)) <= deadline

    def client_time(self, r: int, slot: ClientSlot, spec: SubnetSpec | None) -> float:
        if spec is None:
            return math.inf
        nbytes = cached_cost(self.space, spec).param_bytes
        if self.varying is not None:
            return self.varying.round_time(slot.client, slot.device, slot.start_s, nbytes,
                                           self.train_macs(r, slot, spec), nbytes)
        return round_time(slot.device, slot.availability, nbytes, self.train_macs(r, slot, spec), nbytes)


def client_ledger(r: int, cohort: Cohort, outcome: Outcome, costs: Costs) -> dict[str, np.ndarray]:
    """Per sampled client: rank, model, samples, MACs, bytes, made the round, loss (results' clients table)."""
    n, chosen = len(cohort.slots), cohort.chosen
    samples, loss = np.zeros(n, dtype=np.int64), np.full(n, np.nan)
    rank, made, model = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool), np.full(n, -1, dtype=np.int64)
    if len(chosen):
        trained = slice(0, len(chosen))   # the train tasks come first, in the order of ``chosen``
        seen = outcome.metrics["samples"][trained]
        rejected = outcome.metrics["rejected"][trained] > 0.5
        samples[chosen] = np.rint(seen).astype(np.int64)
        loss[chosen] = np.where(rejected | (seen == 0), np.nan,
                                outcome.metrics["loss_sum"][trained] / np.maximum(seen, 1))
        rank[chosen] = outcome.ranks[trained]
        made[chosen] = ~rejected
    macs, down, up = np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    for i, (slot, assigned) in enumerate(zip(cohort.slots, cohort.assigned)):
        if assigned is None:
            continue
        model[i], spec = assigned
        c = cached_cost(costs.space, spec)
        down[i] = c.param_bytes
        schedule, planned = costs.local_work(r, slot, spec)
        if cohort.kept[i]:
            up[i] = c.param_bytes
            if schedule is not None:   # the whole schedule ran, or nothing (a failed client)
                macs[i] = planned if samples[i] else 0.0
            else:
                macs[i] = c.train_macs(int(samples[i]))
        else:   # a dropped straggler worked until the round ended
            download = c.param_bytes / slot.device.down_bytes_per_s
            if costs.varying is not None:   # what its changing share allowed from the download's end on
                done = costs.varying.compute_between(slot.client, slot.device, slot.start_s + download,
                                                     cohort.duration - download)
                macs[i] = min(planned, done)
                continue
            share = min(1.0, max(0.0, (cohort.duration - download) / max(cohort.times[i] - download, 1e-12)))
            macs[i] = share * planned
    return {"round": np.full(n, r), "client": np.array([s.client for s in cohort.slots], dtype=np.int64),
            "rank": rank, "model": model, "samples": samples, "macs": macs, "bytes_down": down, "bytes_up": up,
            "sim_time_s": cohort.times, "made_deadline": made, "loss": loss, "weight": cohort.weights}
