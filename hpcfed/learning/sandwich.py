"""Local training with several subnets per batch, the teacher first (one step per batch).

The sandwich rule with in-place distillation (Yu & Huang's BigNAS / OFA practice, used inside each
client by FedSup, Kim et al. 2022): per batch the first subnet of the batch's list (the largest the
client holds) takes the cross-entropy loss, every other subnet a KL loss against the first one's
soft outputs (detached), or cross-entropy too when distillation is off; each term's gradients are
accumulated by its own backward pass (one subnet's activations in memory at a time), then one
clipped SGD step. FjORD's self-distillation (Horvath et al. 2021) is the same step with the
client's widest level as teacher and the sampled level as student.

Which subnets each batch trains is a *schedule* (one tuple of :class:`SubnetSpec` per batch, any
channel sets) drawn by the strategy on rank 0 from a seeded stream and shipped in the round plan
(hpcfed.round.plan), so the server counts the client's MACs exactly.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from hpcfed.config import TrainConfig
from hpcfed.learning.precision import autocast
from hpcfed.learning.training import batch_schedule, min_batch, sgd_steps
from hpcfed.supernet import ElasticResNet, SubnetSpec

Schedule = tuple[tuple[SubnetSpec, ...], ...]   # per local batch: the subnets it trains, teacher first


def sandwich_step_loss(model: ElasticResNet, specs: tuple[SubnetSpec, ...], x: torch.Tensor, y: torch.Tensor,
                       distill: bool, scale: Callable[[SubnetSpec], float] = lambda s: 1.0,
                       precision: str = "fp32") -> torch.Tensor:
    """Backpropagate every term of one batch into the parameters' ``.grad``; return their sum (detached).

    Terms: cross-entropy of ``specs[0]``; for each later spec, KL(teacher || student) with the
    teacher's soft outputs (``distill``) or cross-entropy against ``y``. Gradients accumulate. The
    forward passes run at ``precision`` (hpcfed.learning.precision), the losses in fp32.
    """
    with autocast(precision, x.device):
        teacher_logits = model(x, specs[0], scale(specs[0]))
    teacher_logits = teacher_logits.float()
    loss = F.cross_entropy(teacher_logits, y)
    loss.backward()
    total = loss.detach()
    soft = F.softmax(teacher_logits.detach(), dim=1)
    for spec in specs[1:]:
        with autocast(precision, x.device):
            logits = model(x, spec, scale(spec))
        logits = logits.float()
        if distill:
            term = F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")
        else:
            term = F.cross_entropy(logits, y)
        term.backward()
        total = total + term.detach()
    return total


def train_schedule(model: ElasticResNet, schedule: Sequence[tuple[SubnetSpec, ...]], x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                   generator: torch.Generator, distill: bool,
                   scale: Callable[[SubnetSpec], float] = lambda s: 1.0) -> tuple[float, int]:
    """``cfg.local_epochs`` epochs on (x, y), batch b training ``schedule[b]`` by :func:`sandwich_step_loss`
    (only the first ``len(schedule)`` batches when the schedule is shorter).

    Returns (mean over samples of the summed per-batch loss, samples processed). Batch order comes
    from ``generator`` as in :func:`hpcfed.learning.training.train_subnet`.
    """
    batches = batch_schedule(len(y), cfg, generator, min_batch(model.space.norm))
    if len(schedule) > len(batches):
        raise ValueError(f"subnet schedule has {len(schedule)} entries for {len(batches)} batches")
    batches = batches[:len(schedule)]   # a shorter schedule ends the local work early (fewer local steps)
    return sgd_steps(model, batches, x, y, cfg,
                     lambda step, xb, yb: sandwich_step_loss(model, schedule[step], xb, yb, distill, scale,
                                                             cfg.precision))
