"""DISTREAL's offline design-space exploration: Pareto-optimal dropout vectors (Rapp et al., AAAI 2022).

Once, before training, NSGA-II (Deb et al. 2002, through pymoo) searches the per-layer drop-rate
vectors (hpcfed.learning.dropout) for the best trade-off between

- **R(d)**, the resource need: analytic forward MACs relative to d = 0 (hpcfed.learning.dropout.relative_macs);
- **Q(d)**, the convergence quality: the decrease of the cross-entropy of the full network on a
  held-out half of the server's validation split after ``steps`` SGD steps on the other half (as
  many passes over it as that takes), every
  batch training a random filter subset at rates d (the same subsets' seeds for every vector:
  common random numbers), from the job's initial weights.

The genome is one integer per channel group (an index into the rate set); duplicates are
eliminated. The result is a table of the non-dominated vectors sorted by R, the full vector always
included, each with R, Q and a measured time per step on this machine; ``tools/dse.py`` writes it
as JSON (and a figure), and the ``distreal`` strategy reads it. Decisions never see the test set.
Under MPI every rank scores a share of each generation (hpcfed.runtime.comm), with identical results.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hpcfed.config import JobConfig
from hpcfed.errors import ConfigError
from hpcfed.learning.dropout import RATES, DropoutVector, groups, relative_macs, schedule
from hpcfed.learning.evaluation import calibrate, score
from hpcfed.learning.precision import eval_precision
from hpcfed.learning.sandwich import train_schedule
from hpcfed.learning.training import batch_lengths, min_batch
from hpcfed.seeding import rng, torch_generator
from hpcfed.supernet import ElasticResNet, ResNetSpace, SubnetSpec

TABLE_FORMAT = 1


@dataclass
class Entry:
    rates: tuple[float, ...]
    R: float
    Q: float
    step_s: float = float("nan")   # measured seconds per local step on the machine that ran the DSE


@dataclass
class Table:
    """The Pareto table a DISTREAL client chooses from (sorted by R, the full vector last)."""

    groups: tuple[str, ...]
    choices: tuple[float, ...]
    entries: list[Entry]
    meta: dict = field(default_factory=dict)

    def vectors(self) -> list[DropoutVector]:
        return [DropoutVector(e.rates, self.choices) for e in self.entries]

    def to_json(self) -> str:
        return json.dumps({"format": TABLE_FORMAT, "groups": list(self.groups), "choices": list(self.choices),
                           "entries": [{"rates": list(e.rates), "R": e.R, "Q": e.Q, "step_s": e.step_s}
                                       for e in self.entries], "meta": self.meta}, indent=1)

    @classmethod
    def load(cls, path: str | Path, space: ResNetSpace) -> "Table":
        """Read ``tools/dse.py``'s table; one-line ConfigError if it does not fit ``space``."""
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise ConfigError(f"strategy.distreal.table = {str(path)!r}: cannot be read ({err.strerror}); accepted: "
                              "a table written by tools/dse.py") from None
        return cls.from_json(text, space, str(path))

    @classmethod
    def from_json(cls, text: str, space: ResNetSpace, where: str = "the table") -> "Table":
        path = where
        try:
            raw = json.loads(text)
            table = cls(tuple(raw["groups"]), tuple(raw["choices"]),
                        [Entry(tuple(e["rates"]), float(e["R"]), float(e["Q"]), float(e.get("step_s", "nan")))
                         for e in raw["entries"]], raw.get("meta", {}))
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"strategy.distreal.table = {str(path)!r}: not a dropout table written by "
                              f"tools/dse.py ({err})") from None
        if not table.entries:
            raise ConfigError(f"strategy.distreal.table = {str(path)!r}: the table is empty; accepted: a table "
                              "with at least one entry (rerun tools/dse.py)")
        if table.groups != groups(space):
            raise ConfigError(f"strategy.distreal.table = {str(path)!r}: its channel groups {list(table.groups)} are "
                              f"not this job's model's {list(groups(space))}; rerun tools/dse.py on this job")
        for entry in table.entries:
            DropoutVector(entry.rates, table.choices)
        return table


def non_dominated(points: np.ndarray) -> np.ndarray:
    """Rows of ``points`` (to minimise, column-wise) that no other row dominates."""
    keep = []
    for i, p in enumerate(points):
        dominated = np.any(np.all(points <= p, axis=1) & np.any(points < p, axis=1))
        if not dominated:
            keep.append(i)
    return np.array(keep, dtype=np.int64)


