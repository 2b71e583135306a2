"""Normalisation layers of the supernet, as pure functions over channel-sliced parameters.

Three choices, recorded in every results file:

- ``none``: identity (SuperFed's reference runs used BatchNorm frozen to identity);
- ``bn``: static BatchNorm (HeteroFL): batch statistics in training *and* evaluation, no running
  statistics, a learnable per-channel affine;
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


def normalize(kind: str, x: torch.Tensor, params: list[torch.Tensor], groups: int = 1) -> torch.Tensor:
    """Apply normalisation ``kind`` to ``x`` (B, C, H, W) with its per-channel ``params`` (each (C,)).

    With ``groups`` > 1 the channels hold that many independent networks side by side: per-channel
    statistics are unchanged, and the RMS of ``rms`` is taken over each network's own channels.
    """
    if kind == "none":
        return x
    if kind == "bn":
        weight, bias = params
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
