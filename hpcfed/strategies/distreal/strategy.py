"""DISTREAL: per-layer filter dropout chosen on the device from the compute it has now (Rapp et al., AAAI 2022).

Offline, ``tools/dse.py`` finds a Pareto table of dropout vectors (hpcfed.strategies.distreal.dse: resource need R
against convergence quality Q). Online, every client trains its whole local work (``local_epochs``
over its samples) batch by batch; before each batch it takes from the table the entry with the best
Q whose cost fits the compute it has at that moment, so that the rest of its work still meets the
round deadline (``clients.deadline_s``)::

    R x full-network batch MACs / (speed x share(now))  <=  (time left before the upload) / batches left

or, when none fits, the cheapest entry (the client then misses the deadline and is dropped). The
batch trains a random filter subset at those rates (hpcfed.learning.dropout), and the client's clock moves
on by the batch's work integrated over its changing share (hpcfed.population.devices.Population.work_time:
compute that changes inside a round, ``devices.availability: markov``). A choice depends only on
the client's own device, its share over time and the table, so rank 0 makes the same choices from
the same seeded streams, ships them in the plan and counts them in its ledger; the client returns
the union of its batches' filters, merged with the one rule.

Baselines in the same frame (``rule``): ``uniform``, one rate for every layer, the smallest that
fits, per batch; ``steps``, the full network, stopping at the last batch that still ends before the
deadline (FedAvg with fewer local steps). FedAvg that waits for stragglers or drops them is
``fedavg`` without or with ``clients.deadline_s``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from hpcfed.config.checks import check, check_choice
from hpcfed.errors import ConfigError
from hpcfed.learning import dropout
from hpcfed.learning.training import batch_lengths, min_batch
from hpcfed.strategies.base import Strategy, StrategyOptions, fit_or_none
from hpcfed.strategies.distreal.dse import ProxyQuality, Table, explore, uniform_table
from hpcfed.supernet import SubnetSpec, cost


@dataclass(frozen=True)
class DistrealOptions(StrategyOptions):
    rule: str = "table"   # table (DISTREAL: the DSE's Pareto table) | uniform (one rate for all layers) | steps
    table: str = ""       # rule table: a table tools/dse.py wrote for this job's model; "" = run the DSE
                          # on rank 0 before the first round (needs data.server_val_fraction > 0)
    rates: tuple[float, ...] = dropout.RATES   # drop rates a layer may take (DSE genes, uniform rule)
    dse_population: int = 12    # the DSE stage: vectors per generation,
    dse_generations: int = 4    # generations after the first,
    dse_steps: int = 60         # SGD steps of each proxy training

    def check(self, job, key):
        check_choice(self.rule, f"{key}.rule", ("table", "uniform", "steps"))
        check(len(self.rates) > 0 and len(set(self.rates)) == len(self.rates) and all(0 <= r < 1 for r in self.rates)
              and 0.0 in self.rates, f"{key}.rates", list(self.rates),
              "distinct drop rates in [0, 1), 0 among them (the full network)")
        for name in ("dse_population", "dse_generations", "dse_steps"):
            check(getattr(self, name) >= 1, f"{key}.{name}", getattr(self, name), "an integer >= 1")
        check(self.rule != "table" or bool(self.table) or job.data.server_val_fraction > 0,
              "data.server_val_fraction", job.data.server_val_fraction, "a fraction > 0 when strategy.distreal.table "
              "is empty: the DSE runs its proxy trainings on the server's validation split")
        check(job.clients.deadline_s > 0, "clients.deadline_s", job.clients.deadline_s,
              "a deadline > 0 with strategy distreal: each client fits its local work to it")


class Distreal(Strategy):
    name = "distreal"
    Options = DistrealOptions
    batchable = False    # every client's batches train their own filter subsets

    def __init__(self, job, space):
        super().__init__(job, space)
        self.full = SubnetSpec(space.largest())
        self.population, self.table = None, None
        rule = self.options.rule
        if rule != "table":
            self.use(uniform_table(space, self.options.rates) if rule == "uniform" else uniform_table(space, (0.0,)))
        elif self.options.table:
            self.use(Table.load(self.options.table, space))

    def use(self, table: Table) -> None:
        self.table = table
        self.vectors = table.vectors()
        self.costs = [e.R for e in table.entries]
        self.by_quality = sorted(range(len(self.vectors)), key=lambda i: (-table.entries[i].Q, self.costs[i]))
        self.cheapest = min(range(len(self.vectors)), key=lambda i: self.costs[i])

    def prepare(self, data, population) -> None:
        """Rank 0: the DSE stage when no table was given (or restored), then the deadline check: a
        deadline no device meets even with the cheapest vector at its full compute is refused."""
        self.population = population
        if self.table is None:
            o = self.options
            quality = ProxyQuality(self.job, self.space, data.x_val, data.y_val, o.dse_steps)
            started = time.perf_counter()

            def progress(line: str) -> None:   # the DSE runs before round 1: say what it does meanwhile
                print(f"hpcfed: DISTREAL's design-space exploration before round 1, {line.removeprefix('dse: ')} "
                      f"({time.perf_counter() - started:.1f} s)", flush=True)
            table, _, _ = explore(self.space, quality, lambda vectors: [quality(v) for v in vectors],
                                  o.dse_population, o.dse_generations, self.job.seed, o.rates, progress=progress)
            table.meta = {"stage": "run", "population": o.dse_population, "generations": o.dse_generations,
                          "steps": o.dse_steps, "validation": f"server validation split: {len(quality.y)} samples "
                          f"trained on, {len(quality.y_held)} held out"}
            self.use(table)
        if self.options.rule == "steps":
            return
        c = cost(self.space, self.full)
        need = self.costs[self.cheapest] * c.train_macs(1) * self.job.train.local_epochs
        samples = data.samples_per_client()
        best = min(c.param_bytes / d.down_bytes_per_s + c.param_bytes / d.up_bytes_per_s
                   + need * int(samples[k]) / d.speed_macs_per_s
                   for k, d in ((k, population.device(k)) for k in range(len(samples))))
        if best > self.job.clients.deadline_s:
            raise ConfigError(f"clients.deadline_s = {self.job.clients.deadline_s:g}: no device meets it even with the "
                              f"cheapest dropout vector (R = {self.costs[self.cheapest]:.3f}) at its full compute (the "
                              f"fastest needs {best:.3g} s); accepted: a deadline above that")

    def assign(self, round_index, slots, fits, rng):
        return [fit_or_none(slot, self.full.arch, fits) for slot in slots]

    def schedule(self, round_index, slot, spec):
        """The client's per-batch choices in this round, from its own device and share (module docstring)."""
        device, client = slot.device, slot.client   # (rank 0 only: the plan ships the choices)
        full = cost(self.space, spec)
        down, up = full.param_bytes / device.down_bytes_per_s, full.param_bytes / device.up_bytes_per_s
        lengths = batch_lengths(slot.samples, self.job.train, min_batch(self.space.norm))
        end = slot.start_s + self.job.clients.deadline_s - up
        t, chosen = slot.start_s + down, []
        for b, n in enumerate(lengths):
            batch_macs = full.train_macs(n)
            left = end - t
            if self.options.rule == "steps":
                if t + self.population.work_time(client, device, t, batch_macs) > end:
                    break
                choice = 0
            else:
                speed = device.speed_macs_per_s * self.population.availability(client, t)
                fitting = [i for i in self.by_quality
                           if speed > 0 and self.costs[i] * batch_macs / speed <= left / (len(lengths) - b)]
                choice = fitting[0] if fitting else self.cheapest
            chosen.append(self.vectors[choice])
            t += self.population.work_time(client, device, t, self.costs[choice] * batch_macs)
        return dropout.schedule(self.space, chosen, self.job.seed, client, round_index)

    def state_dict(self):
        state = super().state_dict()
        if self.table is not None:   # a resumed run keeps the table its DSE stage found
            state["table"] = np.frombuffer(self.table.to_json().encode(), dtype=np.uint8).copy()
        return state

    def load_state_dict(self, state):
        super().load_state_dict(state)
        if "table" in state:
            self.use(Table.from_json(np.asarray(state["table"], dtype=np.uint8).tobytes().decode(), self.space))

    def report(self, test_accuracy):
        """The table the clients chose from, as the results group ``dropout_table/``."""
        entries = self.table.entries
        return {"group": "dropout_table", "attrs": {"groups": list(self.table.groups), "rule": self.options.rule,
                                                     "source": self.options.table or "DSE stage of the run",
                                                     **{k: v for k, v in self.table.meta.items()
                                                        if isinstance(v, (int, float, str))}},
                "tables": {"entries": {"R": [e.R for e in entries], "Q": [e.Q for e in entries],
                                       "step_s": [e.step_s for e in entries],
                                       "rates": [json.dumps(list(e.rates)) for e in entries]}},
                "root": {}}

    def footprint(self, spec, schedule):
        return dropout.footprint(schedule) if schedule else (spec,)

    def references(self):
        return [(0, self.full)]
