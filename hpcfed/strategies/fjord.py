"""FjORD: ordered dropout for heterogeneous clients (Horvath et al., NeurIPS 2021).

A client's p_max is its HeteroFL tier (the widest of ``model.width_choices`` it can hold); it
receives that prefix slice and, per local batch, trains the width level p drawn uniformly from the
levels <= p_max (ordered dropout: the first ceil(p C) channels of every layer). With
``strategy.fjord.distill`` (self-distillation) a batch whose p < p_max trains p_max with
cross-entropy and p with a KL loss against p_max's soft outputs (hpcfed.learning.sandwich). No output
scaler; sample-share weights; the reference subnets are the levels.
"""
from __future__ import annotations

from dataclasses import dataclass

from hpcfed.strategies.base import DistillOptions
from hpcfed.strategies.heterofl import HeteroFL
from hpcfed.supernet import SubnetSpec


@dataclass(frozen=True)
class FjORDOptions(DistillOptions):
    """FjORD's options: ``distill`` (self-distillation)."""


class FjORD(HeteroFL):
    name = "fjord"
    Options = FjORDOptions
    batchable = False

    def train_scale(self, spec):
        return 1.0

    def schedule(self, round_index, slot, spec):
        """Per batch a level p <= p_max (the spec's width); with distillation (p_max, p) when p < p_max."""
        top = spec.arch
        levels = [a for a in self.tiers() if a.width <= top.width]
        g = self.schedule_stream(round_index, slot.client)
        batches = []
        for _ in range(self.local_batches(slot.samples)):
            level = levels[int(g.integers(len(levels)))]
            batches.append((SubnetSpec(top), SubnetSpec(level)) if self.distill and level != top else (SubnetSpec(level),))
        return tuple(batches)
