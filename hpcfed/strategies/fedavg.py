"""FedAvg of one fixed architecture (McMahan et al., 2017); k runs, or one ``ifedavg`` run, make the
iFedAvg baseline.

Every client that can hold the architecture trains it whole; weights are sample shares, so with
full masks the one aggregation rule is exactly the weighted average of FedAvg.
"""
from __future__ import annotations

from dataclasses import dataclass

from hpcfed.config.checks import check
from hpcfed.errors import ConfigError
from hpcfed.strategies.base import Strategy, StrategyOptions, fit_or_none
from hpcfed.supernet import Arch, SubnetSpec


def check_arch_name(name: str, key: str, job) -> None:
    """``name`` must be largest | smallest | ref<i> with i below ``eval.subnets``, or an architecture
    name (Arch.name, e.g. a search's choice; checked against the space when the strategy is built)."""
    n = job.eval.subnets
    named = name in ("largest", "smallest") or (name.startswith("ref") and name[3:].isdigit() and int(name[3:]) < n)
    if not named and name[:1] == "d":
        try:
            Arch.from_name(name)
            named = True
        except ConfigError:
            pass
    check(named, key, name, f"largest | smallest | ref0..ref{n - 1} | an architecture name such as d2,1-e.25,.5,1-k3,3,3-w1")


def named_arch(strategy: Strategy, name: str) -> Arch:
    """The architecture ``name`` (largest | smallest | ref<i>, the i-th reference subnet, or an
    architecture name of the space) names."""
    if name[:1] == "d":
        try:
            return strategy.space.named(name)
        except ConfigError as err:
            raise ConfigError(f"strategy.{strategy.name}: {err}") from None
    if name == "largest":
        return strategy.space.largest()
    if name == "smallest":
        return strategy.space.smallest()
    references = strategy.space.references(strategy.job.eval.subnets)
    if int(name[3:]) >= len(references):
        raise ConfigError(f"strategy.{strategy.name}: architecture {name!r}: this space has {len(references)} distinct "
                          f"reference subnets for eval.subnets = {strategy.job.eval.subnets} (ref0..ref{len(references) - 1});"
                          f" give more model choices or fewer eval.subnets")
    return references[int(name[3:])]


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

    def reference_subnets(self):
        """Only the architecture it trains: other slices of it are never trained as such."""
        return [SubnetSpec(self.arch)]
