"""DISTREAL (hpcfed.strategies.distreal, hpcfed.strategies.distreal.dse): the per-batch choice, the server's prediction,
the design-space exploration, rank invariance and resume, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from hpcfed.assembly.job import load_job
from hpcfed.assembly.parts import build_space, load_data
from hpcfed.learning.dropout import DropoutVector, relative_macs
from hpcfed.learning.training import batch_lengths, min_batch
from hpcfed.population.devices import Population
from hpcfed.strategies import ClientSlot, make_strategy
from hpcfed.strategies.distreal.dse import ProxyQuality, explore, non_dominated
from hpcfed.supernet import SubnetSpec, cost
from tests.launch import TINY

# a tiny job whose deadline binds: devices of 0.2-1 GMAC/s whose share moves between 1, 0.5 and
# 0.25 every 0.02 virtual seconds; the DSE stage runs small
JOB = [*TINY, "--set", "strategy.name=distreal", "--set", "clients.deadline_s=0.15", "--set", "clients.overselect=0",
       "--set", "devices.availability=markov", "--set", "devices.levels=[1.0,0.5,0.25]", "--set", "devices.step_s=0.02",
       "--set", "devices.speed_macs_per_s=[2e8,1e9]", "--set", "devices.memory_mb=[100,100]",
       "--set", "devices.down_mbps=[1000,1000]", "--set", "devices.up_mbps=[1000,1000]",
       "--set", "data.server_val_fraction=0.2", "--set", "strategy.distreal.dse_population=4",
       "--set", "strategy.distreal.dse_generations=2", "--set", "strategy.distreal.dse_steps=5"]


def setting(*extra):
    job = load_job(None, [a for a in JOB if a != "--set"] + list(extra))
    data = load_data(job)
    space = build_space(job, data.input_shape, data.num_classes)
    population = Population(job.devices, job.clients.total, job.seed)
    strategy = make_strategy(job, space)
    strategy.prepare(data, population)
    return job, data, space, population, strategy


def test_each_batch_takes_the_best_entry_that_fits_the_compute_the_device_has_then():
    job, data, space, population, strategy = setting()
    full = cost(space, strategy.full)
    checked = 0
    for client in range(job.clients.total):
        device, samples = population.device(client), int(data.samples_per_client()[client])
        slot = ClientSlot(client, samples, device, population.availability(client, 3.0), 3.0)
        plan = strategy.schedule(2, slot, strategy.full)
        lengths = batch_lengths(samples, job.train, min_batch(space.norm))
        assert len(plan) == len(lengths)
        down, up = full.param_bytes / device.down_bytes_per_s, full.param_bytes / device.up_bytes_per_s
        t, end = 3.0 + down, 3.0 + job.clients.deadline_s - up
        for b, (specs, n) in enumerate(zip(plan, lengths)):
            (spec,) = specs
            kept = {g: len(idx) for g, idx in spec.channels}
            chosen = next(i for i, v in enumerate(strategy.vectors)
                          if {g: k for g, k in v.kept_sizes(space).items() if k < space.group_sizes(space.largest())[g]}
                          == kept)
            r, budget = strategy.costs[chosen], (end - t) / (len(lengths) - b)
            speed = device.speed_macs_per_s * population.availability(client, t)
            needed = r * full.train_macs(n) / speed
            if chosen != strategy.cheapest or needed <= budget:
                assert needed <= budget + 1e-12   # never more than the compute it has now allows
                better = [i for i in range(len(strategy.vectors))
                          if strategy.table.entries[i].Q > strategy.table.entries[chosen].Q]
                assert all(strategy.costs[i] * full.train_macs(n) / speed > budget for i in better)
            t += population.work_time(client, device, t, r * full.train_macs(n))
            checked += 1
    assert checked > 50


def test_the_dse_is_reproducible_and_its_table_non_dominated():
    job, data, space, _, _ = setting()
    quality = ProxyQuality(job, space, data.x_val, data.y_val, steps=5)
    tables = [explore(space, quality, lambda vs: [quality(v) for v in vs], 6, 2, seed=3, progress=lambda _: None)
              for _ in range(2)]
    assert tables[0][0].to_json() == tables[1][0].to_json()
    table, all_r, all_q = tables[0]
    points = np.array([[e.R, -e.Q] for e in table.entries])
    assert len(non_dominated(points)) >= len(points) - 1          # the full vector is added even if dominated
    assert [e.R for e in table.entries] == sorted(e.R for e in table.entries) and table.entries[-1].R == 1.0
    for e in table.entries:
        assert e.R == pytest.approx(relative_macs(space, DropoutVector(e.rates)))
        dominated = (all_r <= e.R) & (-all_q <= -e.Q) & ((all_r < e.R) | (-all_q < -e.Q))
        assert e.rates == (0.0,) * len(e.rates) or not dominated.any()


def test_uniform_and_steps_rules_are_the_baselines_in_the_same_frame():
    _, _, space, _, uniform = setting("strategy.distreal.rule=uniform")
    assert all(len(set(v.rates)) == 1 for v in uniform.vectors)
    _, _, _, _, steps = setting("strategy.distreal.rule=steps")
    assert steps.vectors == [DropoutVector((0.0,) * len(steps.vectors[0].rates), (0.0,))]
    assert SubnetSpec(space.largest()) == steps.full
