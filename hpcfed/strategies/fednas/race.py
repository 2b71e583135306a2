"""The evidence FedNAS decides on: a candidate's validation loss with its standard error, and the
racing rule that drops a candidate only once that evidence says it is worse.

A candidate's *score* is its mean per-example cross-entropy over the validation splits of the
clients that scored it: of the candidate's last ``pool`` evaluation rounds, each client's latest
score counts once, so no validation example is counted twice and the examples' losses can be
treated as independent draws. Its standard error is the per-example standard deviation over the
square root of the number of examples (:func:`estimate`; the clients send the sum and the sum of
squares of their per-example losses, hpcfed.learning.evaluation.Score).

The racing rule is that of Hoeffding races for model selection (Maron & Moore, 1994) and of F-Race
(Birattari et al., 2002): a candidate leaves the race when it trails the leader by more than ``z``
standard errors of the difference, and only after ``min_client_epochs`` of training; a step is
*resolved* when its leader is ahead of every other live candidate by ``z`` standard errors.
The difference's standard error is ``sqrt(se_a^2 + se_b^2)``: the two scores are treated as
independent, which overstates it when they share examples (a paired test would be sharper), so the
rule errs on the side of keeping a candidate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Estimate:
    """A mean validation loss per example, its standard error, and what it rests on."""
    loss: float
    se: float
    samples: int
    correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else math.nan


def estimate(rows: list[list[float]]) -> Estimate:
    """The pooled per-example loss of client rows ``[correct, total, loss_sum, loss_sq_sum]``: mean,
    and standard error ``sqrt(s^2 / n)`` with the unbiased per-example variance ``s^2``."""
    n = int(sum(r[1] for r in rows))
    if n == 0:
        return Estimate(math.nan, math.inf, 0, 0)
    total, squares = sum(r[2] for r in rows), sum(r[3] for r in rows)
    mean = total / n
    variance = max(squares - n * mean * mean, 0.0) / (n - 1) if n > 1 else math.inf
    return Estimate(mean, math.sqrt(variance / n), n, int(sum(r[0] for r in rows)))


def pooled(evaluations: list[list[float]], pool: int) -> Estimate:
    """The estimate over a candidate's last ``pool`` evaluation rounds, each client's latest row once
    (``evaluations``: rows ``[round, client, correct, total, loss_sum, loss_sq_sum]``)."""
    recent = sorted({int(e[0]) for e in evaluations})[-pool:]
    latest: dict[int, list[float]] = {}
    for e in sorted(evaluations, key=lambda e: e[0]):
        if int(e[0]) in recent:
            latest[int(e[1])] = e
    return estimate([e[2:] for e in latest.values()])


def gap_in_se(candidate: Estimate, leader: Estimate) -> float:
    """How many standard errors of the difference ``candidate`` trails ``leader`` by (< 0: ahead)."""
    se = math.hypot(candidate.se, leader.se)
    difference = candidate.loss - leader.loss
    if se == 0:
        return math.copysign(math.inf, difference) if difference else 0.0
    return difference / se if math.isfinite(se) else 0.0
