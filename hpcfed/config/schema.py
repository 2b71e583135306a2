"""The job schema: nested frozen dataclasses, one per section of a job file.

A job file is a YAML mapping whose keys mirror the dataclasses below; anything absent takes the
default, which together form the built-in default job. The ``strategy`` section names the method
and, under the method's name, its options: a frozen dataclass each strategy declares as a subclass
of :class:`StrategyOptions` in its own module. This module knows no method: a job is built from
mappings, with the method's options found through the strategy registry, by
hpcfed.assembly.job (``load_job``, ``build_job``); reading and conversion are hpcfed.config.parse,
value checks hpcfed.config.checks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from hpcfed.config.parse import to_mapping

DEFAULT_METHOD = "superfed"


@dataclass(frozen=True)
class StrategyOptions:
    """A strategy's options: none here. Each method's subclass adds fields, each with a default, and
    checks them."""

    def check(self, job: "JobConfig", key: str) -> None:
        """Raise a one-line ConfigError naming ``key.<option>`` for an impossible value (``key`` is the
        options' section, e.g. ``strategy.superfed``); ``job`` gives limits set by other sections."""


@dataclass(frozen=True)
class StrategyConfig:
    """The method and its options. ``options`` is an instance of the method's own options class
    (``Strategy.Options``); None, the schema's default, stands for that method's defaults until
    the job is built (hpcfed.assembly.job fills it in)."""

    name: str = DEFAULT_METHOD   # a name of hpcfed.strategies.STRATEGIES (superfed, fedavg, ifedavg, ...)
    options: StrategyOptions | None = None

    def to_mapping(self) -> dict[str, Any]:
        """``{name: X, X: {...}}``: only the chosen method's options."""
        return {"name": self.name, self.name: to_mapping(self.options) if self.options is not None else {}}


@dataclass(frozen=True)
class ClientsConfig:
    total: int = 32             # clients in the population
    per_round: int = 8          # clients whose updates one round aggregates
    overselect: float = 0.25    # extra share of clients sampled; the slowest extras are dropped
    deadline_s: float = 0.0     # virtual seconds a round waits for clients; 0 = no deadline


@dataclass(frozen=True)
class DevicesConfig:
    speed_macs_per_s: tuple[float, float] = (5e8, 2e10)   # compute speed, log-uniform per client
    memory_mb: tuple[float, float] = (2.0, 16.0)          # training memory limit, log-uniform per client
    down_mbps: tuple[float, float] = (5.0, 100.0)         # download bandwidth (megabit/s)
    up_mbps: tuple[float, float] = (1.0, 20.0)            # upload bandwidth (megabit/s)
    availability: str = "stochastic"                      # always | stochastic | trace | markov (hpcfed.population.devices)
    online_prob: float = 0.9                              # stochastic: chance a client is online in a period
    compute_share: tuple[float, float] = (0.3, 1.0)       # stochastic: share of its speed available, uniform
    period_s: float = 300.0                               # stochastic: availability is redrawn every period
    trace: str = ""                                       # trace: CSV file client,start_s,availability
    levels: tuple[float, ...] = (1.0, 0.66, 0.33)         # markov: the shares of its speed a client moves between
    step_s: float = 5.0                                   # markov: virtual seconds between possible level changes
    stay_prob: float = 0.8                                # markov: chance to keep the level at a step, else
                                                          # a uniformly random other level
    within_round: bool = False                            # stochastic, trace: true = a round's training integrates
                                                          # the share as it changes; false = the share at the round's
                                                          # start holds all round (markov always integrates)


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"        # digits | synthetic | cifar10 | deformed_digits | cifar100 | femnist
    path: str = ""              # cifar10: the cifar-10-batches-py folder; cifar100: cifar-100-python; femnist:
                                # the folder of TFF's fed_emnist_train.h5 / fed_emnist_test.h5
    partition: str = "dirichlet"  # iid | dirichlet | shards | natural (synthetic; femnist: one client per writer)
    labels: str = ""            # cifar100: fine (default, 100) | coarse (20); femnist: all (default, 62) | digits (10)
    alpha: float = 0.5          # Dirichlet concentration over labels
    shards_per_client: int = 2  # shards partition
    test_fraction: float = 0.2  # share held out as the server test set (digits, synthetic)
    synthetic_alpha: float = 1.0  # synthetic: heterogeneity of models (alpha) and of inputs (beta)
    synthetic_beta: float = 1.0
    synthetic_dim: int = 60       # synthetic: features per sample
    synthetic_samples: int = 0    # synthetic: samples per client (0 = FedProx's lognormal sizes)
    client_val_fraction: float = 0.0  # share of every client's samples kept out of training as its validation split
    server_val_fraction: float = 0.0  # share of the training pool held by the server as its validation split
    image_size: int = 16          # deformed_digits: image side, 16 or 32 (the 8x8 base digits upsampled)
    deformed_per_digit: int = 4   # deformed_digits: deformations a client holds of each base digit it owns
    deformed_test: int = 2000     # deformed_digits: test samples (deformations of the base-test digits)
    styles: int = 0               # deformed_digits: feature skew, client k gets style k mod styles (0 = none)
    deform_strength: float = 1.0  # deformed_digits: multiplies every deformation magnitude (0 = clean digits)


@dataclass(frozen=True)
class ModelConfig:
    space: str = "resnet"                   # resnet (OFA/SuperFed) | mobilenet (FedSup's MobileNet-V1-style)
    stem: int = 16
    widths: tuple[int, ...] = (32, 64)
    depths: tuple[int, ...] = (2, 2)        # most blocks per stage (elastic depth keeps the first)
    strides: tuple[int, ...] = (1, 2)
    expand_choices: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)   # resnet: block middle width; mobilenet: stage channels
    kernel_choices: tuple[int, ...] = (3,)
    width_choices: tuple[float, ...] = (1.0,)  # HeteroFL takes these as its width tiers
    divisor: int = 4                           # channel counts are multiples of this
    norm: str = "bn"                           # none | bn (static BatchNorm) | rms (parametric)


