"""The one aggregation rule, as pure functions (ALGORITHMS.md, "The one aggregation rule").

For every element e:  W[e] <- sum_k w_k m_k[e] theta_k[e] / sum_k w_k m_k[e]  where the
denominator is positive, and W[e] unchanged where no client covered e (SuperFed's trainer keeps
the old value; pfl's element-weighted statistics forget that case).

Sums are carried in 64-bit fixed point (``FRACTION_BITS`` fractional bits). Integer addition is
exact and associative, so the reduced sums, and the new weights, are bit-identical however clients
are spread over ranks and in whatever order they are added.
"""
from __future__ import annotations

import numpy as np
import torch

FRACTION_BITS = 40
SCALE = float(2 ** FRACTION_BITS)
FIXED_LIMIT = 2.0 ** 62 / SCALE   # largest magnitude a fixed-point term may have


def to_fixed(values: torch.Tensor) -> torch.Tensor:
    """Float values as int64 fixed point (rounded to the nearest 2**-FRACTION_BITS)."""
    return torch.round(values.to(torch.float64) * SCALE).to(torch.int64)


def from_fixed(values: torch.Tensor) -> torch.Tensor:
    return values.to(torch.float64) / SCALE


def accumulate(acc_sum: torch.Tensor, acc_weight: torch.Tensor, index: torch.Tensor | slice,
               theta: torch.Tensor, weight: float) -> None:
    """Add one client: ``acc_sum[index] += w * theta`` and ``acc_weight[index] += w`` (fixed point).

    ``index`` holds the flat positions the client trained (its mask; distinct positions, or
    ``slice(None)`` for all of them), ``theta`` its trained parameters at those positions.
    """
    add_term(acc_sum, index, theta, weight)
    add_weight(acc_weight, index, fixed_weight(weight))


def add_term(acc_sum: torch.Tensor, index: torch.Tensor | slice, theta: torch.Tensor, weight: float) -> None:
    """``acc_sum[index] += w * theta`` in fixed point: what a worker adds for one client."""
    term = theta.to(torch.float64, copy=True).mul_(weight * SCALE).round_().to(torch.int64)
    if isinstance(index, slice):
        acc_sum[index].add_(term)      # in place on the view (``+=`` would also copy it back)
    else:
        acc_sum.index_add_(0, index, term)


def fixed_weight(weight: float) -> int:
    """A client's weight in fixed point; sums of these are exact, so weights may be added in any grouping."""
    return int(round(weight * SCALE))


def add_weight(acc_weight: torch.Tensor, index: torch.Tensor | slice, fixed: int) -> None:
    """``acc_weight[index] += fixed``: the denominators, from the (summed) fixed-point weights of clients
    that trained those positions. The server adds them itself from the plan, so they never travel."""
    acc_weight[index] += fixed


def divide_keep(acc_sum: torch.Tensor, acc_weight: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """New weights: weighted mean where some client contributed, the old value elsewhere."""
    mean = (acc_sum.to(torch.float64) / acc_weight.to(torch.float64)).to(old.dtype)   # nan where uncovered
    return torch.where(acc_weight > 0, mean, old)


def masked_average(thetas: list[np.ndarray], masks: list[np.ndarray], weights: list[float],
                   old: np.ndarray) -> np.ndarray:
    """Reference float64 form of the rule on dense arrays, for tests and small tools."""
    num = sum(w * m * t for t, m, w in zip(thetas, masks, weights))
    den = sum(w * m for m, w in zip(masks, weights))
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), old)
