"""Federated Dropout (Caldas et al., "Expanding the Reach of Federated Learning by Reducing Client
Resource Requirements", 2018): every round each client trains a random subset of the channels.

The subset's size is the client's HeteroFL tier (the widest of ``model.width_choices`` its memory
fits), its members are drawn uniformly per channel group, per client and per round from the round's
seeded stream. Static BatchNorm, the 1/r scaler and sample-share weights are HeteroFL's; the
reference subnets are the tiers' prefix slices.
"""
from __future__ import annotations

import numpy as np

from hpcfed.strategies.heterofl import HeteroFL
from hpcfed.supernet import Arch, SubnetSpec


class FederatedDropout(HeteroFL):
    name = "feddropout"

    def assign(self, round_index, slots, fits, rng):
        return [None if tier is None else (0, self.dropped(tier[1].arch, rng))
                for tier in super().assign(round_index, slots, fits, rng)]

    def dropped(self, arch: Arch, rng: np.random.Generator) -> SubnetSpec:
        """``arch`` with a uniformly random channel subset of its size in every narrowed group."""
        full = self.space.max_group_sizes()
        subsets = {group: tuple(int(c) for c in rng.choice(full[group], size, replace=False))
                   for group, size in sorted(self.space.group_sizes(arch).items()) if size < full[group]}
        return SubnetSpec.of(arch, subsets)
