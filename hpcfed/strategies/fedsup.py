"""FedSup and E-FedSup: supernet training inside every client (Kim et al., "Supernet Training for
Federated Image Classification under System Heterogeneity", 2022).

FedSup: every sampled client receives the whole supernet (FedSup assumes every device can hold it,
so the device's memory is not consulted; a deadline still drops the slow) and trains it with the
sandwich rule (hpcfed.learning.sandwich): per batch the largest subnet with cross-entropy, then
``strategy.fedsup.sandwich_random`` random subnets and the smallest with a KL loss against the
largest's soft outputs (``strategy.fedsup.distill``; cross-entropy when off), gradients
accumulated, one step. Weights are sample shares under the one aggregation rule (with full slices:
FedAvg of the supernet).

E-FedSup: each client receives only a sub-model that fits it and runs the same rule inside it (its
largest is the sub-model, its random subnets lie within it), so only that slice is shipped and
merged. It has FedSup's options and two more. ``strategy.efedsup.tiers``: ``device`` gives the
largest reference subnet (``eval.subnets`` from the smallest to the largest) that the client's
device fits (memory and, with a deadline, time); ``fixed4`` is the reference code's four tiers,
fixed per client (client mod 4): the smallest subnet, a random subnet in the lower or the upper
half of the parameter range, the largest subnet. ``strategy.efedsup.merge: selected`` divides every
covered element by the weight of all contributing clients (the reference code's division by the
number of selected clients) instead of the covering ones'.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from hpcfed.config.checks import check, check_choice
from hpcfed.strategies.base import DistillOptions, Strategy, fit_or_none, largest_fitting
from hpcfed.supernet import Arch, SubnetSpec, cost

BAND_TRIES = 64   # random draws to find a subnet in a parameter band (fixed4 tiers)


@dataclass(frozen=True)
class FedSupOptions(DistillOptions):
    sandwich_random: int = 2    # random subnets per batch besides the largest and the smallest

    def check(self, job, key):
        check(self.sandwich_random >= 0, f"{key}.sandwich_random", self.sandwich_random, "an integer >= 0")


@dataclass(frozen=True)
class EFedSupOptions(FedSupOptions):
    tiers: str = "device"       # device (largest reference subnet the device fits) | fixed4
    merge: str = "covered"      # covered (the one rule) | selected (reference code's divisor)

    def check(self, job, key):
        super().check(job, key)
        check_choice(self.tiers, f"{key}.tiers", ("device", "fixed4"))
        check_choice(self.merge, f"{key}.merge", ("covered", "selected"))


class FedSup(Strategy):
    name = "fedsup"
    Options = FedSupOptions
    batchable = False

    def assign(self, round_index, slots, fits, rng):
        return [(0, SubnetSpec(self.space.largest()))] * len(slots)

    def schedule(self, round_index, slot, spec):
        """Per batch: the client's largest (its sub-model), K random subnets inside it, the smallest."""
        bound, smallest, k = spec.arch, self.space.smallest(), self.options.sandwich_random
        tail = (smallest,) if smallest != bound else ()
        g = self.schedule_stream(round_index, slot.client)
        return tuple(tuple(SubnetSpec(a) for a in (bound, *(self.space.sample_within(bound, g) for _ in range(k)), *tail))
                     for _ in range(self.local_batches(slot.samples)))


class EFedSup(FedSup):
    name = "efedsup"
    Options = EFedSupOptions

    def __init__(self, job, space):
        super().__init__(job, space)
        self.tiers = space.references(job.eval.subnets)
        low, high = cost(space, space.smallest()).params, cost(space, space.largest()).params
        self.bands = ((low, (low + high) / 2), ((low + high) / 2, high))   # fixed4: parameter ranges of tiers 1, 2

    def assign(self, round_index, slots, fits, rng):
        if self.options.tiers == "fixed4":
            return [fit_or_none(slot, self.fixed_tier(slot.client, rng), fits) for slot in slots]
        return [largest_fitting(slot, self.tiers, fits) for slot in slots]

    def merge_denominator(self, covering_weights, contributing_total):
        """``merge: selected``: every covered element over all contributing clients' weight."""
        if self.options.merge == "selected":
            return torch.where(covering_weights > 0, contributing_total, 0)
        return super().merge_denominator(covering_weights, contributing_total)

    def fixed_tier(self, client: int, rng) -> Arch:
        """The reference code's tier of ``client``: smallest, lower band, upper band, largest (client mod 4);
        band subnets are drawn afresh every round (the band's end subnet if none is found)."""
        smallest, largest = self.space.smallest(), self.space.largest()
        tier = client % 4
        if tier in (0, 3):
            return (smallest, largest)[tier // 3]
        lo, hi = self.bands[tier - 1]
        for _ in range(BAND_TRIES):
            arch = self.space.sample(rng)
            if lo <= cost(self.space, arch).params <= hi:
                return arch
        return smallest if tier == 1 else largest
