"""Tests of availability that changes within a round: segments, the work integral, the Markov model."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from hpcfed.assembly.job import load_job
from hpcfed.config import DevicesConfig
from hpcfed.engine.accounting import Costs, cached_cost
from hpcfed.population.availability import BLOCK, markov_block
from hpcfed.population.devices import Device, Population, round_time
from hpcfed.strategies import ClientSlot, make_strategy
from hpcfed.supernet import SubnetSpec
from tests.fakes import tiny_space

DEVICE = Device(speed_macs_per_s=100.0, memory_bytes=1e6, down_bytes_per_s=10.0, up_bytes_per_s=5.0)
MARKOV = DevicesConfig(availability="markov", levels=(1.0, 0.5, 0.25), step_s=2.0, stay_prob=0.8)

# client 0: full share for 10 s, half for 10 s, offline for 10 s, then full again;
# client 1: half, then offline for good from t = 10; client 2: no rows (always full)
TRACE = "client,start_s,availability\n0,0,1.0\n0,10,0.5\n0,20,0\n0,30,1.0\n1,0,0.5\n1,10,0\n"


@pytest.fixture
def traced(tmp_path) -> Population:
    path = tmp_path / "trace.csv"
    path.write_text(TRACE)
    return Population(DevicesConfig(availability="trace", trace=str(path), within_round=True), 3, 0)


# --- the integral on a hand-made trace -------------------------------------------------------------

def test_segments_of_a_trace(traced):
    assert traced.segments(0, 5.0, 35.0) == [(5.0, 10.0, 1.0), (10.0, 20.0, 0.5), (20.0, 30.0, 0.0),
                                             (30.0, 35.0, 1.0)]
    assert traced.segments(0, 12.0, 18.0) == [(12.0, 18.0, 0.5)]
    assert traced.segments(2, 0.0, 100.0) == [(0.0, 100.0, 1.0)]


def test_work_time_by_hand(traced):
    # From t = 5 at 100 MAC/s, 2000 MACs: 500 by t = 10 (full), 500 more by t = 20 (half),
    # none while offline until 30, the last 1000 at full speed by t = 40: 35 s.
    assert traced.work_time(0, DEVICE, 5.0, 2000) == pytest.approx(35.0)
    # 1500 MACs from t = 0: 1000 by 10, 500 more by 20 exactly
    assert traced.work_time(0, DEVICE, 0.0, 1500) == pytest.approx(20.0)
    # started while offline: nothing until 30, then 3 s
    assert traced.work_time(0, DEVICE, 25.0, 300) == pytest.approx(8.0)
    assert traced.work_time(0, DEVICE, 7.0, 0) == 0.0
    # client 1 does 500 MACs before going offline for good: more never ends
    assert traced.work_time(1, DEVICE, 0.0, 400) == pytest.approx(8.0)
    assert traced.work_time(1, DEVICE, 0.0, 501) == math.inf
    assert traced.compute_between(1, DEVICE, 0.0, 1e6) == pytest.approx(500.0)
    assert traced.compute_between(0, DEVICE, 5.0, 30.0) == pytest.approx(500 + 500 + 0 + 500)


def test_round_time_integrates_after_the_download(traced):
    # download 20 B at 10 B/s: 2 s (t = 3 .. 5), training 35 s as above, upload 15 B at 5 B/s: 3 s
    assert traced.round_time(0, DEVICE, 3.0, 20, 2000, 15) == pytest.approx(40.0)
    # without within_round the share at the round's start (1.0) holds: 2 + 20 + 3
    plain = Population(dataclasses.replace(traced.cfg, within_round=False), 3, 0)
    assert plain.round_time(0, DEVICE, 3.0, 20, 2000, 15) == round_time(DEVICE, 1.0, 20, 2000, 15) == 25.0
    assert traced.round_time(0, DEVICE, 25.0, 20, 100, 15) == math.inf   # offline at the round's start


def test_stochastic_segments_agree_with_its_availability():
    cfg = DevicesConfig(availability="stochastic", online_prob=0.6, period_s=100.0)
    pop = Population(cfg, 5, 3)
    for client in range(5):
        for start, end, share in pop.segments(client, 50.0, 2050.0):
            for t in (start, (start + end) / 2, np.nextafter(end, start)):
                assert pop.availability(client, t) == share
    assert not pop.within_round and Population(dataclasses.replace(cfg, within_round=True), 5, 3).within_round


# --- the Markov model ------------------------------------------------------------------------------

def per_step(pop: Population, client: int, steps: int) -> np.ndarray:
    edges, shares = pop.share_steps(client, 0.0, steps * pop.cfg.step_s)
    assert len(shares) == steps and np.allclose(np.diff(edges), pop.cfg.step_s)
    return shares


def test_markov_levels_come_from_the_configured_set_and_every_level_occurs():
    shares = per_step(Population(MARKOV, 4, 0), 2, 4000)
    assert set(shares.tolist()) == {1.0, 0.5, 0.25}
    counts = np.array([np.mean(shares == v) for v in MARKOV.levels])
    assert np.all(np.abs(counts - 1 / 3) < 0.06)   # the stationary distribution is uniform


def test_markov_is_deterministic_and_differs_between_clients_and_seeds():
    a = per_step(Population(MARKOV, 8, 5), 3, 1000)
    markov_block.cache_clear()
    assert np.array_equal(a, per_step(Population(MARKOV, 8, 5), 3, 1000))
    assert not np.array_equal(a, per_step(Population(MARKOV, 8, 5), 4, 1000))
    assert not np.array_equal(a, per_step(Population(MARKOV, 8, 6), 3, 1000))
    # a client's chain does not depend on the population's size
    assert np.array_equal(a, per_step(Population(MARKOV, 100, 5), 3, 1000))


@pytest.mark.parametrize("stay_prob", [0.8, 0.3])
def test_markov_stays_with_stay_prob_and_moves_uniformly(stay_prob):
    pop = Population(dataclasses.replace(MARKOV, stay_prob=stay_prob), 2, 1)
    shares = per_step(pop, 1, 200 * BLOCK)
    stay = shares[1:] == shares[:-1]
    inside = np.arange(1, len(shares)) % BLOCK != 0            # transitions within a block
    assert abs(stay[inside].mean() - stay_prob) < 0.01
    moved_from_full = shares[1:][inside & ~stay & (shares[:-1] == 1.0)]
    assert abs(np.mean(moved_from_full == 0.5) - 0.5) < 0.05    # the other levels alike


def test_markov_queries_at_any_time_agree_with_the_segments():
    pop = Population(MARKOV, 3, 2)
    segments = pop.segments(1, 3.3, 3000.0)
    assert segments[0][0] == 3.3 and segments[-1][1] == 3000.0
    assert all(a[1] == b[0] and a[2] != b[2] for a, b in zip(segments, segments[1:]))   # joined, merged
    times = np.concatenate((np.random.default_rng(0).uniform(3.3, 3000.0, 500), np.arange(4.0, 3000.0, 2.0)))
    starts = np.array([s[0] for s in segments])
    for t in times:
        i = int(np.searchsorted(starts, t, side="right")) - 1
        assert pop.availability(1, t) == segments[i][2], t
    # a segment list starting anywhere inside a block agrees with one over the whole range
    assert pop.segments(1, 1000.0, 1100.0) == [(max(a, 1000.0), min(b, 1100.0), s) for a, b, s in segments
                                              if b > 1000.0 and a < 1100.0]


def test_markov_work_time_equals_a_step_by_step_integral():
    pop = Population(MARKOV, 3, 4)
    for t_start, macs in [(0.0, 50.0), (1.7, 1234.5), (511.0, 30000.0), (BLOCK * 2.0 - 1.0, 700.0)]:
        t, left = t_start, macs
        while True:   # walk step by step: share at t until the next step edge
            edge = (math.floor(t / 2.0) + 1) * 2.0
            rate = DEVICE.speed_macs_per_s * pop.availability(0, t)
            if rate * (edge - t) >= left:
                expected = t + left / rate - t_start
                break
            left -= rate * (edge - t)
            t = edge
        got = pop.work_time(0, DEVICE, t_start, macs)
        assert got == pytest.approx(expected, rel=1e-9)
        assert pop.compute_between(0, DEVICE, t_start, got) == pytest.approx(macs, rel=1e-9)


def test_a_round_whose_share_drops_takes_longer_than_its_start_share_says():
    job = load_job(None, ["devices.availability=markov", "devices.levels=[1.0,0.25]", "devices.step_s=0.01",
                          "devices.stay_prob=0.5"])
    space = tiny_space()
    pop = Population(job.devices, job.clients.total, job.seed)
    costs = Costs(job, space, make_strategy(job, space), pop)
    spec = SubnetSpec(space.largest())
    nbytes = cached_cost(space, spec.arch).param_bytes
    longer = 0
    for client in range(job.clients.total):
        device = dataclasses.replace(pop.device(client), speed_macs_per_s=1e7)   # training spans many steps
        slot = ClientSlot(client, 40, device, pop.availability(client, 1.0), 1.0)
        macs = costs.train_macs(0, slot, spec)
        got = costs.client_time(0, slot, spec)
        assert got == pop.round_time(client, device, 1.0, nbytes, macs, nbytes)
        download = nbytes / device.down_bytes_per_s
        assert got == pytest.approx(download + pop.work_time(client, device, 1.0 + download, macs)
                                    + nbytes / device.up_bytes_per_s)
        if slot.availability == 1.0:   # full share at the start: the start-share formula is a lower bound
            start_share = round_time(device, 1.0, nbytes, macs, nbytes)
            assert got >= start_share
            longer += got > start_share * 1.1
    assert longer > 0
    # the stochastic default keeps the start-share formula
    plain = Costs(job, space, make_strategy(job, space), Population(DevicesConfig(), job.clients.total, 0))
    slot = ClientSlot(0, 40, DEVICE, 0.5, 1.0)
    assert plain.client_time(0, slot, spec) == round_time(DEVICE, 0.5, nbytes, plain.train_macs(0, slot, spec), nbytes)


# --- bad input -------------------------------------------------------------------------------------
