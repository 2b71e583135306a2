"""SuperFed: weight-shared federated training of a subnet family (Khare et al., 2023).

Distribution ("tracking sandwich"): among the sampled clients, the one that has received the
largest subnet least often gets the largest, of the rest the one that has received the smallest
least often gets the smallest, everyone else a uniformly random subnet that fits. Aggregation
("MaxNet"): the largest subnet's client gets weight beta(t) (cosine decay), every other client
(1 - beta(t)) / (n - 1). Plain sandwich / random distribution and uniform (plain overlap
averaging) weights are the ablations.
"""
from __future__ import annotations

import numpy as np

from hpcfed.aggregate import maxnet_beta
from hpcfed.strategies.base import Strategy
from hpcfed.supernet import SubnetSpec

RANDOM_TRIES = 16


class SuperFed(Strategy):
    name = "superfed"

    def __init__(self, job, space):
        super().__init__(job, space)
        self.largest_count = np.zeros(job.clients.total, dtype=np.int64)
        self.smallest_count = np.zeros(job.clients.total, dtype=np.int64)

    def assign(self, round_index, slots, fits, rng):
        cfg, largest, smallest = self.job.strategy, self.space.largest(), self.space.smallest()
        specs: list[SubnetSpec | None] = [None] * len(slots)
        free = [i for i, s in enumerate(slots) if fits(s, smallest)]
        if cfg.distribution != "random":
            for arch, counts in ((largest, self.largest_count), (smallest, self.smallest_count)):
                able = [i for i in free if fits(slots[i], arch)]
                if not able:
                    continue
                if cfg.distribution == "tracking_sandwich":   # least often served first, random ties
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
        return specs

    def weights(self, round_index, slots, specs):
        n, cfg = len(slots), self.job.strategy
        w = np.full(n, 1.0 / max(n, 1))
        is_largest = np.array([s.arch == self.space.largest() for s in specs], dtype=bool)
        if cfg.weighting == "maxnet" and is_largest.any() and n > 1:
            beta = maxnet_beta(round_index, self.job.rounds, cfg.beta0, cfg.beta_end or 1.0 / n, cfg.decay_fraction)
            w = np.where(is_largest, beta / is_largest.sum(), (1.0 - beta) / (n - is_largest.sum()))
        if cfg.sample_weighted:
            w = w * np.array([s.samples for s in slots], dtype=np.float64)
        return w

    def state_dict(self):
        return {**super().state_dict(), "largest_count": self.largest_count.copy(),
                "smallest_count": self.smallest_count.copy()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.largest_count[:] = state["largest_count"]
        self.smallest_count[:] = state["smallest_count"]
