"""Tests of hpcfed.population.devices: deadlines, the round-time model, devices, availability and traces."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from hpcfed.config import DevicesConfig
from hpcfed.errors import ConfigError
from hpcfed.population.devices import MEGABIT, Device, Population, apply_deadline, load_trace, round_time, sample_cohort

INF = math.inf


# --- apply_deadline --------------------------------------------------------------------------------

@pytest.mark.parametrize("times, wanted, deadline, kept, duration", [
    # over-selection, no deadline: the 2 fastest (1 and 2) are kept; the round ends when 2 reports
    ([3.0, 1.0, 2.0, 5.0], 2, 0.0, [0, 1, 1, 0], 2.0),
    # a deadline that everybody wanted makes: same clients, the round ends with the last of them
    ([3.0, 1.0, 2.0, 5.0], 2, 10.0, [0, 1, 1, 0], 2.0),
    # deadline 2.5: of the 3 fastest (1, 2, 3) the one needing 3 is dropped; the round lasts 2.5
    ([3.0, 1.0, 2.0, 5.0], 3, 2.5, [0, 1, 1, 0], 2.5),
    # a client finishing exactly at the deadline makes it
    ([3.0, 1.0, 2.0, 5.0], 3, 3.0, [1, 1, 1, 0], 3.0),
    # nobody makes the deadline: nobody kept, the round lasts the whole deadline
    ([3.0, 4.0], 2, 2.0, [0, 0], 2.0),
    # offline (infinite) clients are never kept; without a deadline the last finite finisher ends it
    ([INF, 1.0, INF, 4.0], 3, 0.0, [0, 1, 0, 1], 4.0),
    # ... and with a deadline, fewer than wanted made it: the round lasts the deadline
    ([INF, 1.0, INF, 4.0], 3, 6.0, [0, 1, 0, 1], 6.0),
    # nobody could work and there is no deadline: duration 0
    ([INF, INF, INF], 2, 0.0, [0, 0, 0], 0.0),
    ([INF, INF], 2, 7.0, [0, 0], 7.0),
    # no over-selection, everybody finishes: all kept, the slowest ends the round
    ([0.5, 0.25, 0.75], 3, 0.0, [1, 1, 1], 0.75),
    # ties keep the earlier client (stable order)
    ([2.0, 1.0, 2.0], 2, 0.0, [1, 1, 0], 2.0),
])
def test_apply_deadline_by_hand(times, wanted, deadline, kept, duration):
    mask, seconds = apply_deadline(np.array(times), wanted, deadline)
    assert mask.dtype == bool and mask.tolist() == [bool(k) for k in kept]
    assert seconds == duration


def test_apply_deadline_never_keeps_more_than_wanted():
    times = np.random.default_rng(0).uniform(1, 10, size=20)
    for wanted in range(1, 21):
        mask, seconds = apply_deadline(times, wanted, 0.0)
        assert mask.sum() == wanted
        assert seconds == np.sort(times)[wanted - 1]
        assert times[mask].max() <= times[~mask].min(initial=INF)


# --- round_time ------------------------------------------------------------------------------------

def test_round_time_by_hand():
    device = Device(speed_macs_per_s=100.0, memory_bytes=1e6, down_bytes_per_s=10.0, up_bytes_per_s=5.0)
    # download 20 B / 10 B/s = 2 s; train 100 MACs / (100 MAC/s x 0.5) = 2 s; upload 15 B / 5 B/s = 3 s
    assert round_time(device, 0.5, 20, 100, 15) == 7.0
    # full availability: 2 + 1 + 3
    assert round_time(device, 1.0, 20, 100, 15) == 6.0
    assert round_time(device, 0.0, 20, 100, 15) == INF
    assert round_time(device, 0.0, 0, 0, 0) == INF


# --- Population ------------------------------------------------------------------------------------

def test_device_is_deterministic_independent_of_order_and_within_bounds():
    cfg = DevicesConfig()
    forward = Population(cfg, 50, seed=3)
    backward = Population(cfg, 50, seed=3)
    a = [forward.device(c) for c in range(50)]
    b = [backward.device(c) for c in reversed(range(50))][::-1]
    assert a == b
    assert forward.device(17) == a[17]                        # asking again gives the same device
    assert len({d.speed_macs_per_s for d in a}) == 50          # clients differ
    assert Population(cfg, 50, seed=4).device(0) != a[0]       # the seed matters
    for d in a:
        assert 5e8 <= d.speed_macs_per_s <= 2e10
        assert 2.0 * 2 ** 20 <= d.memory_bytes <= 16.0 * 2 ** 20
        assert 5.0 * MEGABIT <= d.down_bytes_per_s <= 100.0 * MEGABIT
        assert 1.0 * MEGABIT <= d.up_bytes_per_s <= 20.0 * MEGABIT
    assert MEGABIT == 125000.0


def test_device_of_a_client_does_not_depend_on_population_size():
    cfg = DevicesConfig()
    assert Population(cfg, 10, 0).device(7) == Population(cfg, 1000, 0).device(7)


def test_always_available():
    pop = Population(DevicesConfig(availability="always"), 10, 0)
    assert all(pop.availability(c, t) == 1.0 for c in range(10) for t in (0.0, 299.0, 1e6))


def test_stochastic_availability():
    cfg = DevicesConfig(availability="stochastic", online_prob=0.7, compute_share=(0.3, 0.6), period_s=100.0)
    pop = Population(cfg, 40, seed=1)
    values = np.array([[pop.availability(c, 100.0 * k + 5) for k in range(10)] for c in range(40)])
    online = values > 0
    assert np.all((values == 0) | ((values >= 0.3) & (values <= 0.6)))
    assert 0.5 < online.mean() < 0.9                            # about online_prob
    assert np.any(values[:, 0] != values[:, 1])                 # redrawn every period ...
    assert all(len(set(row)) > 1 for row in values)             # ... for every client over 10 periods
    # Constant within a period, and the same when asked again or by another Population.
    again = Population(cfg, 40, seed=1)
    for c in range(40):
        assert pop.availability(c, 0.0) == pop.availability(c, 99.9) == again.availability(c, 50.0) == values[c, 0]
    other = Population(cfg, 40, seed=2)
    assert any(other.availability(c, 5.0) != values[c, 0] for c in range(40))   # the seed matters


# --- traces ----------------------------------------------------------------------------------------

TRACE = """client,start_s,availability
# a comment line
0,0,1.0
0,3600,0.0        # client 0 is offline from t = 1 h on
2,100,0.25
2,50,0.5

