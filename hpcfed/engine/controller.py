"""The controller above the round loop: how many rounds a run plays.

A run plays ``rounds`` rounds, or fewer when early stopping ends it (federated validation of the
reference subnets has not improved for ``eval.patience`` validations), when its strategy ends it
(:meth:`Strategy.stop_reason`, e.g. a search that has converged) or when its virtual clock reaches
``virtual_time_s`` (methods compared at equal simulated time). ``rounds`` stays the upper bound, so
MaxNet's beta schedule and the evaluation after the last round keep their meaning; the progress
line's ETA follows whichever of these will end the run (:meth:`Controller.rounds_left`). The reason a run ended is a root attribute of the results file.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from hpcfed.config import JobConfig
from hpcfed.round.outcome import Outcome
from hpcfed.strategies import Strategy


class EarlyStopping:
    """Stops the run when the mean federated validation accuracy over the validated reference subnets
    has not improved by more than ``eval.min_delta`` for ``eval.patience`` validations (0 = never)."""

    def __init__(self, job: JobConfig, references: list):
        self.patience, self.min_delta = job.eval.patience, job.eval.min_delta
        self.references = set(references)   # (model, spec): what it watches
        self.best, self.since_best, self.stopped = -1.0, 0, ""

    def observe(self, round_index: int, outcome: Outcome) -> None:
        rates = [correct / total for key, (correct, total) in outcome.validation().items()
                 if total and key in self.references]
        if not rates or not self.patience:
            return
        accuracy = float(np.mean(rates))
        if accuracy > self.best + self.min_delta:
            self.best, self.since_best = accuracy, 0
        else:
            self.since_best += 1
        if self.since_best >= self.patience:
            self.stopped = (f"early stop after round {round_index}: federated validation accuracy has not improved "
                            f"by more than {self.min_delta:g} over the best ({self.best:.4f}) for "
                            f"{self.patience} validations")

    def describe(self) -> str:
        """Where early stopping stands, for the progress line ("" when it cannot end the run)."""
        if not self.patience or self.best < 0:
            return ""
        return f"early stop: val acc best {self.best:.3f}, {self.since_best}/{self.patience} without a gain > {self.min_delta:g}"

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"best_validation": np.array(self.best), "validations_since_best": np.array(self.since_best),
                "stopped": np.array(self.stopped.encode())}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.best = float(state["best_validation"])
        self.since_best = int(state["validations_since_best"])
        self.stopped = bytes(state["stopped"]).decode()


class Controller:
    def __init__(self, job: JobConfig, strategy: Strategy, clock: Callable[[], float] = lambda: 0.0):
        self.job, self.strategy, self.clock = job, strategy, clock
        self.early = EarlyStopping(job, strategy.references())

    def observe(self, round_index: int, outcome: Outcome) -> None:
        """What round ``round_index`` did, after the strategy has seen it."""
        self.early.observe(round_index, outcome)

    def stop_reason(self, next_round: int) -> str:
        """Why the run ends before ``next_round`` ("" = play it)."""
        if self.early.stopped:
            return self.early.stopped
        if self.strategy.stop_reason():
            return self.strategy.stop_reason()
        if next_round >= self.job.rounds:
            return f"all {self.job.rounds} rounds played"
        if self.job.virtual_time_s and self.clock() >= self.job.virtual_time_s:
            return f"virtual time budget of {self.job.virtual_time_s:g} s reached after {next_round} rounds"
        return ""

    def rounds_left(self, next_round: int) -> tuple[int | None, bool]:
        """(rounds the run will still play, from ``next_round`` on, or None when its strategy ends it at
        a point it cannot know yet; whether that is only an upper bound, early stopping being able to
        end it sooner). The virtual-time budget counts at the virtual seconds per round so far."""
        left = self.job.rounds - next_round
        if self.job.virtual_time_s and next_round and self.clock() > 0:
            per_round = self.clock() / next_round
            left = min(left, math.ceil(max(self.job.virtual_time_s - self.clock(), 0.0) / per_round))
        own = self.strategy.rounds_left()
        if own is None:
            return None, False
        return max(0, min(left, own)), bool(self.early.patience)

    def is_last(self, round_index: int) -> bool:
        """Round ``round_index`` (just played and observed) is the run's last."""
        return bool(self.stop_reason(round_index + 1))

    def state_dict(self) -> dict[str, np.ndarray]:
        return self.early.state_dict()

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.early.load_state_dict(state)
