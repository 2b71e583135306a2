"""NSGA-II over a supernet's architectures: validation accuracy against forward MACs, under a budget.

SuperFed (Khare et al., 2022) ends its workflow with an evolutionary search over the trained
supernet for the most accurate subnets under a MACs budget; this is that search, run as NSGA-II
(Deb et al., 2002) with pymoo. It knows nothing of data: it asks a ``score`` function (a list of
architectures -> their validation accuracies) and counts costs analytically (hpcfed.supernet.cost).

* Genome (:class:`Genome`): integer choice indices, a depth per stage, an expand and a kernel per
  block slot up to the stage's largest depth (slots beyond the depth are carried but inactive),
  and a width. A space that ties a stage's expands to one value (mobilenet: the stage's channel
  ratio) rejects unequal ones; decoding then gives the whole stage its first block's expand.
* Objectives: minimise 1 - accuracy and MACs; constraints: MACs <= budget, params <= budget.
* Initial population: the reference subnets under the budget (largest first), the smallest subnet,
  then distinct random architectures of the space under the budget (rejection sampling), then any.
* Parents: drawn uniformly from the best quarter of the population by NSGA-II's order
  (feasibility, front, crowding), SuperFed's and Once-for-All's parent ratio of 0.25.
* Child: with probability 0.5 the uniform crossover of two parents, else a copy of one; then every
  gene is redrawn uniformly from its choices with probability 0.1 (the OFA/SuperFed mutation).

Every random draw comes from pymoo's generator seeded with ``seed``, so a search is a function of
the seed and the scores. The reported front is the Pareto front of *every* architecture scored
(references included), so it is never worse than the best reference under the budget.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.core.selection import Selection

from hpcfed.errors import ConfigError, HpcfedError
from hpcfed.supernet import Arch, ResNetSpace, cost

PARENT_RATIO = 0.25      # share of the population that parents are drawn from (SuperFed, OFA)
CROSSOVER_PROB = 0.5     # share of children made by crossover; the others copy one parent
MUTATION_RATE = 0.1      # probability that each gene of a child is redrawn
SAMPLING_TRIES = 100     # random draws per wanted member before the initial population gives up the budget

Score = Callable[[list[Arch]], np.ndarray]   # architectures -> validation accuracies in [0, 1]


@dataclass(frozen=True)
class Budget:
    macs: float                   # forward MACs per sample
    params: float | None = None   # parameters; None = no limit

    def fits(self, macs: int, params: int) -> bool:
        return macs <= self.macs and (self.params is None or params <= self.params)


@dataclass(frozen=True)
class Candidate:
    arch: Arch
    macs: int
    params: int
    val_accuracy: float


@dataclass
class SearchResult:
    front: list[Candidate]                     # Pareto front under the budget, by MACs ascending
    references: list[tuple[str, Candidate]]    # the reference subnets under the budget
    evaluated: list[Candidate]                 # every distinct architecture scored, in order


class Genome:
    """Integer genes of an architecture of ``space`` (layout in the module docstring)."""

    def __init__(self, space: ResNetSpace):
        self.space = space
        self.expands, self.kernels = sorted(space.expand_choices), sorted(space.kernel_choices)
        self.widths = sorted(space.width_choices)
        self.slots = [sum(space.depths[:s]) for s in range(len(space.depths))]   # first slot of each stage
        n = sum(space.depths)
        self.sizes = np.array([*space.depths, *[len(self.expands)] * n, *[len(self.kernels)] * n, len(self.widths)])

    @property
    def n_var(self) -> int:
        return len(self.sizes)

    def decode(self, x: np.ndarray) -> Arch:
        stages, n = len(self.space.depths), sum(self.space.depths)
        depths = tuple(int(x[s]) + 1 for s in range(stages))
        genes = lambda offset, s, d: [int(x[offset + self.slots[s] + b]) for b in range(d)]  # noqa: E731
        expands = tuple(tuple(float(self.expands[i]) for i in genes(stages, s, d)) for s, d in enumerate(depths))
        kernels = tuple(tuple(int(self.kernels[i]) for i in genes(stages + n, s, d)) for s, d in enumerate(depths))
        width = float(self.widths[int(x[-1])])
        try:
            return self.space.validate(Arch(depths, expands, kernels, width))
        except ConfigError:   # one expand per stage: the stage takes its first block's
            tied = tuple((e[0],) * len(e) for e in expands)
            return self.space.validate(Arch(depths, tied, kernels, width))

    def encode(self, arch: Arch) -> np.ndarray:
        """Genes of ``arch``; an inactive slot repeats its stage's last active block."""
        stages, n = len(self.space.depths), sum(self.space.depths)
        x = np.zeros(self.n_var, dtype=np.int64)
        for s, d in enumerate(arch.depths):
            x[s] = d - 1
            for b in range(self.space.depths[s]):
                active = min(b, d - 1)
                x[stages + self.slots[s] + b] = self.expands.index(arch.expands[s][active])
                x[stages + n + self.slots[s] + b] = self.kernels.index(arch.kernels[s][active])
        x[-1] = self.widths.index(arch.width)
        return x


