"""The strategy interface: a strategy decides, the round loop does (Flower's Strategy shape).

Every method is a combination of a slicing rule (which model and subnet spec each client
receives), a local training rule (what a client does with it, batch by batch) and weights for the
one aggregation rule (hpcfed.round.merge). After each round it observes what happened (hpcfed.round.outcome)
and may end the run. A strategy holds its own state (e.g. SuperFed's tracking counters) as plain
arrays that checkpoint with the server; it never sends anything. Its options are a frozen
dataclass, ``Options``, that the job names under the method (``strategy: {name: X, X: {...}}``,
hpcfed.assembly.strategy_section); it reads them as ``self.options``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from hpcfed.config import JobConfig, StrategyOptions
from hpcfed.population.devices import Device
from hpcfed.supernet import Arch, ElasticResNet, ResNetSpace, SubnetSpec
from hpcfed.learning.batched import train_group
from hpcfed.round.merge import covering
from hpcfed.round.outcome import Outcome
from hpcfed.round.plan import Schedule
from hpcfed.learning.sandwich import train_schedule
from hpcfed.seeding import rng
from hpcfed.learning.training import batch_lengths, min_batch, train_subnet

Fits = Callable[["ClientSlot", Arch], bool]


@dataclass(frozen=True)
class DistillOptions(StrategyOptions):
    """Options of the rules that train several subnets per batch (hpcfed.learning.sandwich)."""

    distill: bool = True   # later subnets of a batch learn the first's soft outputs (FedSup: in-place
                           # distillation; FjORD: self-distillation); false = cross-entropy for every subnet


@dataclass(frozen=True)
class ClientSlot:
    """A sampled client as the planner sees it this round."""

    client: int
    samples: int
    device: Device
    availability: float   # share of its compute at the round's start (hpcfed.population.devices)
    start_s: float = 0.0  # virtual time the round starts


class Strategy:
    """Base strategy: prefix slices, one subnet per client, sample-share weights."""

    name = "base"
    Options: type[StrategyOptions] = StrategyOptions   # this method's options (job.strategy.options)
    batchable = True   # the local rule is plain SGD on one subnet, which hpcfed.learning.batched can run for groups

    def __init__(self, job: JobConfig, space: ResNetSpace):
        self.job, self.space = job, space
        options = job.strategy.options
        if options is None:   # a job built without hpcfed.assembly.job: the method's defaults
            options = self.Options()
        elif type(options) is not self.Options:
            raise TypeError(f"strategy {self.name!r} takes {self.Options.__name__}, not {type(options).__name__}")
        self.options = options
        # multi-subnet rules: later subnets of a batch learn the first's soft outputs
        self.distill = isinstance(self.options, DistillOptions) and self.options.distill
        self.best_validation, self.validations_since_best, self.stopped = -1.0, 0, ""   # early stopping

    def assign(self, round_index: int, slots: Sequence[ClientSlot], fits: Fits,
               rng: np.random.Generator) -> list[SubnetSpec | None]:
        """The spec each sampled client receives, or None when it can take none."""
        raise NotImplementedError

    def assign_models(self, round_index: int, slots: Sequence[ClientSlot], fits: Fits,
                      rng: np.random.Generator) -> list[tuple[int, SubnetSpec] | None]:
        """(model, spec) each sampled client receives, or None; one-model strategies give model 0
        to :meth:`assign`'s specs, strategies with several models override this."""
        return [None if spec is None else (0, spec) for spec in self.assign(round_index, slots, fits, rng)]

    def live_models(self) -> tuple[int, ...]:
        """The models the run holds now (hpcfed.engine.server creates a new one from :meth:`spawned_from`)."""
        return (0,)

    def spawned_from(self, model: int) -> int:
        """The model whose current weights a new ``model`` starts from."""
        return 0

    def idle_round(self, round_index: int) -> bool:
        """Whether the strategy trains nobody in this round by design (a validation-only round): its
        virtual time is then zero, where a round in which nobody could train waits ``devices.period_s``."""
        return False

    def weights(self, round_index: int, slots: Sequence[ClientSlot], specs: Sequence[SubnetSpec]) -> np.ndarray:
        """Aggregation weights of the clients that made the round (normalised by the caller)."""
        return np.array([s.samples for s in slots], dtype=np.float64)

    def train_scale(self, spec: SubnetSpec) -> float:
        """Factor on every convolution output during local training (1 = none)."""
        return 1.0

    def prepare(self, data, population) -> None:
        """Rank 0, before the first round (and on resume): what the method needs of the data (e.g. the
        server's validation split) and of the devices (their availability over time). Default: nothing."""

    def device_schedule(self, round_index: int, slot: ClientSlot, spec: SubnetSpec) -> Schedule | None:
        """The client's local schedule when it depends on its own device and its compute over the
        round (``slot``: device, share, round start); by default :meth:`local_schedule`."""
        return self.local_schedule(round_index, slot.client, spec, slot.samples)

    def local_schedule(self, round_index: int, client: int, spec: SubnetSpec, samples: int) -> Schedule | None:
        """The subnets (any channel sets) each local batch trains, teacher first, for rules that
        train several per batch or change subnets between batches (hpcfed.learning.sandwich); None = ``spec``'s
        subnet alone. Drawn from the client's own seeded stream (:meth:`schedule_stream`) on rank 0
        and shipped in the plan."""
        return None

    def footprint(self, spec: SubnetSpec, schedule: Schedule | None) -> tuple[SubnetSpec, ...]:
        """The specs whose union the client updates and returns: by default the whole slice it received."""
        return (spec,)

    def merge_denominator(self, covering_weights: torch.Tensor, contributing_total: int) -> torch.Tensor:
        """The merge's per-element divisor (fixed point) from the weights of the tasks covering each
        element and the total weight of all contributing tasks (hpcfed.round.merge); default: the covering."""
        return covering(covering_weights, contributing_total)

    def schedule_stream(self, round_index: int, client: int) -> np.random.Generator:
        return rng(self.job.seed, "subnets", round_index, client)

    def local_batches(self, samples: int) -> int:
        return len(batch_lengths(samples, self.job.train, min_batch(self.space.norm)))

    def train_client(self, model: ElasticResNet, spec: SubnetSpec, x: torch.Tensor, y: torch.Tensor,
                     generator: torch.Generator, schedule: Schedule | None = None) -> tuple[float, int]:
        """Local training rule (with its :meth:`local_schedule`, if any); returns (mean loss, samples processed)."""
        if schedule is None:
            return train_subnet(model, spec, x, y, self.job.train, generator, self.train_scale(spec))
        return train_schedule(model, schedule, x, y, self.job.train, generator, self.distill, self.train_scale)

    def train_clients(self, model: ElasticResNet, spec: SubnetSpec, x: torch.Tensor, y: torch.Tensor,
                      rows: list[torch.Tensor], generators: list[torch.Generator]) -> list[tuple[torch.Tensor, float, int]]:
        """The same rule for a group sharing ``spec``, as one batched computation (only if ``batchable``)."""
        return train_group(model, spec, x, y, rows, generators, self.job.train, self.train_scale(spec))

    def reference_subnets(self) -> list[SubnetSpec]:
        """The subnets of model 0 the server evaluates on the test set, smallest to largest."""
        return [SubnetSpec(a) for a in self.space.references(self.job.eval.subnets)]

    def references(self) -> list[tuple[int, SubnetSpec]]:
        """(model, spec) of every reference evaluation (the columns of the results' eval/accuracy)."""
        return [(0, spec) for spec in self.reference_subnets()]

    def validation_specs(self, round_index: int) -> list[tuple[int, SubnetSpec]]:
        """(model, spec) pairs that clients score on their validation splits this round (federated
        validation, ``eval.val_every``): by default the references, every ``val_every`` rounds."""
        every = self.job.eval.val_every
        return self.references() if every and (round_index + 1) % every == 0 else []

    def observe(self, round_index: int, outcome: Outcome) -> None:
        """What the round did (per-task metrics, validation scores). The base rule stops the run
        early when the mean federated validation accuracy over the validated subnets has not
        improved by ``eval.min_delta`` for ``eval.patience`` validations (0 = never)."""
        rates = [correct / total for correct, total in outcome.validation().values() if total]
        patience = self.job.eval.patience
        if not rates or not patience:
            return
        accuracy = float(np.mean(rates))
        if accuracy > self.best_validation + self.job.eval.min_delta:
            self.best_validation, self.validations_since_best = accuracy, 0
        else:
            self.validations_since_best += 1
        if self.validations_since_best >= patience:
            self.stopped = (f"early stop after round {round_index}: federated validation accuracy has not improved "
                            f"by more than {self.job.eval.min_delta:g} over the best ({self.best_validation:.4f}) for "
                            f"{patience} validations")

    def status(self) -> str:
        """A few words on where the method stands, for the progress line ("" = nothing to add)."""
        return ""

    def stop_reason(self) -> str:
        """Why the strategy ends the run now ("" = go on)."""
        return self.stopped

    def report(self, test_accuracy: Callable[[list[tuple[int, SubnetSpec]]], np.ndarray]) -> dict | None:
        """What the method reports once the run has ended, beyond the reference evaluations: None, or
        ``{"group": name, "tables": {table: {column: values}}, "attrs": {...}, "root": {...}}`` for the
        results file (hpcfed.record.results.ResultsWriter.save_report). ``test_accuracy`` scores (model, spec)
        pairs on the test set: reporting only, after every decision."""
        return None

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"best_validation": np.array(self.best_validation),
                "validations_since_best": np.array(self.validations_since_best),
                "stopped": np.array(self.stopped.encode())}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.best_validation = float(state["best_validation"])
        self.validations_since_best = int(state["validations_since_best"])
        self.stopped = bytes(state["stopped"]).decode()


def fit_or_none(slot: ClientSlot, arch: Arch, fits: Fits) -> SubnetSpec | None:
    return SubnetSpec(arch) if fits(slot, arch) else None


def largest_fitting(slot: ClientSlot, ordered: list[Arch], fits: Fits) -> SubnetSpec | None:
    """The last of ``ordered`` (smallest to largest) that the client fits, or None (tiers: HeteroFL, E-FedSup)."""
    fitting = [a for a in ordered if fits(slot, a)]
    return SubnetSpec(fitting[-1]) if fitting else None