class ProxyQuality:
    """Q(d): loss decrease of a short proxy training at rates d on the server's validation split."""

    def __init__(self, job: JobConfig, space: ResNetSpace, x_val: torch.Tensor, y_val: torch.Tensor, steps: int):
        if len(y_val) < 4:
            raise ConfigError("data.server_val_fraction: the DSE needs the server's validation split (at least 4 "
                              f"samples, got {len(y_val)}); accepted: a fraction > 0 that gives them")
        order = rng(job.seed, "dse-split").permutation(len(y_val))
        half = len(y_val) // 2
        train, held = torch.from_numpy(order[:half]), torch.from_numpy(order[half:])
        self.job, self.space = job, space
        self.x, self.y = x_val[train], y_val[train]
        self.x_held, self.y_held = x_val[held], y_val[held]
        epochs = math.ceil(steps * job.train.batch_size / len(train))   # as many passes as ``steps`` batches need
        self.cfg = dataclasses.replace(job.train, local_epochs=epochs)
        self.batches = min(steps, len(batch_lengths(len(train), self.cfg, min_batch(space.norm))))
        self.model = ElasticResNet(space, torch_generator(job.seed, "init"))
        self.initial = self.model.flat.detach().clone()
        self.start_loss = self.loss()

    def loss(self) -> float:
        """Mean cross-entropy of the full network on the held-out half (statistics calibrated on it)."""
        spec = SubnetSpec(self.space.largest())
        precision = eval_precision(self.job.train.precision, self.job.eval.precision)
        statistics = calibrate(self.model, spec, self.x_held, precision)
        return score(self.model, spec, self.x_held, self.y_held, 256, statistics, precision=precision).loss_sum / len(self.y_held)

    def __call__(self, vector: DropoutVector) -> float:
        with torch.no_grad():
            self.model.flat.copy_(self.initial)
        plan = schedule(self.space, [vector] * self.batches, self.job.seed, 0, 0)   # the same subsets' seeds for all
        self.model.train()
        train_schedule(self.model, plan, self.x, self.y, self.cfg, torch_generator(self.job.seed, "dse-batches"),
                       distill=False)
        self.model.eval()
        return self.start_loss - self.loss()


def uniform_table(space: ResNetSpace, choices=RATES) -> Table:
    """One entry per rate, the same rate for every layer (the uniform-dropout baseline); Q unknown:
    a smaller rate is taken as the better one."""
    entries = [Entry(v.rates, relative_macs(space, v), -rate)
               for rate, v in ((r, DropoutVector.uniform(space, r, choices)) for r in sorted(choices, reverse=True))]
    return Table(groups(space), tuple(choices), entries, {"kind": "uniform"})


def explore(space: ResNetSpace, quality, score_many, population: int, generations: int, seed: int,
            choices=RATES, progress=print) -> tuple[Table, np.ndarray, np.ndarray]:
    """NSGA-II over integer genomes (one rate index per channel group): minimise (R, -Q).

    ``score_many(vectors) -> Q values`` scores a generation (spread over the MPI ranks by the caller).
    Returns the table of non-dominated vectors (sorted by R, the full vector included) and every
    evaluated (R, Q) pair, for the plot."""
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.operators.sampling.rnd import IntegerRandomSampling
    from pymoo.optimize import minimize

    genes, top = len(groups(space)), len(choices) - 1
    seen: dict[tuple[int, ...], tuple[float, float]] = {}

    def evaluate(rows: np.ndarray) -> np.ndarray:
        keys = [tuple(int(g) for g in row) for row in np.rint(rows).astype(int)]
        new = list(dict.fromkeys(k for k in keys if k not in seen))
        vectors = [DropoutVector.from_indices(k, choices) for k in new]
        for key, vector, q in zip(new, vectors, score_many(vectors)):
            seen[key] = (relative_macs(space, vector), float(q))
        return np.array([[seen[k][0], -seen[k][1]] for k in keys])

    class Dropout(Problem):
        def __init__(self):
            super().__init__(n_var=genes, n_obj=2, xl=0, xu=top, vtype=int)

        def _evaluate(self, x, out, *args, **kwargs):
            out["F"] = evaluate(x)

    generation = [0]

    def callback(algorithm):
        generation[0] += 1
        progress(f"dse: generation {generation[0]}/{generations + 1}: {len(seen)} vectors scored")

    algorithm = NSGA2(pop_size=population, sampling=IntegerRandomSampling(),
                      crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
                      mutation=PM(eta=20, vtype=float, repair=RoundingRepair()), eliminate_duplicates=True)
    minimize(Dropout(), algorithm, ("n_gen", generations + 1), seed=seed, callback=callback, verbose=False)
    evaluate(np.zeros((1, genes)))   # the full vector is always an entry (a device with all its compute)
    keys = list(seen)
    points = np.array([[seen[k][0], -seen[k][1]] for k in keys])
    front = sorted((keys[i] for i in non_dominated(points)), key=lambda k: seen[k][0])
    if (0,) * genes not in front:
        front.append((0,) * genes)
    entries = [Entry(DropoutVector.from_indices(k, choices).rates, seen[k][0], seen[k][1]) for k in front]
    allR = np.array([seen[k][0] for k in keys])
    allQ = np.array([seen[k][1] for k in keys])
    return Table(groups(space), tuple(choices), entries), allR, allQ
