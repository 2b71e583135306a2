"""FedRolex: HeteroFL's width tiers with a rolling channel window (Alam et al., NeurIPS 2022).

A client of tier ``r`` trains, in every channel group of full size C, the ceil(r C) consecutive
channels starting at offset ``round mod C`` (wrapping around), instead of always the first ones.
The window advances by one channel per round, so over C rounds every channel of a group is trained
by each tier exactly equally often. Static BatchNorm, the 1/r scaler and sample-share weights are
HeteroFL's; the reference subnets are the tiers' prefix slices.
"""
from __future__ import annotations

from hpcfed.strategies.heterofl import HeteroFL
from hpcfed.supernet import Arch, SubnetSpec


class FedRolex(HeteroFL):
    name = "fedrolex"

    def assign(self, round_index, slots, fits, rng):
        return [None if tier is None else (0, self.rolled(tier[1].arch, round_index))
                for tier in super().assign(round_index, slots, fits, rng)]

    def rolled(self, arch: Arch, round_index: int) -> SubnetSpec:
        """``arch`` with each group's window of channels starting at ``round_index mod C``."""
        full = self.space.max_group_sizes()
        windows = {group: tuple((round_index + i) % full[group] for i in range(size))
                   for group, size in self.space.group_sizes(arch).items() if size < full[group]}
        return SubnetSpec.of(arch, windows)
