"""HeteroFL: static width tiers for heterogeneous clients (Diao et al., 2021).

Each client always trains the tier ``r`` it can hold (the widest of ``model.width_choices`` that
fits its memory): the first ceil(r C) channels of every layer, full depth, with static BatchNorm
and the training-time scaler 1/r on convolution outputs. Weights are sample shares under the one
aggregation rule. The reference subnets are the tiers themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

from hpcfed.strategies.base import Strategy, StrategyOptions, largest_fitting
from hpcfed.supernet import Arch, SubnetSpec


@dataclass(frozen=True)
class HeteroFLOptions(StrategyOptions):
    """HeteroFL has no options (nor have FedRolex and Federated Dropout, which inherit them)."""


class HeteroFL(Strategy):
    name = "heterofl"
    Options = HeteroFLOptions

    def tiers(self) -> list[Arch]:
        full = self.space.largest()
        return [Arch(full.depths, full.expands, full.kernels, r) for r in sorted(self.space.width_choices)]

    def assign(self, round_index, slots, fits, rng):
        tiers = self.tiers()
        return [largest_fitting(slot, tiers, fits) for slot in slots]

    def train_scale(self, spec):
        return 1.0 / spec.arch.width

    def references(self):
        return [(0, SubnetSpec(a)) for a in self.tiers()]
