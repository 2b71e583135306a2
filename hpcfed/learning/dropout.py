"""Per-layer filter-dropout vectors that save real compute (DISTREAL: Rapp, Khalili, Pfitzner and
Henkel, "DISTREAL: Distributed Resource-Aware Learning in Heterogeneous Systems", AAAI 2022).

Per mini-batch a client trains a random subset of the filters of every convolution layer; a
:class:`DropoutVector` holds one drop rate per layer from a discrete set (ALGORITHMS.md, "DISTREAL":
{0, 0.125, ..., 0.75} by default). The batch's subnet is a :class:`SubnetSpec` on the space's
largest architecture whose explicit channel sets are the kept filters, smaller than the groups'
widths, so the convolutions run on the gathered slices and compute only the kept channels (a real
saving, not a mask on a full-size forward; ``tools/bench_dropout.py`` measures it).

The droppable layers are the space's *channel groups* (hpcfed.supernet.space), not single
convolutions: the residual sums of a stage add the outputs of its blocks' last convolutions, its
downsample shortcut and the stage input channel by channel, so those convolutions must keep the
same output channels, and one drop rate applies to the whole stage output group ``s{i}``. The
block middle widths ``s{i}b{j}`` (the output of a block's first convolution) and the ``stem`` are
per-layer rates. A MobileNet space has only ``stem`` and the stage groups.

R(d) (:func:`relative_macs`) is the analytic forward MACs of the kept channel counts relative to
the full largest network, counted by hpcfed.supernet.cost: for a convolution whose input group
keeps (1 - d_(l-1)) and output group (1 - d_l) of its channels that is the paper's
sum_l (1 - d_(l-1))(1 - d_l) MACs_l / sum_l MACs_l (exact where the kept counts are exact).

Every batch's subset comes from its own seeded stream, keyed by (seed, "dropout", round, client,
batch) (hpcfed.seeding), so rank 0 and any host draw the same subsets. A client returns the union
of the elements its batches trained (:func:`footprint`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from hpcfed.errors import ConfigError
from hpcfed.learning.sandwich import Schedule
from hpcfed.seeding import rng
from hpcfed.supernet import ResNetSpace, SubnetSpec, cost

RATES: tuple[float, ...] = tuple(i / 8 for i in range(7))   # 0, 0.125, ..., 0.75


def groups(space: ResNetSpace) -> tuple[str, ...]:
    """The droppable layers of ``space`` in vector order: its channel groups (stem, s0, s0b0, ...)."""
    return tuple(space.max_group_sizes())


def kept(full: int, rate: float) -> int:
    """Channels kept of ``full`` at drop rate ``rate``: floor(rate x full) dropped, at least 1 kept."""
    return max(1, full - math.floor(rate * full + 1e-9))


@dataclass(frozen=True)
class DropoutVector:
    """One drop rate per channel group (in :func:`groups` order), each one of ``choices``."""

    rates: tuple[float, ...]
    choices: tuple[float, ...] = RATES

    def __post_init__(self):
        object.__setattr__(self, "rates", tuple(float(r) for r in self.rates))
        object.__setattr__(self, "choices", tuple(float(c) for c in self.choices))
        bad = [c for c in self.choices if not 0.0 <= c < 1.0]
        if bad or not self.choices:
            raise ConfigError(f"dropout rates: choices {list(self.choices)}; each must lie in [0, 1)")
        for position, rate in enumerate(self.rates):
            if not 0.0 <= rate < 1.0 or rate not in self.choices:
                raise ConfigError(f"dropout vector: rate {rate:g} at position {position}; accepted "
                                  f"{list(self.choices)}")

    @classmethod
    def uniform(cls, space: ResNetSpace, rate: float, choices: Sequence[float] = RATES) -> "DropoutVector":
        """The same ``rate`` for every group of ``space``."""
        return cls((rate,) * len(groups(space)), tuple(choices))

    @classmethod
    def of(cls, space: ResNetSpace, rates: dict[str, float], choices: Sequence[float] = RATES) -> "DropoutVector":
        """Rates by group name; groups not named keep every channel (rate 0)."""
        names = groups(space)
        unknown = sorted(set(rates) - set(names))
        if unknown:
            raise ConfigError(f"dropout vector: unknown channel groups {unknown}; this space has {list(names)}")
        return cls(tuple(rates.get(g, 0.0) for g in names), tuple(choices))

    @classmethod
    def from_indices(cls, genes: Sequence[int], choices: Sequence[float] = RATES) -> "DropoutVector":
        """The vector whose rate of group i is ``choices[genes[i]]`` (an integer genome, for a search)."""
        if any(not 0 <= int(g) < len(choices) for g in genes):
            raise ConfigError(f"dropout vector: genes {list(genes)}; each must be in 0..{len(choices) - 1}")
        return cls(tuple(choices[int(g)] for g in genes), tuple(choices))

    @property
    def indices(self) -> tuple[int, ...]:
        """Each rate's position in ``choices`` (the inverse of :meth:`from_indices`)."""
        return tuple(self.choices.index(r) for r in self.rates)

    def by_group(self, space: ResNetSpace) -> dict[str, float]:
        """Group name -> drop rate; a one-line error when the vector's length is not the space's."""
        names = groups(space)
        if len(self.rates) != len(names):
            raise ConfigError(f"dropout vector: {len(self.rates)} rates for {len(names)} channel groups "
                              f"{list(names)}")
        return dict(zip(names, self.rates))

    def kept_sizes(self, space: ResNetSpace) -> dict[str, int]:
        """Channels each group keeps on the space's largest architecture."""
        base = space.group_sizes(space.largest())
        return {g: kept(base[g], rate) for g, rate in self.by_group(space).items()}


