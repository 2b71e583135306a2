"""Normalisation layers of the supernet, as pure functions over channel-sliced parameters.

Three choices, recorded in every results file:

- ``none``: identity (SuperFed's reference runs used BatchNorm frozen to identity);
- ``bn``: static BatchNorm (HeteroFL): batch statistics in training, no running statistics, a
  learnable per-channel affine. For evaluation a subnet's statistics are calibrated on training
  data and then held fixed (:class:`NormStatistics`), so every sample is normalised on its own;
- ``rms``: parametric normalisation without running statistics (FedSup's reference code):
  ``x' = (x - a) / (RMS(x - a) + eps)``, ``y = g x' + b`` with per-channel learnable a, g, b; the RMS
  is taken per sample over its active channels and positions, so no statistic crosses samples.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NORM_PARAMS: dict[str, tuple[str, ...]] = {"none": (), "bn": ("weight", "bias"), "rms": ("shift", "scale", "bias")}
NORM_INIT: dict[str, float] = {"weight": 1.0, "bias": 0.0, "shift": 0.0, "scale": 1.0}
EPS = 1e-5


class NormStatistics:
    """Per-layer BatchNorm statistics of one subnet, calibrated then held fixed (OFA's and BigNAS's
    per-subnet recalibration; HeteroFL's static BN computes global statistics after training).

    While collecting, every ``bn`` layer normalises with its batch statistics, as in training, and
    adds the batch's per-channel sum and sum of squares; :meth:`freeze` turns them into the mean
    and (population) variance over every calibration sample and position. Frozen, every layer
    normalises with them, so an output depends on its own sample only.
    """

    def __init__(self):
        self.sums: dict[str, list] = {}     # layer -> [count, sum (C,), sum of squares (C,)] (float64)
        self.fixed: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def normalize(self, layer: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if layer in self.fixed:
            mean, var = self.fixed[layer]
            return F.batch_norm(x, mean, var, weight, bias, training=False, eps=EPS)
        if self.fixed:
            raise KeyError(f"no calibrated statistics for layer {layer!r}: calibrate this subnet first")
        x64 = x.detach().to(torch.float64)
        count, total, squares = self.sums.setdefault(layer, [0, 0.0, 0.0])
        self.sums[layer] = [count + x.numel() // x.shape[1], total + x64.sum(dim=(0, 2, 3)),
                            squares + x64.pow(2).sum(dim=(0, 2, 3))]
        return F.batch_norm(x, None, None, weight, bias, training=True, eps=EPS)

    def freeze(self) -> "NormStatistics":
        for layer, (count, total, squares) in self.sums.items():
            mean = total / count
            var = (squares / count - mean.pow(2)).clamp(min=0.0)
            self.fixed[layer] = (mean.to(torch.float32), var.to(torch.float32))
        return self


def normalize(kind: str, x: torch.Tensor, params: list[torch.Tensor], groups: int = 1,
              layer: str = "", statistics: NormStatistics | None = None) -> torch.Tensor:
    """Apply normalisation ``kind`` to ``x`` (B, C, H, W) with its per-channel ``params`` (each (C,)).

    With ``groups`` > 1 the channels hold that many independent networks side by side: per-channel
    statistics are unchanged, and the RMS of ``rms`` is taken over each network's own channels.
    ``statistics`` (``bn`` only) collects or applies the calibrated statistics of ``layer``.
    """
    if kind == "none":
        return x
    if kind == "bn":
        weight, bias = params
        if statistics is not None:
            return statistics.normalize(layer, x, weight, bias)
        return F.batch_norm(x, None, None, weight, bias, training=True, eps=EPS)
    if kind == "rms":
        shift, scale, bias = params
        z = x - shift.view(1, -1, 1, 1)                                  # (B, C, H, W)
        if groups == 1:
            rms = z.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()      # (B, 1, 1, 1)
        else:
            rms = z.view(len(z), groups, -1).pow(2).mean(dim=2).sqrt()   # (B, groups)
            rms = rms.repeat_interleave(x.shape[1] // groups, dim=1).view(len(z), -1, 1, 1)   # (B, C, 1, 1)
        return scale.view(1, -1, 1, 1) * z / (rms + EPS) + bias.view(1, -1, 1, 1)
    raise ValueError(f"unknown normalisation {kind!r}")