"""


def test_trace_is_piecewise_constant(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text(TRACE)
    trace = load_trace(str(path), 3)
    assert sorted(trace) == [0, 2]
    assert trace[2][0].tolist() == [50.0, 100.0] and trace[2][1].tolist() == [0.5, 0.25]   # sorted by start
    pop = Population(DevicesConfig(availability="trace", trace=str(path)), 3, 0)
    expected = {
        (0, 0.0): 1.0, (0, 3599.9): 1.0, (0, 3600.0): 0.0, (0, 1e9): 0.0,
        (1, 0.0): 1.0, (1, 5000.0): 1.0,                                   # no rows: always 1
        (2, 0.0): 1.0, (2, 49.9): 1.0,                                     # before its first row: 1
        (2, 50.0): 0.5, (2, 99.0): 0.5, (2, 100.0): 0.25, (2, 1e6): 0.25,
    }
    for (client, t), value in expected.items():
        assert pop.availability(client, t) == value, (client, t)


@pytest.mark.parametrize("text, line", [
    ("client,start,availability\n0,0,1\n", "line 1"),                                     # bad header
    ("", "line 1"),                                                                      # empty file
    ("client,start_s,availability\n0,0,1\nx,5,0.5\n", "line 3"),                         # non-numeric client
    ("client,start_s,availability\n0,zero,1\n", "line 2"),                               # non-numeric start
    ("client,start_s,availability\n0,0,1\n1,0,1.5\n", "line 3"),                         # availability 1.5
    ("client,start_s,availability\n0,0,-0.1\n", "line 2"),                               # negative availability
    ("client,start_s,availability\n0,0,1\n0,10,1\n3,0,0.5\n", "line 4"),                 # client 3 of 3
    ("client,start_s,availability\n-1,0,0.5\n", "line 2"),                               # negative client
    ("client,start_s,availability\n0,-5,0.5\n", "line 2"),                               # negative start
    ("client,start_s,availability\n0,0\n", "line 2"),                                    # missing column
    ("client,start_s,availability\n0,0,1,7\n", "line 2"),                                # extra column
])
def test_malformed_traces_raise_config_errors_naming_the_line(tmp_path, text, line):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_trace(str(path), 3)
    message = str(info.value)
    assert line in message and "devices.trace" in message and "\n" not in message
    with pytest.raises(ConfigError):
        Population(DevicesConfig(availability="trace", trace=str(path)), 3, 0)


def test_missing_trace_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="devices.trace"):
        load_trace(str(tmp_path / "absent.csv"), 3)


# --- cohorts ---------------------------------------------------------------------------------------

def test_sample_cohort_gives_distinct_online_clients():
    cfg = DevicesConfig(availability="stochastic", online_prob=0.5)
    pop = Population(cfg, 60, seed=2)
    online = {c for c in range(60) if pop.availability(c, 1000.0) > 0}
    assert 10 < len(online) < 50
    for seed in range(5):
        cohort = sample_cohort(np.random.default_rng(seed), pop, 8, 1000.0)
        assert len(cohort) == 8 == len(set(cohort))
        assert set(cohort) <= online
    # Asking for more than are online returns every online client once.
    everyone = sample_cohort(np.random.default_rng(0), pop, 60, 1000.0)
    assert sorted(everyone) == sorted(online)
    # Deterministic for a seeded generator, different for another seed.
    assert sample_cohort(np.random.default_rng(9), pop, 8, 1000.0) == sample_cohort(np.random.default_rng(9), pop, 8, 1000.0)
    assert sample_cohort(np.random.default_rng(9), pop, 8, 1000.0) != sample_cohort(np.random.default_rng(10), pop, 8, 1000.0)


def test_sample_cohort_skips_offline_trace_clients(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("client,start_s,availability\n" + "".join(f"{c},0,0\n" for c in range(0, 10, 2)))
    pop = Population(dataclasses.replace(DevicesConfig(), availability="trace", trace=str(path)), 10, 0)
    cohort = sample_cohort(np.random.default_rng(0), pop, 10, 0.0)
    assert sorted(cohort) == [1, 3, 5, 7, 9]
