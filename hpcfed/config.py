"""Jobs: nested frozen dataclasses loaded from YAML, with every field checked.

A job file is a YAML mapping whose keys mirror the dataclasses below; anything absent takes the
default, which together form the built-in default job. ``--set key.sub=value`` overrides any field
(the value is parsed as YAML). Unknown keys, wrong types and impossible values raise a
:class:`ConfigError` whose one line names the key, the value and what is accepted.
"""
from __future__ import annotations

import copy
import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpcfed.errors import ConfigError


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
    availability: str = "stochastic"                      # always | stochastic | trace
    online_prob: float = 0.9                              # stochastic: chance a client is online in a period
    compute_share: tuple[float, float] = (0.3, 1.0)       # stochastic: share of its speed available, uniform
    period_s: float = 300.0                               # stochastic: availability is redrawn every period
    trace: str = ""                                       # trace: CSV file client,start_s,availability


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"        # digits | synthetic | cifar10
    path: str = ""              # cifar10: the cifar-10-batches-py folder
    partition: str = "dirichlet"  # iid | dirichlet | shards | natural (synthetic)
    alpha: float = 0.5          # Dirichlet concentration over labels
    shards_per_client: int = 2  # shards partition
    test_fraction: float = 0.2  # share held out as the server test set (digits, synthetic)
    synthetic_alpha: float = 1.0  # synthetic: heterogeneity of models (alpha) and of inputs (beta)
    synthetic_beta: float = 1.0
    synthetic_dim: int = 60       # synthetic: features per sample
    synthetic_samples: int = 0    # synthetic: samples per client (0 = FedProx's lognormal sizes)
    client_val_fraction: float = 0.0  # share of every client's samples kept out of training as its validation split
    server_val_fraction: float = 0.0  # share of the training pool held by the server as its validation split


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
class StrategyConfig:
    name: str = "superfed"              # fedavg | superfed | heterofl | fedrolex | feddropout | fedsup | efedsup | fjord
    arch: str = "largest"               # fedavg: largest | smallest | ref<i> (i-th reference subnet)
    distribution: str = "tracking_sandwich"  # superfed: tracking_sandwich | sandwich | random
    weighting: str = "maxnet"           # superfed: maxnet | uniform (plain overlap averaging)
    beta0: float = 0.9                  # maxnet: weight of the largest subnet's client at round 0
    beta_end: float = 0.0               # maxnet: final weight; 0 = 1/n (uniform)
    decay_fraction: float = 0.8         # maxnet: share of the rounds over which beta decays
    sample_weighted: bool = False       # multiply client weights by their sample share
    sandwich_random: int = 2            # fedsup, efedsup: random subnets per batch besides the largest and smallest
    distill: bool = True                # fedsup, efedsup: in-place distillation; fjord: self-distillation;
                                        # false = cross-entropy for every subnet
    tiers: str = "device"               # efedsup: device (largest reference subnet the device fits) | fixed4
    merge: str = "covered"              # efedsup: covered (the one rule) | selected (reference code's divisor)


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
    threads: int = 1            # torch threads per rank (0 = node cores / ranks on the node); part of
                                # the science: results are bit-identical across rank counts at equal threads


@dataclass(frozen=True)
class EvalConfig:
    every: int = 5              # evaluate every this many rounds (and after the last)
    subnets: int = 5            # reference subnets from the smallest to the largest
    batch_size: int = 500
    val_every: int = 0          # federated validation every this many rounds (0 = none): sampled clients score
                                # the reference subnets on their validation split (data.client_val_fraction)
    val_clients: int = 8        # clients sampled for each federated validation
    patience: int = 0           # stop the run when validation accuracy has not improved for this many validations (0 = never)
    min_delta: float = 0.0      # an improvement must exceed this (accuracy fraction)


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = 10             # save the server state every this many rounds (and on SIGTERM / SIGUSR1 / SIGINT); 0 = only on signals


@dataclass(frozen=True)
class FaultsConfig:
    """Fault injection for drills and tests (README, "Fault injection"); empty = no faults."""

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
    clients: ClientsConfig = field(default_factory=ClientsConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)

    def to_yaml(self) -> str:
        """The resolved job as YAML (loads back to an equal job)."""
        return yaml.safe_dump(_plain(dataclasses.asdict(self)), sort_keys=False)


