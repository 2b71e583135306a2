"""The post-training search (tools/search.py on hpcfed.search and hpcfed.search.post_training): budgets, the
references it must match, the test set it must not read, determinism, MPI invariance, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from hpcfed.search.nsga import Budget, Genome, nsga2_search
from hpcfed.supernet import Arch, MobileNetSpace, ResNetSpace, cost

SPACES = [cls((1, 8, 8), 10, kernel_choices=(3, 5), width_choices=(0.5, 1.0)) for cls in (ResNetSpace, MobileNetSpace)]


@pytest.mark.parametrize("space", SPACES, ids=["resnet", "mobilenet"])
def test_every_genome_decodes_to_an_architecture_of_its_space_and_architectures_round_trip(space):
    genome, rng = Genome(space), np.random.default_rng(0)
    for _ in range(200):
        arch = space.sample(rng)
        assert genome.decode(genome.encode(arch)) == arch
        space.validate(genome.decode(rng.integers(0, genome.sizes)))
    if space.kind == "mobilenet":   # unequal expand genes in a stage: the stage takes its first block's
        x = genome.encode(Arch((2, 2), ((0.25, 0.25), (0.5, 0.5)), ((3, 3), (3, 3)), 1.0))
        x[2 + 1] = 3
        assert genome.decode(x).expands == ((0.25, 0.25), (0.5, 0.5))


@pytest.mark.parametrize("space", SPACES, ids=["resnet", "mobilenet"])
def test_the_front_fits_the_budget_beats_the_references_and_follows_the_seed(space):
    references = [(a.name, a) for a in space.references(4)]
    budget = Budget(cost(space, references[2][1]).macs, cost(space, references[2][1]).params)
    # a made-up accuracy that rewards the second stage's expands and kernels, not the references' uniform ones
    score = lambda archs: np.array([sum(a.expands[1]) * max(a.kernels[1]) / 50 for a in archs])  # noqa: E731
    result = nsga2_search(space, score, budget, references, 8, 3, seed=5)
    assert result.front and all(budget.fits(c.macs, c.params) for c in result.front)
    assert [c.macs for c in result.front] == sorted(c.macs for c in result.front)
    assert max(c.val_accuracy for c in result.front) >= max(c.val_accuracy for _, c in result.references)
    assert {n for n, _ in result.references} == {n for n, a in references if budget.fits(cost(space, a).macs,
                                                                                         cost(space, a).params)}
    assert len({c.arch for c in result.evaluated}) == len(result.evaluated) > 8
    again = nsga2_search(space, score, budget, references, 8, 3, seed=5)
    assert again.evaluated == result.evaluated and again.front == result.front
    assert nsga2_search(space, score, budget, references, 8, 3, seed=6).evaluated != result.evaluated
