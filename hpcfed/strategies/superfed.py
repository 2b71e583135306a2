"""SuperFed: weight-shared federated training of a subnet family (Khare et al., 2023).

Distribution ("tracking sandwich"): among the sampled clients, the one that has received the
largest subnet least often gets the largest, of the rest the one that has received the smallest
least often gets the smallest, everyone else a uniformly random subnet that fits. Aggregation
("MaxNet"): the largest subnet's client gets weight beta(t) (cosine decay), every other client
(1 - beta(t)) / (n - 1). Plain sandwich / random distribution and uniform (plain overlap
averaging) weights are the ablations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hpcfed.config.checks import check, check_choice
from hpcfed.strategies.base import Strategy, StrategyOptions
from hpcfed.supernet import SubnetSpec

RANDOM_TRIES = 16


@dataclass(frozen=True)
class SuperFedOptions(StrategyOptions):
    distribution: str = "tracking_sandwich"  # tracking_sandwich | sandwich | random
    weighting: str = "maxnet"           # maxnet | uniform (plain overlap averaging)
    beta0: float = 0.9                  # maxnet: weight of the largest subnet's client at round 0
    beta_end: float = 0.0               # maxnet: final weight; 0 = 1/n (uniform)
    decay_fraction: float = 0.8         # maxnet: share of the rounds over which beta decays
    sample_weighted: bool = False       # multiply client weights by their sample share

    def check(self, job, key):
        check_choice(self.distribution, f"{key}.distribution", ("tracking_sandwich", "sandwich", "random"))
        check_choice(self.weighting, f"{key}.weighting", ("maxnet", "uniform"))
        check(0 < self.beta0 <= 1, f"{key}.beta0", self.beta0, "a number in (0, 1]")
        check(0 <= self.beta_end <= 1, f"{key}.beta_end", self.beta_end, "a number in [0, 1] (0 = 1/n)")
        check(0 < self.decay_fraction <= 1, f"{key}.decay_fraction", self.decay_fraction, "a number in (0, 1]")


class SuperFed(Strategy):
    name = "superfed"
    Options = SuperFedOptions

    def __init__(self, job, space):
        super().__init__(job, space)
        self.largest_count = np.zeros(job.clients.total, dtype=np.int64)
        self.smallest_count = np.zeros(job.clients.total, dtype=np.int64)

    def assign(self, round_index, slots, fits, rng):
        options, largest, smallest = self.options, self.space.largest(), self.space.smallest()
        specs: list[SubnetSpec | None] = [None] * len(slots)
        free = [i for i, s in enumerate(slots) if fits(s, smallest)]
        if options.distribution != "random":
            for arch, counts in ((largest, self.largest_count), (smallest, self.smallest_count)):
                able = [i for i in free if fits(slots[i], arch)]
                if not able:
                    continue
                if options.distribution == "tracking_sandwich":   # least often served first, random ties
                    keys = [(counts[slots[i].client], rng.random()) for i in able]
                    pick = able[min(range(len(able)), key=keys.__getitem__)]
                else:
                    pick = able[int(rng.integers(len(able)))]
                specs[pick] = SubnetSpec(arch)
                counts[slots[pick].client] += 1
                free.remove(pick)
        for i in free:
            specs[i] = SubnetSpec(smallest)
            for _ in range(RANDOM_TRIES):
                arch = self.space.sample(rng)
                if fits(slots[i], arch):
                    specs[i] = SubnetSpec(arch)
                    break
        return [None if spec is None else (0, spec) for spec in specs]

    def weights(self, round_index, slots, specs):
        n, options = len(slots), self.options
        w = np.full(n, 1.0 / max(n, 1))
        is_largest = np.array([s.arch == self.space.largest() for s in specs], dtype=bool)
        if options.weighting == "maxnet" and is_largest.any() and n > 1:
            beta = maxnet_beta(round_index, self.job.rounds, options.beta0, options.beta_end or 1.0 / n,
                               options.decay_fraction)
            w = np.where(is_largest, beta / is_largest.sum(), (1.0 - beta) / (n - is_largest.sum()))
        if options.sample_weighted:
            w = w * np.array([s.samples for s in slots], dtype=np.float64)
        return w

    def state_dict(self):
        return {"largest_count": self.largest_count.copy(),
                "smallest_count": self.smallest_count.copy()}

    def load_state_dict(self, state):
        self.largest_count[:] = state["largest_count"]
        self.smallest_count[:] = state["smallest_count"]

def maxnet_beta(round_index: int, rounds: int, beta0: float, beta_end: float, decay_fraction: float) -> float:
    """SuperFed's MaxNet weight of the largest subnet's client at round t (cosine decay).

    beta(t) = beta0 * ((1 - a) * 0.5 * (1 + cos(pi * min(t, T) / T)) + a), a = beta_end / beta0,
    T = decay_fraction x rounds.
    """
    horizon = max(1.0, decay_fraction * rounds)
    a = beta_end / beta0
    return beta0 * ((1 - a) * 0.5 * (1 + math.cos(math.pi * min(round_index, horizon) / horizon)) + a)
