"""Availability as piecewise-constant shares over virtual time, the Markov model, the work integral.

Every availability model is a step function of virtual time: the share of a client's compute it
may use (0 = offline). This module gives each model's steps over an interval as two arrays,
``edges`` (m + 1 increasing times, the interval's ends first and last) and ``shares`` (m values,
share ``shares[i]`` on ``[edges[i], edges[i + 1])``), and integrates them (hpcfed.population.devices wraps
these in :class:`~hpcfed.population.devices.Population`).

The Markov model (``devices.availability: markov``) moves a client's share between
``devices.levels`` every ``devices.step_s`` virtual seconds: at each step boundary it keeps its
level with probability ``devices.stay_prob``, and otherwise jumps to one of the other levels, each
as likely (the chain is symmetric, so its stationary distribution is uniform over the levels).
Step ``k`` of client ``c`` lies in block ``k // BLOCK``; a block's ``BLOCK`` levels come from the
block's own stream ``rng(seed, "markov", c, block)``: the first level from the stationary
distribution, then the chain's transitions. So any step is computed on demand in O(BLOCK), with
no state and no history to replay; blocks are cached (:func:`markov_block`, LRU). The price: at a
block boundary (every ``BLOCK x step_s`` seconds) the chain restarts from its stationary
distribution instead of making one more transition, which its own mixing makes negligible unless
``stay_prob`` is close to 1 (at 1, each block holds one uniformly drawn level).

The work integral (:func:`work_time`): training of ``work`` full-speed seconds (MACs / speed)
started at ``t`` ends at the first time ``T`` with ``integral_t^T share(s) ds = work``; offline
steps add nothing. Work not done within ``WORK_HORIZON_S`` of its start never ends (infinity).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np

from hpcfed.seeding import rng

BLOCK = 256                  # Markov steps generated together from one stream
WORK_HORIZON_S = 7 * 86400.0  # training not finished a week (virtual) after it started never finishes

Steps = tuple[np.ndarray, np.ndarray]   # (edges, shares), see the module docstring


def step_index(t: float, step_s: float) -> int:
    """The step ``k`` with ``k * step_s <= t < (k + 1) * step_s``, exact at the float edges."""
    k = int(t // step_s)
    if k * step_s > t:
        k -= 1
    elif (k + 1) * step_s <= t:
        k += 1
    return k


@lru_cache(maxsize=2048)
def markov_block(seed: int, client: int, block: int, levels: tuple[float, ...], stay_prob: float) -> np.ndarray:
    """The shares of client ``client``'s Markov steps ``block * BLOCK ...`` (read-only, BLOCK values)."""
    g = rng(seed, "markov", client, block)
    n = len(levels)
    first = int(g.integers(n))
    stay = g.random(BLOCK - 1) < stay_prob
    jumps = g.integers(1, n, size=BLOCK - 1) if n > 1 else np.zeros(BLOCK - 1, dtype=np.int64)
    states = (first + np.concatenate(([0], np.cumsum(np.where(stay, 0, jumps))))) % n
    shares = np.asarray(levels, dtype=float)[states]
    shares.setflags(write=False)
    return shares


def markov_share(seed: int, client: int, levels: tuple[float, ...], stay_prob: float, step_s: float,
                 t: float) -> float:
    k = step_index(t, step_s)
    return float(markov_block(seed, client, k // BLOCK, levels, stay_prob)[k % BLOCK])


def markov_steps(seed: int, client: int, levels: tuple[float, ...], stay_prob: float, step_s: float,
                 t0: float, t1: float) -> Steps:
    """The Markov steps of ``client`` over ``[t0, t1)``, one per step (unmerged)."""
    k0, k1 = step_index(t0, step_s), step_index(t1, step_s)
    if k1 * step_s >= t1 and k1 > k0:   # t1 on a step edge: step k1 starts at t1, outside
        k1 -= 1
    parts = [markov_block(seed, client, b, levels, stay_prob)[max(k0 - b * BLOCK, 0):k1 - b * BLOCK + 1]
             for b in range(k0 // BLOCK, k1 // BLOCK + 1)]
    inner = np.arange(k0 + 1, k1 + 1, dtype=float) * step_s
    return np.concatenate(([t0], inner, [t1])), np.concatenate(parts)


def periodic_steps(share_of_period: Callable[[int], float], period_s: float, t0: float, t1: float) -> Steps:
    """Steps of a share redrawn every ``period_s`` (period ``k`` = ``[k, k + 1) x period_s``)."""
    k0, k1 = int(t0 // period_s), int(t1 // period_s)
    if k1 * period_s >= t1 and k1 > k0:
        k1 -= 1
    inner = np.arange(k0 + 1, k1 + 1, dtype=float) * period_s
    shares = np.array([share_of_period(k) for k in range(k0, k1 + 1)])
    return np.concatenate(([t0], inner, [t1])), shares


def trace_steps(rows: tuple[np.ndarray, np.ndarray] | None, t0: float, t1: float) -> Steps:
    """Steps of a trace client's rows (starts, values) over ``[t0, t1)``; share 1 before the first row."""
    if rows is None:
        return np.array([t0, t1]), np.array([1.0])
    starts, values = rows
    first = int(np.searchsorted(starts, t0, side="right"))   # rows after t0 start at first ...
    last = int(np.searchsorted(starts, t1, side="left"))     # ... up to (not including) last
    share0 = 1.0 if first == 0 else float(values[first - 1])
    return (np.concatenate(([t0], starts[first:last], [t1])),
            np.concatenate(([share0], values[first:last])).astype(float))


def merged(steps: Steps) -> Steps:
    """The same step function with neighbours of equal share joined and empty steps dropped."""
    edges, shares = steps
    keep = np.diff(edges) > 0
    edges, shares = np.concatenate((edges[:-1][keep], edges[-1:])), shares[keep]
    change = np.concatenate(([True], shares[1:] != shares[:-1]))
    return np.concatenate((edges[:-1][change], edges[-1:])), shares[change]


def work_between(steps: Steps) -> float:
    """Full-speed seconds of work the steps allow (the integral of the share)."""
    edges, shares = steps
    return float(np.dot(np.diff(edges), shares))


def work_time(steps_of: Callable[[float, float], Steps], t_start: float, work: float,
              first_window: float) -> float:
    """Seconds from ``t_start`` until ``work`` full-speed seconds are done under ``steps_of(t0, t1)``;
    infinite past ``WORK_HORIZON_S``. Looks ahead in windows from ``first_window``, doubling."""
    if work <= 0:
        return 0.0
    t, left, window, end = t_start, work, max(first_window, 1e-9), t_start + WORK_HORIZON_S
    while t < end:
        t1 = min(t + window, end)
        edges, shares = steps_of(t, t1)
        done = np.cumsum(np.diff(edges) * shares)
        if done[-1] >= left:
            i = int(np.searchsorted(done, left, side="left"))   # the step in which the work ends
            before = float(done[i - 1]) if i else 0.0
            return float(edges[i]) + (left - before) / float(shares[i]) - t_start
        left -= float(done[-1])
        t, window = t1, 2 * window
    return math.inf
