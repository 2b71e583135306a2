"""The strategy contract: a strategy decides, the round loop does (Flower's Strategy shape).

A method is a slicing rule (which model and subnet each client receives), a local training rule
(what a client does with it, batch by batch) and weights for the one aggregation rule
(hpcfed.round.merge). A strategy holds its own state as plain arrays that checkpoint with the
server; it never sends anything. Its options are a frozen dataclass, ``Options`` (a subclass of
hpcfed.config.StrategyOptions), that the job names under the method (``strategy: {name: X, X:
{...}}``); it reads them as ``self.options``. Adding a method is adding one module (or folder) here
and its job file: the engine, the record and the tools reach it only through this contract and the
registry (hpcfed.strategies.STRATEGIES).

What a strategy must implement, and what it may override (default in brackets):

=========================================  ==========  ==========================================================
hook                                       when        what
=========================================  ==========  ==========================================================
``name``, ``Options``                      --          must: the registry name; the options dataclass
``assign(r, slots, fits, rng)``            planning    must: (model, spec) per sampled client, or None
``models()``                               planning    the live models, each with the model a new one starts
                                                       from [{0: 0}]
``weights(r, slots, specs)``               planning    aggregation weights of a model's kept clients [samples]
``schedule(r, slot, spec)``                planning    the subnets of each local batch [None: spec alone]
``footprint(spec, schedule)``              planning    the slices the client returns [(spec,)]
``idle_round(r)``                          planning    nobody trains by design: zero virtual time [False]
``validation_specs(r)``                    planning    (model, spec) scored on clients' validation splits
                                                       [the references every ``eval.val_every`` rounds]
``references()``                           start       (model, spec) scored on the test set, to report
                                                       [model 0's ``eval.subnets`` reference subnets]
``train_client(...)``, ``train_scale``     worker      the local rule [SGD on spec or schedule; 1.0]
``batchable``                              worker      the local rule is SGD on one subnet [True]
``merge_denominator(covering, total)``     merge       the per-element divisor [the covering weights]
``observe(r, outcome)``                    after       what the round did (validation scores) [nothing]
``status()``, ``stop_reason()``            after       words for the progress line; why to end now [""]
``rounds_left()``                          after       rounds before it ends the run itself [inf; None = unknown]
``prepare(data, population)``              start       what the method needs of data and devices [nothing]
``report(test_accuracy)``                  end         the method's results group [None]
``state_dict()``, ``load_state_dict(s)``   checkpoint  the method's state [{}]
``summary_lines(results)`` (class)         reading     lines about the method's results group [[]]
``draw(results, fig)`` (class)             reading     a figure of the method's results group [none]
``reported_subnets(results)`` (class)      reading     the subnets a finished run reports, when not its
                                                       evaluated references [None]
``final_model(attrs)`` (class)             reading     the model a finished run without references
                                                       deploys [None]
=========================================  ==========  ==========================================================

Early stopping on federated validation is the controller's (hpcfed.engine.controller), not a
strategy's. Helpers for strategies: :meth:`Strategy.schedule_stream`, :meth:`Strategy.local_batches`,
:func:`fit_or_none`, :func:`largest_fitting` (and hpcfed.strategies.archs for architectures named in
options).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from hpcfed.config import JobConfig, StrategyOptions
from hpcfed.learning.sandwich import Schedule, train_schedule
from hpcfed.learning.training import batch_lengths, min_batch, train_subnet
from hpcfed.population.devices import Device
from hpcfed.round.merge import covering
from hpcfed.round.outcome import Outcome
from hpcfed.seeding import rng
from hpcfed.supernet import Arch, ElasticResNet, ResNetSpace, SubnetSpec

Fits = Callable[["ClientSlot", Arch], bool]
Assigned = tuple[int, SubnetSpec]   # (model, spec) a client receives


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
    """Base strategy: prefix slices, one model, one subnet per client, sample-share weights."""

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

    # -- planning --------------------------------------------------------------------------------
    def assign(self, round_index: int, slots: Sequence[ClientSlot], fits: Fits,
               rng: np.random.Generator) -> list[Assigned | None]:
        """The (model, spec) each sampled client receives, or None when it can take none."""
        raise NotImplementedError

    def models(self) -> dict[int, int]:
        """The models the run holds now, in order, each with the model whose current weights it starts
        from when it is new (hpcfed.engine.server keeps exactly these)."""
        return {0: 0}

    def weights(self, round_index: int, slots: Sequence[ClientSlot], specs: Sequence[SubnetSpec]) -> np.ndarray:
        """Aggregation weights of one model's clients that made the round (normalised by the caller)."""
        return np.array([s.samples for s in slots], dtype=np.float64)

    def schedule(self, round_index: int, slot: ClientSlot, spec: SubnetSpec) -> Schedule | None:
        """The subnets (any channel sets) each local batch of the client trains, teacher first, for rules
        that train several per batch or change subnets between batches (hpcfed.learning.sandwich); None
        = ``spec``'s subnet alone. Drawn on rank 0 from the client's own seeded stream
        (:meth:`schedule_stream`), its device and its compute over the round (``slot``), and shipped
        in the plan."""
        return None

    def footprint(self, spec: SubnetSpec, schedule: Schedule | None) -> tuple[SubnetSpec, ...]:
        """The specs whose union the client updates and returns: by default the whole slice it received."""
        return (spec,)

    def idle_round(self, round_index: int) -> bool:
        """Whether the strategy trains nobody in this round by design (a validation-only round): its
        virtual time is then zero, where a round in which nobody could train waits ``devices.period_s``."""
        return False

    def validation_specs(self, round_index: int) -> list[tuple[int, SubnetSpec]]:
        """(model, spec) pairs that clients score on their validation splits this round (federated
        validation, ``eval.val_every``): by default the references, every ``val_every`` rounds."""
        every = self.job.eval.val_every
        return self.references() if every and (round_index + 1) % every == 0 else []

    def references(self) -> list[tuple[int, SubnetSpec]]:
        """(model, spec) of every reference evaluation on the test set (the columns of the results'
        eval/accuracy): by default model 0's reference subnets, smallest to largest."""
        return [(0, SubnetSpec(a)) for a in self.space.references(self.job.eval.subnets)]

    # -- the local rule (on the worker) --------------------------------------------------------------
    def train_scale(self, spec: SubnetSpec) -> float:
        """Factor on every convolution output during local training (1 = none)."""
        return 1.0

    def train_client(self, model: ElasticResNet, spec: SubnetSpec, x: torch.Tensor, y: torch.Tensor,
                     generator: torch.Generator, schedule: Schedule | None = None) -> tuple[float, int]:
        """Local training rule (with its :meth:`schedule`, if any); returns (mean loss, samples processed)."""
        if schedule is None:
            return train_subnet(model, spec, x, y, self.job.train, generator, self.train_scale(spec))
        return train_schedule(model, schedule, x, y, self.job.train, generator, self.distill, self.train_scale)

    # -- the merge and after the round ----------------------------------------------------------------
    def merge_denominator(self, covering_weights: torch.Tensor, contributing_total: int) -> torch.Tensor:
        """The merge's per-element divisor (fixed point) from the weights of the tasks covering each
        element and the total weight of all contributing tasks (hpcfed.round.merge); default: the covering."""
        return covering(covering_weights, contributing_total)

    def observe(self, round_index: int, outcome: Outcome) -> None:
        """What the round did (per-task metrics, validation scores)."""

    def status(self) -> str:
        """A few words on where the method stands, for the progress line ("" = nothing to add)."""
        return ""

    def stop_reason(self) -> str:
        """Why the strategy ends the run now ("" = go on)."""
        return ""

    def rounds_left(self) -> float | None:
        """Rounds before the strategy ends the run itself: ``math.inf`` (it never does: the job's
        rounds or budget decide), a number, or None when it cannot know yet (a search)."""
        return math.inf

    # -- the run's start and end ------------------------------------------------------------------
    def prepare(self, data, population) -> None:
        """Rank 0, before the first round (and on resume): what the method needs of the data (e.g. the
        server's validation split) and of the devices (their availability over time). Default: nothing."""

    def report(self, test_accuracy: Callable[[list[tuple[int, SubnetSpec]]], np.ndarray]) -> dict | None:
        """What the method reports once the run has ended, beyond the reference evaluations: None, or
        ``{"group": name, "tables": {table: {column: values}}, "attrs": {...}, "root": {...}}`` for the
        results file (hpcfed.record.results.ResultsWriter.save_report). ``test_accuracy`` scores (model,
        spec) pairs on the test set: reporting only, after every decision."""
        return None

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` (a checkpoint's)."""

    # -- reading a finished run's results (class level: no job needed) ---------------------------------
    @classmethod
    def summary_lines(cls, results: dict[str, Any]) -> list[str]:
        """Lines about the method's own results group for the run's summary (hpcfed.record.report)."""
        return []

    @classmethod
    def reported_subnets(cls, results: dict[str, Any]) -> dict[str, Any] | None:
        """The subnets a finished run reports when they are not its evaluated references, as eval/'s
        columns (``subnet_names``, ``subnet_macs``, ``subnet_params``, ``accuracy`` (E, S)); None = eval/."""
        return None

    @classmethod
    def final_model(cls, attrs: dict[str, Any]) -> int | None:
        """The model a finished run deploys when it has no reference subnets (``attrs``: the file's root)."""
        return None

    @classmethod
    def draw(cls, results: dict[str, Any], fig) -> str:
        """Draw the method's own results group on a matplotlib Figure (tools/plot.py); the name of the
        figure ("" = the method has none to draw)."""
        return ""

    # -- helpers for strategies -----------------------------------------------------------------------
    def schedule_stream(self, round_index: int, client: int) -> np.random.Generator:
        """The client's own seeded stream for drawing its schedule in this round."""
        return rng(self.job.seed, "subnets", round_index, client)

    def local_batches(self, samples: int) -> int:
        """How many local batches a client of ``samples`` training samples runs in a round."""
        return len(batch_lengths(samples, self.job.train, min_batch(self.space.norm)))


def fit_or_none(slot: ClientSlot, arch: Arch, fits: Fits, model: int = 0) -> Assigned | None:
    """(model, ``arch``) if the client fits it, else None."""
    return (model, SubnetSpec(arch)) if fits(slot, arch) else None


def largest_fitting(slot: ClientSlot, ordered: list[Arch], fits: Fits) -> Assigned | None:
    """Model 0 and the last of ``ordered`` (smallest to largest) that the client fits, or None (tiers:
    HeteroFL, E-FedSup)."""
    fitting = [a for a in ordered if fits(slot, a)]
    return (0, SubnetSpec(fitting[-1])) if fitting else None
