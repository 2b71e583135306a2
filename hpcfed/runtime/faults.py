"""Fault injection, driven by the job's ``faults`` section, for drills and tests.

Every hook is a no-op unless the job names the client/rank and round. Faults are part of the job,
so a run with injected faults is as reproducible as any other.
"""
from __future__ import annotations

import os
import signal

import torch

from hpcfed.config import FaultsConfig

BLOWUP = 1e4


class InjectedFault(RuntimeError):
    """The failure asked for by ``faults.raise_at``."""


def before_training(faults: FaultsConfig, round_index: int, client: int) -> None:
    if (client, round_index) in faults.raise_at:
        raise InjectedFault(f"injected failure of client {client} in round {round_index} (faults.raise_at)")


def corrupt_update(faults: FaultsConfig, round_index: int, client: int, theta: torch.Tensor,
                   base: torch.Tensor) -> torch.Tensor:
    """The update a faulty client would send: NaN (``nan_at``) or blown up (``blowup_at``)."""
    if (client, round_index) in faults.nan_at:
        theta = theta.clone()
        theta[0] = float("nan")
    if (client, round_index) in faults.blowup_at:
        theta = base + (theta - base) * BLOWUP
    return theta


def mid_round(faults: FaultsConfig, round_index: int, rank: int) -> None:
    """SIGKILL this rank (``kill_rank``) or signal rank 0 (``signal_at``) in the middle of a round."""
    if faults.kill_rank and tuple(faults.kill_rank) == (rank, round_index):
        os.kill(os.getpid(), signal.SIGKILL)
    if rank == 0 and faults.signal_at and faults.signal_at[0] == round_index:
        os.kill(os.getpid(), faults.signal_at[1])


def in_checkpoint(faults: FaultsConfig, round_index: int) -> None:
    """SIGKILL rank 0 halfway through writing the checkpoint taken after ``round_index``."""
    if faults.kill_in_checkpoint >= 0 and faults.kill_in_checkpoint == round_index:
        os.kill(os.getpid(), signal.SIGKILL)
