"""The controller above the round loop: how many rounds a run plays.

A run plays ``rounds`` rounds, or fewer when its strategy ends it (:meth:`Strategy.stop_reason`,
e.g. early stopping on federated validation, or a search that has converged) or when its virtual
clock reaches ``virtual_time_s`` (methods compared at equal simulated time). ``rounds`` stays the
upper bound, so the progress line's ETA, MaxNet's beta schedule and the evaluation after the last
round keep their meaning. The reason a run ended is a root attribute of the results file.
"""
from __future__ import annotations

from typing import Callable

from hpcfed.config import JobConfig
from hpcfed.strategies import Strategy


class Controller:
    def __init__(self, job: JobConfig, strategy: Strategy, clock: Callable[[], float] = lambda: 0.0):
        self.job, self.strategy, self.clock = job, strategy, clock

    def stop_reason(self, next_round: int) -> str:
        """Why the run ends before ``next_round`` ("" = play it)."""
        if self.strategy.stop_reason():
            return self.strategy.stop_reason()
        if next_round >= self.job.rounds:
            return f"all {self.job.rounds} rounds played"
        if self.job.virtual_time_s and self.clock() >= self.job.virtual_time_s:
            return f"virtual time budget of {self.job.virtual_time_s:g} s reached after {next_round} rounds"
        return ""

    def is_last(self, round_index: int) -> bool:
        """Round ``round_index`` (just played and observed) is the run's last."""
        return bool(self.stop_reason(round_index + 1))
