"""Local training with several subnets per batch, the teacher first (one step per batch).

The sandwich rule with in-place distillation (Yu & Huang's BigNAS / OFA practice, used inside each
client by FedSup, Kim et al. 2022): per batch the first subnet of the batch's list (the largest the
client holds) takes the cross-entropy loss, every other subnet a KL loss against the first one's
soft outputs (detached), or cross-entropy too when distillation is off; each term's gradients are
accumulated by its own backward pass (one subnet's activations in memory at a time), then one
clipped SGD step. FjORD's self-distillation (Horvath et al. 2021) is the same step with the
client's widest level as teacher and the sampled level as student.

Which subnets each batch trains is a *schedule* (a list of tuples of :class:`Arch`, one per batch)
drawn by the strategy from a seeded stream, so the server can count the client's MACs exactly.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from hpcfed.config import TrainConfig
from hpcfed.supernet import Arch, ElasticResNet, SubnetSpec
from hpcfed.training import batch_schedule, min_batch, sgd_steps

Schedule = Sequence[tuple[Arch, ...]]


def sandwich_step_loss(model: ElasticResNet, archs: tuple[Arch, ...], x: torch.Tensor, y: torch.Tensor,
                       distill: bool, scale: Callable[[Arch], float] = lambda a: 1.0) -> torch.Tensor:
    """Backpropagate every term of one batch into the parameters' ``.grad``; return their sum (detached).

    Terms: cross-entropy of ``archs[0]``; for each later arch, KL(teacher || student) with the
    teacher's soft outputs (``distill``) or cross-entropy against ``y``. Gradients accumulate.
    """
    teacher_logits = model(x, SubnetSpec(archs[0]), scale(archs[0]))
    loss = F.cross_entropy(teacher_logits, y)
    loss.backward()
    total = loss.detach()
    soft = F.softmax(teacher_logits.detach(), dim=1)
    for arch in archs[1:]:
        logits = model(x, SubnetSpec(arch), scale(arch))
        if distill:
            term = F.kl_div(F.log_softmax(logits, dim=1), soft, reduction="batchmean")
        else:
            term = F.cross_entropy(logits, y)
        term.backward()
        total = total + term.detach()
    return total


def train_schedule(model: ElasticResNet, schedule: Schedule, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
                   generator: torch.Generator, distill: bool,
                   scale: Callable[[Arch], float] = lambda a: 1.0) -> tuple[float, int]:
    """``cfg.local_epochs`` epochs on (x, y), batch b training ``schedule[b]`` by :func:`sandwich_step_loss`.

    Returns (mean over samples of the summed per-batch loss, samples processed). Batch order comes
    from ``generator`` as in :func:`hpcfed.training.train_subnet`.
    """
    batches = batch_schedule(len(y), cfg, generator, min_batch(model.space.norm))
    if len(batches) != len(schedule):
        raise ValueError(f"subnet schedule has {len(schedule)} entries for {len(batches)} batches")
    return sgd_steps(model, batches, x, y, cfg,
                     lambda step, xb, yb: sandwich_step_loss(model, schedule[step], xb, yb, distill, scale))
