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


def not_fired(faults: FaultsConfig, trained: set[tuple[int, int]], rounds_played: int, ranks: int,
              checkpoint_every: int) -> list[str]:
    """One line per fault of a finished run's job that did not fire, and why: its client did not train
    in its round (``trained``: (client, round) pairs), its round was not played, its rank did not
    exist, no checkpoint followed its round. Rounds count from 0, as in the results file."""
    played = f"the run played rounds 0-{rounds_played - 1}"
    lines = []
    for key in ("raise_at", "nan_at", "blowup_at"):
        for client, r in getattr(faults, key):
            if r >= rounds_played:
                lines.append(f"faults.{key} [{client}, {r}] did not fire: round {r} was not played ({played})")
            elif (client, r) not in trained:
                lines.append(f"faults.{key} [{client}, {r}] did not fire: client {client} did not train in round {r} "
                             f"(not sampled, offline or no subnet fitted; clients/ lists who trained)")
    if faults.kill_rank:
        rank, r = faults.kill_rank
        why = (f"the run had ranks 0-{ranks - 1}" if rank >= ranks else
               f"round {r} was not played ({played})" if r >= rounds_played else "a resumed run's earlier rounds")
        lines.append(f"faults.kill_rank [{rank}, {r}] did not fire: {why}")
    if faults.signal_at:
        lines.append(f"faults.signal_at [{faults.signal_at[0]}, {faults.signal_at[1]}] did not fire: "
                     + (f"round {faults.signal_at[0]} was not played ({played})" if faults.signal_at[0] >= rounds_played
                        else "a resumed run's earlier rounds"))
    r = faults.kill_in_checkpoint
    if r >= 0:
        why = (f"round {r} was not played ({played})" if r >= rounds_played else
               f"no checkpoint follows round {r} (checkpoint.every = {checkpoint_every})"
               if not checkpoint_every or (r + 1) % checkpoint_every else "a resumed run's earlier rounds")
        lines.append(f"faults.kill_in_checkpoint {r} did not fire: {why}")
    return lines