CHOICES: dict[str, tuple[str, ...]] = {
    "devices.availability": ("always", "stochastic", "trace"),
    "data.name": ("digits", "synthetic", "cifar10"),
    "data.partition": ("iid", "dirichlet", "shards", "natural"),
    "model.space": ("resnet", "mobilenet"),
    "model.norm": ("none", "bn", "rms"),
    "strategy.name": ("fedavg", "superfed", "heterofl", "fedrolex", "feddropout", "fedsup", "efedsup", "fjord"),
    "strategy.tiers": ("device", "fixed4"),
    "strategy.merge": ("covered", "selected"),
    "strategy.distribution": ("tracking_sandwich", "sandwich", "random"),
    "strategy.weighting": ("maxnet", "uniform"),
    "train.device": ("auto", "cpu", "cuda"),
}


def load_job(path: str | None = None, overrides: list[str] = ()) -> JobConfig:
    """Read a job file (None = the built-in default job), apply ``key.sub=value`` overrides, check it."""
    return build_job(read_mapping(path, "job file") if path else {}, overrides)


def build_job(raw: dict[str, Any], overrides: list[str] = ()) -> JobConfig:
    """The job that ``raw`` (a job file's mapping; not modified) describes, after ``overrides``; checked."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        _apply_override(raw, item)
    job = _build(JobConfig, raw, "")
    validate(job)
    return job


def read_mapping(path: str, what: str) -> dict[str, Any]:
    """The YAML mapping in file ``path`` ({} if empty); errors call the file ``what`` (e.g. "job file")."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {path!r} does not exist or is not a file")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{what} {path!r} is not valid YAML{where}: "
                          f"{getattr(err, 'problem', None) or err}".replace("\n", " ")) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{what} {path!r} cannot be read: {err}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{what} {path!r} must hold a mapping of keys; got {type(loaded).__name__}")
    return loaded or {}


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key.sub=value, e.g. --set rounds=50")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


_EXPONENT_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'job'}: expected a mapping; got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; accepted keys here: {', '.join(names)}")
    kwargs = {}
    for name in names:
        if name in raw:
            kwargs[name] = _convert(hints[name], raw[name], prefix + name)
    return cls(**kwargs)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {value!r}: expected a list")
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(f"{key} = {value!r}: expected a list of {len(args)} values")
        item = args[0]
        return tuple(_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: expected an integer")
        return value
    if hint is float:
        if isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value.strip()):
            value = float(value)    # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} = {value!r}: expected a number")
        return float(value)
    if hint is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: expected a string")
        return value
    raise TypeError(f"unsupported config type {hint} for {key}")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _get(job: JobConfig, key: str) -> Any:
    node: Any = job
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _check(ok: bool, key: str, value: Any, accepted: str) -> None:
    if not ok:
        raise ConfigError(f"{key} = {value!r}: accepted {accepted}")