def check_budget(space: ResNetSpace, budget: Budget) -> None:
    """One line if no subnet of the space fits ``budget`` (the smallest has the fewest MACs and params)."""
    smallest = cost(space, space.smallest())
    for flag, value in (("--macs", budget.macs), ("--params", budget.params)):
        if value is not None and math.isnan(value):
            raise HpcfedError(f"{flag} nan: accepted a number, at least the smallest subnet's")
    if budget.macs < smallest.macs:
        raise HpcfedError(f"--macs {budget.macs:g}: below the smallest subnet's {smallest.macs} MACs per sample "
                          f"({space.smallest().name}); give at least {smallest.macs}")
    if budget.params is not None and budget.params < smallest.params:
        raise HpcfedError(f"--params {budget.params:g}: below the smallest subnet's {smallest.params} parameters "
                          f"({space.smallest().name}); give at least {smallest.params}")


def pareto_front(candidates: list[Candidate], budget: Budget) -> list[Candidate]:
    """The candidates under ``budget`` that no other beats on both accuracy and MACs, by MACs ascending
    (of equal ones the fewest params, then the first scored)."""
    fitting = sorted((c for c in candidates if budget.fits(c.macs, c.params)),
                     key=lambda c: (c.macs, -c.val_accuracy, c.params))
    front: list[Candidate] = []
    for c in fitting:
        if not front or c.val_accuracy > front[-1].val_accuracy:
            front.append(c)
    return front


class _Problem(Problem):
    """Scores a whole generation with one call to ``score``; remembers every candidate."""

    def __init__(self, genome: Genome, score: Score, budget: Budget):
        constraints = 1 if budget.params is None else 2
        super().__init__(n_var=genome.n_var, n_obj=2, n_ieq_constr=constraints, xl=0, xu=genome.sizes - 1, vtype=int)
        self.genome, self.score, self.budget = genome, score, budget
        self.seen: dict[Arch, Candidate] = {}

    def candidates(self, archs: list[Arch]) -> list[Candidate]:
        new = [a for a in dict.fromkeys(archs) if a not in self.seen]
        for arch, accuracy in zip(new, self.score(new) if new else []):
            c = cost(self.genome.space, arch)
            self.seen[arch] = Candidate(arch, c.macs, c.params, float(accuracy))
        return [self.seen[a] for a in archs]

    def _evaluate(self, X, out, *args, **kwargs):
        found = self.candidates([self.genome.decode(x) for x in X])
        macs = np.array([c.macs for c in found], dtype=float)
        out["F"] = np.column_stack([[1.0 - c.val_accuracy for c in found], macs])
        limits = [macs / self.budget.macs - 1.0]
        if self.budget.params is not None:
            limits.append(np.array([c.params for c in found], dtype=float) / self.budget.params - 1.0)
        out["G"] = np.column_stack(limits)