@dataclass(frozen=True)
class TrainConfig:
    local_epochs: int = 5
    batch_size: int = 16
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip_norm: float = 10.0     # gradient-norm clip; 0 = none
    max_update_ratio: float = 10.0  # reject a client whose update norm exceeds this x its slice's norm; 0 = off
    batch_clients: int = 1      # clients with the same subnet trained together as one grouped network; 1 = one at a time
    device: str = "auto"        # auto | cpu | cuda
    precision: str = "fp32"     # fp32 | bf16: bf16 autocast for forward and backward (hpcfed.learning.precision);
                                # weights, optimiser, reduction, merge and checkpoints stay fp32
    memory_format: str = "auto"  # auto | contiguous | channels_last: the layout of training batches;
                                 # auto = channels_last with bf16, contiguous with fp32 (hpcfed.learning.precision)
    threads: int = 1            # torch threads per rank (0 = node cores / ranks on the node); part of
                                # the science: results are bit-identical across rank counts at equal threads


@dataclass(frozen=True)
class EvalConfig:
    every: int = 5              # evaluate every this many rounds (and after the last)
    subnets: int = 5            # reference subnets from the smallest to the largest
    batch_size: int = 500
    calibration_samples: int = 500   # training samples on which evaluation calibrates normalisation statistics (bn)
    val_every: int = 0          # federated validation every this many rounds (0 = none): sampled clients score
                                # the reference subnets on their validation split (data.client_val_fraction)
    val_clients: int = 8        # clients sampled for each federated validation
    patience: int = 0           # stop the run when validation accuracy has not improved for this many validations (0 = never)
    min_delta: float = 0.0      # an improvement must exceed this (accuracy fraction)
    precision: str = ""         # fp32 | bf16 for every evaluation; "" = train.precision


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 10             # save the server state every this many rounds (and on SIGTERM / SIGUSR1 / SIGINT); 0 = only on signals


@dataclass(frozen=True)
class OutputConfig:
    tensorboard: str = ""       # TensorBoard log folder: the run's events go to DIR/<results file stem>/ (a view of
                                # the rounds and evaluations, hpcfed.record.tensorboard); "" = none. Relative to the
                                # current folder, as --out; needs `pip install tensorboard`


@dataclass(frozen=True)
class FaultsConfig:
    """Fault injection for drills and tests (docs/running.md, "Fault injection"); empty = no faults."""

    raise_at: tuple[tuple[int, int], ...] = ()   # [[client, round], ...]: that client's training raises
    nan_at: tuple[tuple[int, int], ...] = ()     # [[client, round], ...]: that client returns NaN weights
    blowup_at: tuple[tuple[int, int], ...] = ()  # [[client, round], ...]: that client's update is scaled 1e4x
    kill_rank: tuple[int, ...] = ()              # [rank, round]: that rank SIGKILLs itself mid-round
    signal_at: tuple[int, ...] = ()              # [round, signum]: rank 0 signals itself mid-round (15 TERM, 10 USR1, 2 INT)
    kill_in_checkpoint: int = -1                 # rank 0 SIGKILLs itself halfway through the checkpoint after this round


@dataclass(frozen=True)
class JobConfig:
    name: str = "default"
    seed: int = 0
    rounds: int = 40
    virtual_time_s: float = 0.0   # > 0: the run also ends once its virtual clock has reached this (time budgets)
    clients: ClientsConfig = field(default_factory=ClientsConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)

    def to_yaml(self) -> str:
        """The resolved job as YAML (loads back to an equal job)."""
        return yaml.safe_dump(to_mapping(self), sort_keys=False)