def validate(job: JobConfig) -> None:
    """Reject impossible values and contradictions; each error names the key(s) involved."""
    for key, choices in CHOICES.items():
        value = _get(job, key)
        _check(value in choices, key, value, " | ".join(choices))
    positive_ints = ["rounds", "clients.total", "clients.per_round", "train.local_epochs", "train.batch_size",
                     "train.batch_clients",
                     "eval.every", "eval.batch_size", "model.stem", "model.divisor", "data.shards_per_client"]
    for key in positive_ints:
        _check(_get(job, key) >= 1, key, _get(job, key), "an integer >= 1")
    _check(job.seed >= 0, "seed", job.seed, "an integer >= 0")
    _check(job.eval.val_every >= 0, "eval.val_every", job.eval.val_every, "an integer >= 0 (0 = no validation)")
    _check(job.eval.val_clients >= 1, "eval.val_clients", job.eval.val_clients, "an integer >= 1")
    _check(job.eval.patience >= 0, "eval.patience", job.eval.patience, "an integer >= 0 (0 = never stop early)")
    _check(job.eval.min_delta >= 0, "eval.min_delta", job.eval.min_delta, "a number >= 0")
    _check(not job.eval.val_every or job.data.client_val_fraction > 0, "eval.val_every", job.eval.val_every,
           "0 unless data.client_val_fraction > 0 (federated validation scores clients' validation splits)")
    _check(not job.eval.patience or job.eval.val_every > 0, "eval.patience", job.eval.patience,
           "0 unless eval.val_every > 0 (early stopping needs federated validation)")
    _check(job.eval.subnets >= 2, "eval.subnets", job.eval.subnets, "an integer >= 2 (smallest and largest)")
    _check(job.clients.per_round <= job.clients.total, "clients.per_round", job.clients.per_round,
           f"1..clients.total ({job.clients.total})")
    _check(job.clients.overselect >= 0, "clients.overselect", job.clients.overselect, "a number >= 0")
    _check(job.clients.deadline_s >= 0, "clients.deadline_s", job.clients.deadline_s, "a number >= 0 (0 = none)")
    _check(job.train.lr > 0, "train.lr", job.train.lr, "a number > 0")
    _check(0 <= job.train.momentum < 1, "train.momentum", job.train.momentum, "a number in [0, 1)")
    _check(job.train.weight_decay >= 0, "train.weight_decay", job.train.weight_decay, "a number >= 0")
    _check(job.train.clip_norm >= 0, "train.clip_norm", job.train.clip_norm, "a number >= 0 (0 = no clip)")
    _check(job.train.max_update_ratio >= 0, "train.max_update_ratio", job.train.max_update_ratio,
           "a number >= 0 (0 = no norm guard)")
    _check(job.checkpoint.every >= 0, "checkpoint.every", job.checkpoint.every, "an integer >= 0 (0 = signals only)")
    f = job.faults
    _check(len(f.kill_rank) in (0, 2), "faults.kill_rank", list(f.kill_rank), "[] or [rank, round]")
    _check(len(f.signal_at) in (0, 2) and (not f.signal_at or f.signal_at[1] in (2, 10, 15)), "faults.signal_at",
           list(f.signal_at), "[] or [round, 15 (SIGTERM) | 10 (SIGUSR1) | 2 (SIGINT)]")
    _check(job.train.threads >= 0, "train.threads", job.train.threads, "an integer >= 0 (0 = automatic)")
    _check(job.data.alpha > 0, "data.alpha", job.data.alpha, "a number > 0")
    for key in ("synthetic_alpha", "synthetic_beta", "synthetic_samples"):
        _check(getattr(job.data, key) >= 0, f"data.{key}", getattr(job.data, key), "a number >= 0")
    _check(job.data.synthetic_dim >= 1, "data.synthetic_dim", job.data.synthetic_dim, "an integer >= 1")
    _check(0 < job.data.test_fraction < 1, "data.test_fraction", job.data.test_fraction, "a number in (0, 1)")
    d = job.devices
    for key in ("speed_macs_per_s", "memory_mb", "down_mbps", "up_mbps"):
        lo, hi = getattr(d, key)
        _check(0 < lo <= hi, f"devices.{key}", [lo, hi], "[low, high] with 0 < low <= high")
    _check(0 < d.online_prob <= 1, "devices.online_prob", d.online_prob, "a number in (0, 1]")
    _check(0 < d.compute_share[0] <= d.compute_share[1] <= 1, "devices.compute_share", list(d.compute_share),
           "[low, high] with 0 < low <= high <= 1")
    _check(d.period_s > 0, "devices.period_s", d.period_s, "a number > 0")
    _check(d.availability != "trace" or bool(d.trace), "devices.trace", d.trace,
           "a CSV file path when devices.availability is trace")
    m = job.model
    n_stages = len(m.widths)
    for key in ("depths", "strides"):
        _check(len(getattr(m, key)) == n_stages, f"model.{key}", list(getattr(m, key)),
               f"one value per stage ({n_stages} stages, as model.widths)")
    for key in ("widths", "depths", "strides", "kernel_choices", "expand_choices", "width_choices"):
        _check(len(getattr(m, key)) > 0, f"model.{key}", [], "a non-empty list")
    for key in ("widths", "depths", "strides", "kernel_choices"):
        _check(min(getattr(m, key)) >= 1, f"model.{key}", list(getattr(m, key)), "integers >= 1")
    _check(all(k % 2 == 1 for k in m.kernel_choices), "model.kernel_choices", list(m.kernel_choices),
           "odd kernel sizes (centre crop needs a centre)")
    for key in ("expand_choices", "width_choices"):
        values = getattr(m, key)
        _check(all(0 < v <= 1 for v in values) and len(set(values)) == len(values), f"model.{key}", list(values),
               "distinct numbers in (0, 1]")
    s = job.strategy
    _check(s.arch in ("largest", "smallest") or (s.arch.startswith("ref") and s.arch[3:].isdigit()
                                                  and int(s.arch[3:]) < job.eval.subnets),
           "strategy.arch", s.arch, f"largest | smallest | ref0..ref{job.eval.subnets - 1}")
    _check(0 < s.beta0 <= 1, "strategy.beta0", s.beta0, "a number in (0, 1]")
    _check(0 <= s.beta_end <= 1, "strategy.beta_end", s.beta_end, "a number in [0, 1] (0 = 1/n)")
    _check(0 < s.decay_fraction <= 1, "strategy.decay_fraction", s.decay_fraction, "a number in (0, 1]")
    _check(s.sandwich_random >= 0, "strategy.sandwich_random", s.sandwich_random, "an integer >= 0")
