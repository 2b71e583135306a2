"""Candidate architectures of an architecture-search step, and the budget schedule that drives them.

FedNAS (Yuan et al.) proposes candidates around the current architecture and keeps the best; the
concrete rule is NetAdapt's (Yang et al., ECCV 2018), ``../shared/ALGORITHMS.md`` "FedNAS": each
step tightens the budget by a ratio that decays step by step, and every candidate is the parent
with *one* elastic dimension of *one* place shrunk just enough to meet it:

- depth of a stage (elastic depth keeps the first blocks),
- expand ratio or kernel of a block, or of all blocks of a stage together (the only place where the
  space ties a stage's blocks together; a larger cut than one block can make),
- the width multiplier of the whole network.

Where no single shrink meets the budget, every place's largest possible shrink is a candidate, so
a step always makes progress while the parent is not the smallest architecture. The alternative
rule samples K architectures under the budget inside the parent (``sample_candidates``). A budget
is forward MACs per sample or parameters (hpcfed.supernet.cost).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpcfed.errors import ConfigError
from hpcfed.supernet import Arch, ResNetSpace, cost

MEASURES = ("macs", "params")


@dataclass(frozen=True)
class Candidate:
    arch: Arch
    dimension: str   # depth | expand | kernel | width | sampled
    place: str       # s<i> (stage), s<i>b<j> (block), net (the whole network), or sample<k>


def measure(space: ResNetSpace, arch: Arch, what: str) -> int:
    """The budgeted cost of ``arch``: forward MACs per sample or parameters."""
    c = cost(space, arch)
    return c.macs if what == "macs" else c.params


def step_budget(parent_cost: float, step: int, shrink: float, decay: float, target: float) -> float:
    """NetAdapt's schedule: the parent's cost reduced by ``shrink x decay**step``, never below ``target``."""
    return max(target, parent_cost * (1.0 - shrink * decay ** step))


def _in_space(space: ResNetSpace, arch: Arch) -> bool:
    try:
        space.validate(arch)
        return True
    except ConfigError:
        return False


def _one_shrinks(space: ResNetSpace, parent: Arch) -> list[tuple[str, str, list[Arch]]]:
    """For every (dimension, place), the parent shrunk along it, mildest first (architectures in the space)."""
    options: list[tuple[str, str, list[Arch]]] = []
    for s, depth in enumerate(parent.depths):
        shallower = []
        for d in range(depth - 1, 0, -1):
            depths = tuple(d if i == s else x for i, x in enumerate(parent.depths))
            expands = tuple(e[:d] if i == s else e for i, e in enumerate(parent.expands))
            kernels = tuple(k[:d] if i == s else k for i, k in enumerate(parent.kernels))
            shallower.append(Arch(depths, expands, kernels, parent.width))
        options.append(("depth", f"s{s}", shallower))
    for field, choices in (("expand", space.expand_choices), ("kernel", space.kernel_choices)):
        for s, depth in enumerate(parent.depths):
            values = parent.expands if field == "expand" else parent.kernels
            per_block = [(f"s{s}b{b}", (b,)) for b in range(depth)]
            for place, blocks in per_block + [(f"s{s}", tuple(range(depth)))]:
                current = max(values[s][b] for b in blocks)
                shrunk = []
                for value in sorted((c for c in choices if c < current), reverse=True):
                    stage = tuple(value if b in blocks else v for b, v in enumerate(values[s]))
                    changed = tuple(stage if i == s else v for i, v in enumerate(values))
                    arch = (Arch(parent.depths, changed, parent.kernels, parent.width) if field == "expand"
                            else Arch(parent.depths, parent.expands, changed, parent.width))
                    if _in_space(space, arch):
                        shrunk.append(arch)
                if shrunk and (len(blocks) > 1 or place != f"s{s}"):   # a one-block stage is its block
                    options.append((field, place, shrunk))
    narrower = [Arch(parent.depths, parent.expands, parent.kernels, w)
                for w in sorted((w for w in space.width_choices if w < parent.width), reverse=True)]
    options.append(("width", "net", narrower))
    return [(dim, place, [a for a in archs if _in_space(space, a)]) for dim, place, archs in options]


def netadapt_candidates(space: ResNetSpace, parent: Arch, budget: float, what: str = "macs") -> list[Candidate]:
    """One candidate per (dimension, place): the mildest one-dimension shrink of ``parent`` whose cost
    is at most ``budget``; if none meets it, each place's largest shrink that costs less than the parent."""
    options = _one_shrinks(space, parent)
    found = []
    for dim, place, archs in options:
        meeting = [a for a in archs if measure(space, a, what) <= budget]
        if meeting:
            found.append(Candidate(meeting[0], dim, place))
    if not found:
        parent_cost = measure(space, parent, what)
        found = [Candidate(archs[-1], dim, place) for dim, place, archs in options
                 if archs and measure(space, archs[-1], what) < parent_cost]
    unique: dict[Arch, Candidate] = {}
    for candidate in found:
        unique.setdefault(candidate.arch, candidate)
    return list(unique.values())


def sample_candidates(space: ResNetSpace, parent: Arch, budget: float, count: int, rng: np.random.Generator,
                      what: str = "macs", attempts: int = 200) -> list[Candidate]:
    """Up to ``count`` distinct architectures inside ``parent`` under ``budget``, drawn uniformly
    (hpcfed.supernet.space.sample_within) with ``attempts`` draws per wanted candidate."""
    chosen: dict[Arch, Candidate] = {}
    for _ in range(count * attempts):
        if len(chosen) == count:
            break
        arch = space.sample_within(parent, rng)
        if arch != parent and arch not in chosen and measure(space, arch, what) <= budget:
            chosen[arch] = Candidate(arch, "sampled", f"sample{len(chosen)}")
    return list(chosen.values())
