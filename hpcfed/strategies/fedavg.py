"""FedAvg of one fixed architecture (McMahan et al., 2017); k runs make the iFedAvg baseline.

Every client that can hold the architecture trains it whole; weights are sample shares, so with
full masks the one aggregation rule is exactly the weighted average of FedAvg.
"""
from __future__ import annotations

from dataclasses import dataclass

from hpcfed.config_checks import check
from hpcfed.strategies.base import Strategy, StrategyOptions, fit_or_none
from hpcfed.supernet import Arch, SubnetSpec


@dataclass(frozen=True)
class FedAvgOptions(StrategyOptions):
    arch: str = "largest"   # largest | smallest | ref<i> (i-th reference subnet)

    def check(self, job, key):
        n = job.eval.subnets
        check(self.arch in ("largest", "smallest") or (self.arch.startswith("ref") and self.arch[3:].isdigit()
                                                       and int(self.arch[3:]) < n),
              f"{key}.arch", self.arch, f"largest | smallest | ref0..ref{n - 1}")


class FedAvg(Strategy):
    name = "fedavg"
    Options = FedAvgOptions

    @property
    def arch(self) -> Arch:
        choice = self.options.arch
        if choice == "largest":
            return self.space.largest()
        if choice == "smallest":
            return self.space.smallest()
        return self.space.references(self.job.eval.subnets)[int(choice[3:])]

    def assign(self, round_index, slots, fits, rng):
        arch = self.arch
        return [fit_or_none(slot, arch, fits) for slot in slots]

    def reference_subnets(self):
        """Only the architecture it trains: other slices of it are never trained as such."""
        return [SubnetSpec(self.arch)]
