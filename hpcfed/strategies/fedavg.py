"""FedAvg of one fixed architecture (McMahan et al., 2017); k runs, or one ``ifedavg`` run, make the
iFedAvg baseline.

Every client that can hold the architecture trains it whole; weights are sample shares, so with
full masks the one aggregation rule is exactly the weighted average of FedAvg.
"""
from __future__ import annotations

from dataclasses import dataclass

from hpcfed.strategies.archs import check_arch_name, named_arch
from hpcfed.strategies.base import Strategy, StrategyOptions, fit_or_none
from hpcfed.supernet import Arch, SubnetSpec


@dataclass(frozen=True)
class FedAvgOptions(StrategyOptions):
    arch: str = "largest"   # largest | smallest | ref<i> (i-th reference subnet) | an architecture name

    def check(self, job, key):
        check_arch_name(self.arch, f"{key}.arch", job)


class FedAvg(Strategy):
    name = "fedavg"
    Options = FedAvgOptions

    @property
    def arch(self) -> Arch:
        return named_arch(self, self.options.arch)

    def assign(self, round_index, slots, fits, rng):
        arch = self.arch
        return [fit_or_none(slot, arch, fits) for slot in slots]

    def references(self):
        """Only the architecture it trains: other slices of it are never trained as such."""
        return [(0, SubnetSpec(self.arch))]
