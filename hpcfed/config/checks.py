"""Value checks of a built job: impossible values and contradictions, one line each naming the key.

Types were checked when the job was built (hpcfed.config.parse); here are ranges, choices and
relations between keys. A strategy's options check their own values (``Options.check``, in the
strategy's module) with the helpers :func:`check` and :func:`check_choice`.
"""
from __future__ import annotations

from typing import Any

from hpcfed.config.schema import JobConfig
from hpcfed.errors import ConfigError, did_you_mean

CHOICES: dict[str, tuple[str, ...]] = {
    "devices.availability": ("always", "stochastic", "trace", "markov"),
    "data.name": ("digits", "synthetic", "cifar10", "deformed_digits", "cifar100", "femnist"),
    "data.partition": ("iid", "dirichlet", "shards", "natural"),
    "model.space": ("resnet", "mobilenet"),
    "model.norm": ("none", "bn", "rms"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.precision": ("fp32", "bf16"),
    "train.memory_format": ("auto", "contiguous", "channels_last"),
    "eval.precision": ("", "fp32", "bf16"),
}


def check(ok: bool, key: str, value: Any, accepted: str) -> None:
    """Raise ``key = value: accepted ...`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key} = {value!r}: accepted {accepted}")


def check_choice(value: str, key: str, choices: tuple[str, ...]) -> None:
    """Raise unless ``value`` is one of ``choices`` (listed in the message)."""
    check(value in choices, key, value, " | ".join(choices) + did_you_mean(value, choices))


def _get(job: JobConfig, key: str) -> Any:
    node: Any = job
    for part in key.split("."):
        node = getattr(node, part)
    return node


def validate(job: JobConfig) -> None:
    """Reject impossible values and contradictions; each error names the key(s) involved."""
    for key, choices in CHOICES.items():
        check_choice(_get(job, key), key, choices)
    positive_ints = ["rounds", "clients.total", "clients.per_round", "train.local_epochs", "train.batch_size",
                     "train.batch_clients",
                     "eval.every", "eval.batch_size", "model.stem", "model.divisor", "data.shards_per_client"]
    for key in positive_ints:
        check(_get(job, key) >= 1, key, _get(job, key), "an integer >= 1")
    check(job.seed >= 0, "seed", job.seed, "an integer >= 0")
    check(job.virtual_time_s >= 0, "virtual_time_s", job.virtual_time_s, "virtual seconds >= 0 (0 = no time budget)")
    check(job.eval.val_every >= 0, "eval.val_every", job.eval.val_every, "an integer >= 0 (0 = no validation)")
    check(job.eval.calibration_samples >= 1, "eval.calibration_samples", job.eval.calibration_samples,
          "an integer >= 1")
    check(job.eval.val_clients >= 1, "eval.val_clients", job.eval.val_clients, "an integer >= 1")
    check(job.eval.patience >= 0, "eval.patience", job.eval.patience, "an integer >= 0 (0 = never stop early)")
    check(job.eval.min_delta >= 0, "eval.min_delta", job.eval.min_delta, "a number >= 0")
    check(not job.eval.val_every or job.data.client_val_fraction > 0, "eval.val_every", job.eval.val_every,
          "0 unless data.client_val_fraction > 0 (federated validation scores clients' validation splits)")
    check(not job.eval.patience or job.eval.val_every > 0, "eval.patience", job.eval.patience,
          "0 unless eval.val_every > 0 (early stopping needs federated validation)")
    check(job.eval.subnets >= 2, "eval.subnets", job.eval.subnets, "an integer >= 2 (smallest and largest)")
    check(job.clients.per_round <= job.clients.total, "clients.per_round", job.clients.per_round,
          f"1..clients.total ({job.clients.total})")
    check(job.clients.overselect >= 0, "clients.overselect", job.clients.overselect, "a number >= 0")
    check(job.clients.deadline_s >= 0, "clients.deadline_s", job.clients.deadline_s, "a number >= 0 (0 = none)")
    check(job.train.lr > 0, "train.lr", job.train.lr, "a number > 0")
    check(0 <= job.train.momentum < 1, "train.momentum", job.train.momentum, "a number in [0, 1)")
    check(job.train.weight_decay >= 0, "train.weight_decay", job.train.weight_decay, "a number >= 0")
    check(job.train.clip_norm >= 0, "train.clip_norm", job.train.clip_norm, "a number >= 0 (0 = no clip)")
    check(job.train.max_update_ratio >= 0, "train.max_update_ratio", job.train.max_update_ratio,
          "a number >= 0 (0 = no norm guard)")
    check(job.checkpoint.every >= 0, "checkpoint.every", job.checkpoint.every, "an integer >= 0 (0 = signals only)")
    f = job.faults
    check(len(f.kill_rank) in (0, 2), "faults.kill_rank", list(f.kill_rank), "[] or [rank, round]")
    check(len(f.signal_at) in (0, 2) and (not f.signal_at or f.signal_at[1] in (2, 10, 15)), "faults.signal_at",
          list(f.signal_at), "[] or [round, 15 (SIGTERM) | 10 (SIGUSR1) | 2 (SIGINT)]")
    check(job.train.threads >= 0, "train.threads", job.train.threads, "an integer >= 0 (0 = automatic)")
    check(job.data.alpha > 0, "data.alpha", job.data.alpha, "a number > 0")
    for key in ("synthetic_alpha", "synthetic_beta", "synthetic_samples"):
        check(getattr(job.data, key) >= 0, f"data.{key}", getattr(job.data, key), "a number >= 0")
    check(job.data.synthetic_dim >= 1, "data.synthetic_dim", job.data.synthetic_dim, "an integer >= 1")
    check(0 < job.data.test_fraction < 1, "data.test_fraction", job.data.test_fraction, "a number in (0, 1)")
    check(job.data.image_size in (16, 32), "data.image_size", job.data.image_size, "16 | 32")
    check(job.data.deformed_per_digit >= 1, "data.deformed_per_digit", job.data.deformed_per_digit, "an integer >= 1")
    check(job.data.deformed_test >= 1, "data.deformed_test", job.data.deformed_test, "an integer >= 1")
    check(job.data.styles >= 0, "data.styles", job.data.styles, "an integer >= 0 (0 = no styles)")
    check(job.data.deform_strength >= 0, "data.deform_strength", job.data.deform_strength, "a number >= 0")
    d = job.devices
    for key in ("speed_macs_per_s", "memory_mb", "down_mbps", "up_mbps"):
        lo, hi = getattr(d, key)
        check(0 < lo <= hi, f"devices.{key}", [lo, hi], "[low, high] with 0 < low <= high")
    check(0 < d.online_prob <= 1, "devices.online_prob", d.online_prob, "a number in (0, 1]")
    check(0 < d.compute_share[0] <= d.compute_share[1] <= 1, "devices.compute_share", list(d.compute_share),
          "[low, high] with 0 < low <= high <= 1")
    check(d.period_s > 0, "devices.period_s", d.period_s, "a number > 0")
    check(d.availability != "trace" or bool(d.trace), "devices.trace", d.trace,
          "a CSV file path when devices.availability is trace")
    check(len(d.levels) > 0 and all(0 < v <= 1 for v in d.levels) and len(set(d.levels)) == len(d.levels),
          "devices.levels", list(d.levels), "a non-empty list of distinct shares in (0, 1] (markov never goes offline)")
    check(d.step_s > 0, "devices.step_s", d.step_s, "a number > 0 (virtual seconds)")
    check(0 <= d.stay_prob <= 1, "devices.stay_prob", d.stay_prob, "a number in [0, 1]")
    m = job.model
    n_stages = len(m.widths)
    for key in ("depths", "strides"):
        check(len(getattr(m, key)) == n_stages, f"model.{key}", list(getattr(m, key)),
              f"one value per stage ({n_stages} stages, as model.widths)")
    for key in ("widths", "depths", "strides", "kernel_choices", "expand_choices", "width_choices"):
        check(len(getattr(m, key)) > 0, f"model.{key}", [], "a non-empty list")
    for key in ("widths", "depths", "strides", "kernel_choices"):
        check(min(getattr(m, key)) >= 1, f"model.{key}", list(getattr(m, key)), "integers >= 1")
    check(all(k % 2 == 1 for k in m.kernel_choices), "model.kernel_choices", list(m.kernel_choices),
          "odd kernel sizes (centre crop needs a centre)")
    for key in ("expand_choices", "width_choices"):
        values = getattr(m, key)
        check(all(0 < v <= 1 for v in values) and len(set(values)) == len(values), f"model.{key}", list(values),
              "distinct numbers in (0, 1]")
    if job.strategy.options is not None:
        job.strategy.options.check(job, f"strategy.{job.strategy.name}")