def sized_spec(space: ResNetSpace, vector: DropoutVector) -> SubnetSpec:
    """The largest architecture keeping each group's *first* kept channels: the channel counts (and
    so the cost) of every batch drawn with ``vector``. Groups at rate 0 stay full (no explicit set)."""
    base = space.group_sizes(space.largest())
    return SubnetSpec.of(space.largest(), {g: tuple(range(n)) for g, n in vector.kept_sizes(space).items()
                                           if n < base[g]})


def relative_macs(space: ResNetSpace, vector: DropoutVector) -> float:
    """R(d): forward MACs with the vector's kept channel counts over those of the full largest network."""
    return cost(space, sized_spec(space, vector)).macs / cost(space, space.largest()).macs


def batch_spec(space: ResNetSpace, vector: DropoutVector, seed: int, client: int, round_index: int,
               batch: int) -> SubnetSpec:
    """The subnet one batch trains: per group with a rate > 0 a uniformly random subset of the kept
    size of the largest architecture's channels, from the stream (seed, "dropout", round, client, batch)."""
    top = space.largest()
    base = space.group_sizes(top)
    g = rng(seed, "dropout", round_index, client, batch)
    subsets = {}
    for group, n in vector.kept_sizes(space).items():
        if n < base[group]:
            subsets[group] = tuple(int(c) for c in g.choice(base[group], n, replace=False))
    return SubnetSpec.of(top, subsets)


def schedule(space: ResNetSpace, vectors: Sequence[DropoutVector], seed: int, client: int,
             round_index: int) -> Schedule:
    """A client's local schedule: batch b trains :func:`batch_spec` of ``vectors[b]`` alone
    (one vector per local batch, e.g. the table entry that fits the device's compute at that batch)."""
    return tuple((batch_spec(space, v, seed, client, round_index, b),) for b, v in enumerate(vectors))


def footprint(batches: Schedule) -> tuple[SubnetSpec, ...]:
    """The distinct specs of a schedule, in first-use order: the union of their elements is exactly
    what the client trained and uploads (an element outside every batch's slice never changed)."""
    return tuple(dict.fromkeys(spec for specs in batches for spec in specs))
