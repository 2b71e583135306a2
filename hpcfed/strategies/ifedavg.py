"""iFedAvg in one run: FedAvg of several fixed architectures side by side, each its own model.

SuperFed (Khare et al., 2022) measures its family against the same subnets trained alone by FedAvg
("iFedAvg"). Here the k architectures of ``archs`` train in one run as k models (hpcfed.engine.server
holds one weight vector each, all starting from the supernet's initial weights): every round the
cohort is dealt round-robin, in its random order, into k disjoint groups, one per model (FedNAS's
"candidates in parallel on partial clients"); a client trains its group's architecture if it can
hold it. Each model merges only its own clients' updates, weighted by sample shares, so with one
architecture this is FedAvg on that architecture. The reference subnets are the k models.
"""
from __future__ import annotations

from dataclasses import dataclass

from hpcfed.config.checks import check
from hpcfed.strategies.archs import check_arch_name, named_arch
from hpcfed.strategies.base import Strategy, StrategyOptions, fit_or_none
from hpcfed.supernet import SubnetSpec


@dataclass(frozen=True)
class IFedAvgOptions(StrategyOptions):
    archs: tuple[str, ...] = ("smallest", "largest")   # one model each: largest | smallest | ref<i>

    def check(self, job, key):
        check(len(self.archs) > 0 and len(set(self.archs)) == len(self.archs), f"{key}.archs", list(self.archs),
              "a non-empty list of distinct architecture names")
        for i, name in enumerate(self.archs):
            check_arch_name(name, f"{key}.archs[{i}]", job)


class IFedAvg(Strategy):
    name = "ifedavg"
    Options = IFedAvgOptions

    def models(self):
        return {m: 0 for m in range(len(self.options.archs))}   # every model starts from the initial supernet

    def assign(self, round_index, slots, fits, rng):
        archs = [named_arch(self, name) for name in self.options.archs]
        return [fit_or_none(slot, archs[i % len(archs)], fits, model=i % len(archs)) for i, slot in enumerate(slots)]

    def references(self):
        return [(m, SubnetSpec(named_arch(self, name))) for m, name in enumerate(self.options.archs)]
