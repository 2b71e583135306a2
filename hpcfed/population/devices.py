"""Simulated client devices, their availability over time, and the virtual clock of a round.

Nothing sleeps: a client's round time is a model (DESIGN.md). Each client's device (speed, memory,
bandwidth) is drawn on demand from its own seeded stream, so memory does not grow with the
population. Availability, the share of its compute a client may use at virtual time t (0 =
offline), is one of (``devices.availability``):

* ``always``: 1;
* ``stochastic``: online with probability ``online_prob`` and then a uniform share in
  ``compute_share``, redrawn every ``period_s`` of virtual time;
* ``trace``: a user trace file (format below);
* ``markov``: a seeded Markov chain over ``levels`` that may change level every ``step_s``
  (keeping it with probability ``stay_prob``), on a time scale shorter than a round
  (scheme in hpcfed.population.availability).

Every model is piecewise constant in time (:meth:`Population.segments`). A round's time is

* for ``always``, ``stochastic`` and ``trace`` (the default, ``devices.within_round: false``):
  ``download bytes / down bandwidth + training MACs / (speed x share at the round's start) +
  upload bytes / up bandwidth``;
* for ``markov``, and for ``stochastic`` and ``trace`` with ``devices.within_round: true``: the
  download, then training from the end of the download until speed x share(t), integrated over
  the changing share, has done the training MACs (offline stretches do no work; work not done a
  week of virtual time after it started never is: infinite), then the upload
  (:meth:`Population.round_time`, :meth:`Population.work_time`). Bandwidths do not vary.

A client offline at the round's start cannot take part (infinite time).

Trace format (CSV with a header line)::

    client,start_s,availability
    0,0,1.0
    0,3600,0.0        # client 0 is offline from t = 1 h on
    7,0,0.25          # client 7 has a quarter of its compute

Rows give piecewise-constant availability in [0, 1] (0 = offline) from ``start_s`` on; before a
client's first row and for clients without rows, availability is 1.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass

import numpy as np

from hpcfed.config import DevicesConfig
from hpcfed.errors import ConfigError
from hpcfed.population import availability as avail
from hpcfed.seeding import rng

MEGABIT = 1e6 / 8   # bytes per second in one megabit per second


@dataclass(frozen=True)
class Device:
    """A client's hardware: compute speed, training memory and link bandwidths."""

    speed_macs_per_s: float
    memory_bytes: float
    down_bytes_per_s: float
    up_bytes_per_s: float


def _log_uniform(g: np.random.Generator, low_high: tuple[float, float]) -> float:
    low, high = low_high
    return float(math.exp(g.uniform(math.log(low), math.log(high))))


