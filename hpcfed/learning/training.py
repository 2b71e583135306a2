"""Local training of one subnet on one client's data: minibatch SGD on the supernet's slice.

The supernet's parameters are sliced to the spec in every forward pass, so gradients reach only
the slice and elements outside it are left as they were (no weight decay reaches them either,
since they are not aggregated). Tensors stay on the device they were given on.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from hpcfed.config import TrainConfig
from hpcfed.learning.precision import arranged, autocast, memory_format
from hpcfed.supernet import ElasticResNet, SubnetSpec


def min_batch(norm: str) -> int:
    """Smallest batch a step may use: batch statistics (static BN) need two samples."""
    return 2 if norm == "bn" else 1


def batch_schedule(n: int, cfg: TrainConfig, generator: torch.Generator, smallest: int) -> list[torch.Tensor]:
    """The client's minibatches for all local epochs: a fresh permutation per epoch from ``generator``,
    cut into ``cfg.batch_size`` pieces; pieces smaller than ``smallest`` are skipped (their sizes are
    :func:`batch_lengths`, known without the generator)."""
    batches = []
    for _ in range(cfg.local_epochs):
        order = torch.randperm(n, generator=generator)
        batches += [idx for idx in order.split(cfg.batch_size) if len(idx) >= smallest]
    return batches


def batch_lengths(n: int, cfg: TrainConfig, smallest: int) -> list[int]:
    """Sizes of the minibatches :func:`batch_schedule` gives for ``n`` samples, in order."""
    full, rest = divmod(n, cfg.batch_size)
    epoch = [cfg.batch_size] * full + ([rest] if rest else [])
    return [b for b in epoch if b >= smallest] * cfg.local_epochs


def train_subnet(model: ElasticResNet, spec: SubnetSpec, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                 generator: torch.Generator, scale: float = 1.0) -> tuple[float, int]:
    """``cfg.local_epochs`` epochs of SGD on (x, y) at ``cfg.precision``; returns (mean training loss, samples
    processed).

    Batch order comes from ``generator`` (CPU), so it does not depend on the hosting rank.
    """
    def batch_loss(step: int, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with autocast(cfg.precision, xb.device):
            logits = model(xb, spec, scale)
        loss = F.cross_entropy(logits.float(), yb)   # the loss in fp32 whatever the forward's precision
        loss.backward()
        return loss.detach()
    return sgd_steps(model, batch_schedule(len(y), cfg, generator, min_batch(model.space.norm)), x, y, cfg,
                     batch_loss)


def sgd_steps(model: ElasticResNet, batches: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor,
              cfg: TrainConfig, batch_loss: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
              ) -> tuple[float, int]:
    """One clipped SGD step per batch of ``batches`` (sample indices), after ``batch_loss(step, x_b, y_b)``
    has backpropagated that batch's loss into fresh gradients and returned it (detached); ``x_b`` comes
    in the layout of ``cfg.memory_format``. Returns (mean loss over samples, samples processed)."""
    params = list(model.weights)
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          foreach=True)   # one kernel per step for all tensors; the same bits as the loop
    layout = memory_format(cfg.memory_format, cfg.precision)
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    seen = 0
    for step, idx in enumerate(batches):
        idx = idx.to(x.device)
        opt.zero_grad(set_to_none=True)
        loss = batch_loss(step, arranged(x[idx], layout), y[idx])
        if cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm, foreach=True)
        opt.step()
        loss_sum.add_(loss, alpha=len(idx))
        seen += len(idx)
    return (loss_sum.item() / seen if seen else float("nan")), seen