class _InitialPopulation(Sampling):
    def __init__(self, genome: Genome, seeds: list[Arch], budget: Budget):
        super().__init__()
        self.genome, self.seeds, self.budget = genome, seeds, budget

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        archs = list(dict.fromkeys(self.seeds))[:n_samples]
        for within in (True, False):
            for _ in range(SAMPLING_TRIES * n_samples):
                if len(archs) >= n_samples:
                    break
                arch = self.genome.decode(self.genome.encode(self.genome.space.sample(random_state)))
                c = cost(self.genome.space, arch)
                if arch not in archs and (self.budget.fits(c.macs, c.params) or not within):
                    archs.append(arch)
        return np.array([self.genome.encode(a) for a in archs])


class _ParentPool(Selection):
    def _do(self, problem, pop, n_select, n_parents, *args, random_state=None, **kwargs):
        cv = pop.get("CV")[:, 0]
        rank = np.array([np.inf if r is None else r for r in pop.get("rank")], dtype=float)
        crowding = np.array([0.0 if c is None else c for c in pop.get("crowding")], dtype=float)
        order = np.lexsort((-crowding, rank, cv))
        pool = order[:max(n_parents, math.ceil(PARENT_RATIO * len(pop)))]
        return np.array([random_state.choice(pool, n_parents, replace=len(pool) < n_parents) for _ in range(n_select)])


class _UniformCrossover(Crossover):
    def __init__(self):
        super().__init__(n_parents=2, n_offsprings=1, prob=CROSSOVER_PROB)

    def _do(self, problem, X, *args, random_state=None, **kwargs):   # X: (2 parents, matings, genes)
        return np.where(random_state.random(X.shape[1:]) < 0.5, X[0], X[1])[None]


class _Redraw(Mutation):
    def __init__(self, genome: Genome):
        super().__init__(prob=1.0)
        self.sizes = genome.sizes

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        redraw = random_state.random(X.shape) < MUTATION_RATE
        return np.where(redraw, random_state.integers(0, self.sizes, size=X.shape), X)


class _SameArch(DuplicateElimination):
    """Genomes are duplicates when they decode to the same architecture (inactive genes differ)."""

    def __init__(self, genome: Genome):
        super().__init__()
        self.genome = genome

    def _do(self, pop, other, is_duplicate):
        archs = [self.genome.decode(x) for x in pop.get("X")]
        seen = set() if other is None else {self.genome.decode(x) for x in other.get("X")}
        for i, arch in enumerate(archs):
            is_duplicate[i] = arch in seen
            if other is None:
                seen.add(arch)
        return is_duplicate


def nsga2_search(space: ResNetSpace, score: Score, budget: Budget, references: list[tuple[str, Arch]],
                 population: int, generations: int, seed: int,
                 progress: Callable[[str], None] | None = None) -> SearchResult:
    """Search ``generations`` generations of ``population`` children after the initial population."""
    genome = Genome(space)
    problem = _Problem(genome, score, budget)
    scored = problem.candidates([arch for _, arch in references])
    fitting = [(name, c) for (name, _), c in zip(references, scored) if budget.fits(c.macs, c.params)]
    seeds = [c.arch for _, c in sorted(fitting, key=lambda nc: -nc[1].macs)]
    smallest = cost(space, space.smallest())
    seeds += [space.smallest()] if budget.fits(smallest.macs, smallest.params) else []
    algorithm = NSGA2(pop_size=population, sampling=_InitialPopulation(genome, seeds, budget),
                      selection=_ParentPool(), crossover=_UniformCrossover(), mutation=_Redraw(genome),
                      eliminate_duplicates=_SameArch(genome))
    algorithm.setup(problem, termination=("n_gen", generations + 1), seed=seed, verbose=False)
    start, generation = time.perf_counter(), 0
    while algorithm.has_next():
        before = len(problem.seen)
        algorithm.next()
        if progress:
            front = pareto_front(list(problem.seen.values()), budget)
            best = front[-1] if front else None
            lead = f"best {best.val_accuracy:.4f} at {best.macs:.3g} MACs" if best else "none under the budget yet"
            label = f"generation {generation}/{generations}" if generation else "initial population"
            progress(f"{label}: {len(problem.seen) - before} new architectures scored, {len(problem.seen)} in all; "
                     f"front {len(front)}, {lead}; {time.perf_counter() - start:.1f} s")
        generation += 1
    evaluated = list(problem.seen.values())
    return SearchResult(pareto_front(evaluated, budget), fitting, evaluated)