class Population:
    """Devices and availability of ``total`` clients, drawn on demand from ``seed``."""

    def __init__(self, cfg: DevicesConfig, total: int, seed: int):
        self.cfg, self.total, self.seed = cfg, total, seed
        self.trace = load_trace(cfg.trace, total) if cfg.availability == "trace" else {}

    def device(self, client: int) -> Device:
        g = rng(self.seed, "device", client)
        c = self.cfg
        return Device(_log_uniform(g, c.speed_macs_per_s), _log_uniform(g, c.memory_mb) * 2**20,
                      _log_uniform(g, c.down_mbps) * MEGABIT, _log_uniform(g, c.up_mbps) * MEGABIT)

    @property
    def within_round(self) -> bool:
        """Whether round times integrate a share that changes during the round (module docstring)."""
        c = self.cfg
        return c.availability == "markov" or (c.within_round and c.availability in ("stochastic", "trace"))

    def availability(self, client: int, t: float) -> float:
        """Share of the client's compute available at virtual time ``t`` (0 = offline)."""
        c = self.cfg
        if c.availability == "always":
            return 1.0
        if c.availability == "trace":
            rows = self.trace.get(client)
            if rows is None:
                return 1.0
            starts, values = rows
            i = int(np.searchsorted(starts, t, side="right")) - 1
            return 1.0 if i < 0 else float(values[i])
        if c.availability == "markov":
            return avail.markov_share(self.seed, client, c.levels, c.stay_prob, c.step_s, t)
        return self._stochastic(client, int(t // c.period_s))

    def _stochastic(self, client: int, period: int) -> float:
        c = self.cfg
        g = rng(self.seed, "availability", client, period)
        online = g.random() < c.online_prob
        return float(g.uniform(*c.compute_share)) if online else 0.0

    def share_steps(self, client: int, t0: float, t1: float) -> avail.Steps:
        """The share of ``client`` over ``[t0, t1)`` as (edges, shares) arrays (hpcfed.population.availability)."""
        c = self.cfg
        if c.availability == "markov":
            return avail.markov_steps(self.seed, client, c.levels, c.stay_prob, c.step_s, t0, t1)
        if c.availability == "trace":
            return avail.trace_steps(self.trace.get(client), t0, t1)
        if c.availability == "stochastic":
            return avail.periodic_steps(lambda k: self._stochastic(client, k), c.period_s, t0, t1)
        return np.array([t0, t1]), np.array([1.0])

    def segments(self, client: int, t0: float, t1: float) -> list[tuple[float, float, float]]:
        """``[(start, end, share), ...]`` covering ``[t0, t1)`` in order, equal neighbours joined."""
        edges, shares = avail.merged(self.share_steps(client, t0, t1))
        return [(float(a), float(b), float(s)) for a, b, s in zip(edges[:-1], edges[1:], shares)]

    def compute_between(self, client: int, device: Device, t: float, dt: float) -> float:
        """MACs the client can train in ``[t, t + dt)``: speed x the integral of its share."""
        if dt <= 0:
            return 0.0
        return device.speed_macs_per_s * avail.work_between(self.share_steps(client, t, t + dt))

    def work_time(self, client: int, device: Device, t_start: float, macs: float) -> float:
        """Seconds the client needs to train ``macs`` starting at ``t_start`` as its share changes
        (infinite when not done within ``hpcfed.population.availability.WORK_HORIZON_S``)."""
        work = macs / device.speed_macs_per_s
        return avail.work_time(lambda t0, t1: self.share_steps(client, t0, t1), t_start, work, 1.5 * work)

    def round_time(self, client: int, device: Device, t_start: float, down_bytes: float, train_macs: float,
                   up_bytes: float) -> float:
        """Virtual seconds of the client's round starting at ``t_start`` under this population's model:
        :func:`round_time` with the share at ``t_start``, or (``within_round``) download, the work
        integral from the download's end, upload. Infinite when offline at ``t_start``."""
        share = self.availability(client, t_start)
        if not self.within_round or share <= 0:
            return round_time(device, share, down_bytes, train_macs, up_bytes)
        down = down_bytes / device.down_bytes_per_s
        return down + self.work_time(client, device, t_start + down, train_macs) + up_bytes / device.up_bytes_per_s


def round_time(device: Device, availability: float, down_bytes: int, train_macs: int, up_bytes: int) -> float:
    """Virtual seconds a client needs for one round; infinite when it is offline."""
    if availability <= 0:
        return math.inf
    return (down_bytes / device.down_bytes_per_s + train_macs / (device.speed_macs_per_s * availability)
            + up_bytes / device.up_bytes_per_s)


def sample_cohort(g: np.random.Generator, population: Population, size: int, t: float) -> list[int]:
    """Up to ``size`` distinct online clients, uniformly at random among those online at ``t``."""
    order = g.permutation(population.total)
    chosen: list[int] = []
    for client in order:
        if population.availability(int(client), t) > 0:
            chosen.append(int(client))
            if len(chosen) == size:
                break
    return chosen


def apply_deadline(times: np.ndarray, wanted: int, deadline_s: float) -> tuple[np.ndarray, float]:
    """Who makes the round and how long it lasts, with over-selection and an optional deadline.

    The server keeps the ``wanted`` fastest clients that finish within the deadline (infinite
    times never do) and stops waiting when the last of them reports; if fewer make it, the round
    lasts the whole deadline (without one: until the last finite finisher). Returns
    (kept mask, round duration in virtual seconds; 0 when nobody could work and there is no deadline).
    """
    limit = deadline_s if deadline_s > 0 else math.inf
    order = np.argsort(times, kind="stable")[:wanted]
    kept = np.zeros(len(times), dtype=bool)
    kept[order] = np.isfinite(times[order]) & (times[order] <= limit)
    if kept.sum() < wanted and math.isfinite(limit):
        return kept, limit
    return kept, float(times[kept].max(initial=0.0))


def load_trace(path: str, total: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Read an availability trace (format in the module docstring); errors name the line."""
    try:
        handle = open(path, newline="")
    except OSError as err:
        raise ConfigError(f"devices.trace = {path!r}: cannot be read ({err.strerror})") from None
    rows: dict[int, list[tuple[float, float]]] = {}
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if [h.strip() for h in header or []] != ["client", "start_s", "availability"]:
            raise ConfigError(f"devices.trace = {path!r}: line 1 is {header!r}; expected the header "
                              "client,start_s,availability")
        for line, row in enumerate(reader, start=2):
            if not row or row[0].lstrip().startswith("#"):
                continue
            try:
                client, start, value = int(row[0]), float(row[1]), float(row[2].split("#")[0])
                if len(row) != 3:
                    raise ValueError
            except (ValueError, IndexError):
                raise ConfigError(f"devices.trace = {path!r}: line {line} is {','.join(row)!r}; expected "
                                  "an integer client, a start time in seconds and an availability") from None
            if not (0 <= client < total and start >= 0 and 0 <= value <= 1):
                raise ConfigError(f"devices.trace = {path!r}: line {line} has client {client}, start {start}, "
                                  f"availability {value}; accepted client 0..{total - 1}, start >= 0, "
                                  "availability in [0, 1]")
            rows.setdefault(client, []).append((start, value))
    trace = {}
    for client, items in rows.items():
        items.sort()
        trace[client] = (np.array([s for s, _ in items]), np.array([v for _, v in items]))
    return trace
