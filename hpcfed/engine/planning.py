"""Planning a round on rank 0 (DESIGN.md, "One round", steps 1-4): the frozen plan and its cohort.

(1) sample the cohort among online clients with over-selection; (2) the strategy gives every
client a model and a subnet its budget fits; (3) the cost model gives each client's virtual round
time and the deadline decides who is kept; (4) the strategy weights the kept clients of each model;
(5) every kept client becomes a train task with its schedule, footprint, weight and cost, and,
when the strategy asks for federated validation, sampled clients get evaluate tasks that score a
model's subnet on their validation split (hpcfed.round.plan).
"""
from __future__ import annotations

import math

import numpy as np

from hpcfed.config import JobConfig
from hpcfed.engine.accounting import Cohort, Costs, cached_cost
from hpcfed.population.devices import Population, apply_deadline, sample_cohort
from hpcfed.round.plan import EVALUATE, TRAIN, RoundPlan, Task, assign_groups
from hpcfed.seeding import rng
from hpcfed.strategies import ClientSlot, Strategy


class Planner:
    def __init__(self, job: JobConfig, strategy: Strategy, population: Population, samples: np.ndarray,
                 validation_samples: np.ndarray, costs: Costs):
        self.job, self.strategy, self.population, self.costs = job, strategy, population, costs
        self.samples, self.validation_samples = samples, validation_samples

    def plan(self, r: int, clock: float) -> tuple[RoundPlan, Cohort]:
        job, want = self.job, self.job.clients.per_round
        cohort = sample_cohort(rng(job.seed, "cohort", r), self.population,
                               math.ceil(want * (1 + job.clients.overselect)), clock)
        slots = [ClientSlot(c, int(self.samples[c]), self.population.device(c),
                            self.population.availability(c, clock), clock) for c in cohort]
        assigned = self.strategy.assign(r, slots, lambda slot, arch: self.costs.fits(r, slot, arch),
                                               rng(job.seed, "assign", r))
        times = np.array([self.costs.client_time(r, s, a[1] if a else None) for s, a in zip(slots, assigned)])
        kept, duration = apply_deadline(times, want, job.clients.deadline_s)
        if duration == 0.0 and not self.strategy.idle_round(r):
            duration = job.devices.period_s   # nobody could work: wait for availability to change
        chosen = np.flatnonzero(kept)
        weights = np.zeros(len(slots))
        for model in sorted({assigned[i][0] for i in chosen}):
            rows = [i for i in chosen if assigned[i][0] == model]
            w = self.strategy.weights(r, [slots[i] for i in rows], [assigned[i][1] for i in rows])
            weights[rows] = w / w.sum()
        tasks = []
        for j, i in enumerate(chosen):
            model, spec = assigned[i]
            schedule, macs = self.costs.local_work(r, slots[i], spec)
            tasks.append(Task(j, TRAIN, slots[i].client, model, spec, schedule, self.strategy.footprint(spec, schedule),
                              float(weights[i]), float(macs), float(times[i])))
        tasks += self.validation_tasks(r, clock, len(tasks))
        tasks = assign_groups(tasks, job.train.batch_clients if self.strategy.batchable else 1)
        return RoundPlan(r, tuple(tasks)), Cohort(slots, assigned, times, kept, duration, weights, chosen)

    def validation_tasks(self, r: int, clock: float, first_slot: int) -> list[Task]:
        """Evaluate tasks of the strategy's validation subnets on ``eval.val_clients`` sampled online
        clients that hold validation samples (their own seeded stream)."""
        targets = self.strategy.validation_specs(r)
        if not targets:
            return []
        clients = [c for c in sample_cohort(rng(self.job.seed, "validate", r), self.population,
                                            self.job.eval.val_clients, clock) if self.validation_samples[c] > 0]
        return [Task(first_slot + n, EVALUATE, client, model, spec,
                     cost=float(cached_cost(self.costs.space, spec).macs * self.validation_samples[client]))
                for n, (client, (model, spec)) in enumerate((c, t) for c in clients for t in targets)]
