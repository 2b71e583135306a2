"""The strategy interface: a strategy decides, the round loop does (Flower's Strategy shape).

Every method is a combination of a slicing rule (which subnet spec each client receives), a local
training rule (what a client does with it) and weights for the one aggregation rule. A strategy
holds its own state (e.g. SuperFed's tracking counters) as plain arrays that checkpoint with the
server; it never sends anything. Its options are a frozen dataclass, ``Options``, that the job
names under the method (``strategy: {name: X, X: {...}}``, hpcfed.strategy_config); it reads them
as ``self.options``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from hpcfed.config import JobConfig
from hpcfed.devices import Device
from hpcfed.supernet import Arch, ElasticResNet, ResNetSpace, SubnetSpec
from hpcfed.batched import train_group
from hpcfed.sandwich import Schedule, train_schedule
from hpcfed.seeding import rng
from hpcfed.training import batch_lengths, min_batch, train_subnet

Fits = Callable[["ClientSlot", Arch], bool]


@dataclass(frozen=True)
class StrategyOptions:
    """A strategy's options: none here. Subclasses add fields, each with a default, and check them."""

    def check(self, job: JobConfig, key: str) -> None:
        """Raise a one-line ConfigError naming ``key.<option>`` for an impossible value (``key`` is the
        options' section, e.g. ``strategy.superfed``); ``job`` gives limits set by other sections."""


@dataclass(frozen=True)
class DistillOptions(StrategyOptions):
    """Options of the rules that train several subnets per batch (hpcfed.sandwich)."""

    distill: bool = True   # later subnets of a batch learn the first's soft outputs (FedSup: in-place
                           # distillation; FjORD: self-distillation); false = cross-entropy for every subnet


@dataclass(frozen=True)
class ClientSlot:
    """A sampled client as the planner sees it this round."""

    client: int
    samples: int
    device: Device
    availability: float


class Strategy:
    """Base strategy: prefix slices, one subnet per client, sample-share weights."""

    name = "base"
    Options: type[StrategyOptions] = StrategyOptions   # this method's options (job.strategy.options)
    batchable = True   # the local rule is plain SGD on one subnet, which hpcfed.batched can run for groups
    divide_by_selected = False   # merge: an element's sum over all contributing clients' weight, not the covering ones'

    def __init__(self, job: JobConfig, space: ResNetSpace):
        self.job, self.space = job, space
        self.options = job.strategy.options
        # multi-subnet rules: later subnets of a batch learn the first's soft outputs
        self.distill = isinstance(self.options, DistillOptions) and self.options.distill

    def assign(self, round_index: int, slots: Sequence[ClientSlot], fits: Fits,
               rng: np.random.Generator) -> list[SubnetSpec | None]:
        """The spec each sampled client receives, or None when it can take none."""
        raise NotImplementedError

    def weights(self, round_index: int, slots: Sequence[ClientSlot], specs: Sequence[SubnetSpec]) -> np.ndarray:
        """Aggregation weights of the clients that made the round (normalised by the caller)."""
        return np.array([s.samples for s in slots], dtype=np.float64)

    def train_scale(self, spec: SubnetSpec) -> float:
        """Factor on every convolution output during local training (1 = none)."""
        return 1.0

    def local_schedule(self, round_index: int, client: int, spec: SubnetSpec, samples: int) -> Schedule | None:
        """The subnets each local batch trains, teacher first, for rules that train several per batch
        (hpcfed.sandwich); None = ``spec``'s subnet alone. Drawn from the client's own seeded stream
        (:meth:`schedule_stream`), so the server computes the same schedule to count MACs."""
        return None

    def schedule_stream(self, round_index: int, client: int) -> np.random.Generator:
        return rng(self.job.seed, "subnets", round_index, client)

    def local_batches(self, samples: int) -> int:
        return len(batch_lengths(samples, self.job.train, min_batch(self.space.norm)))

    def train_client(self, model: ElasticResNet, spec: SubnetSpec, x: torch.Tensor, y: torch.Tensor,
                     generator: torch.Generator, schedule: Schedule | None = None) -> tuple[float, int]:
        """Local training rule (with its :meth:`local_schedule`, if any); returns (mean loss, samples processed)."""
        if schedule is None:
            return train_subnet(model, spec, x, y, self.job.train, generator, self.train_scale(spec))
        return train_schedule(model, schedule, x, y, self.job.train, generator, self.distill,
                              lambda arch: self.train_scale(SubnetSpec(arch)))

    def train_clients(self, model: ElasticResNet, spec: SubnetSpec, x: torch.Tensor, y: torch.Tensor,
                      rows: list[torch.Tensor], generators: list[torch.Generator]) -> list[tuple[torch.Tensor, float, int]]:
        """The same rule for a group sharing ``spec``, as one batched computation (only if ``batchable``)."""
        return train_group(model, spec, x, y, rows, generators, self.job.train, self.train_scale(spec))

    def reference_subnets(self) -> list[SubnetSpec]:
        """The subnets the server evaluates, smallest to largest."""
        return [SubnetSpec(a) for a in self.space.references(self.job.eval.subnets)]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


def fit_or_none(slot: ClientSlot, arch: Arch, fits: Fits) -> SubnetSpec | None:
    return SubnetSpec(arch) if fits(slot, arch) else None


def largest_fitting(slot: ClientSlot, ordered: list[Arch], fits: Fits) -> SubnetSpec | None:
    """The last of ``ordered`` (smallest to largest) that the client fits, or None (tiers: HeteroFL, E-FedSup)."""
    fitting = [a for a in ordered if fits(slot, a)]
    return SubnetSpec(fitting[-1]) if fitting else None
