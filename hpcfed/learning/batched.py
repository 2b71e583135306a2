"""Several clients that train the same subnet, as one grouped network (batched multi-client training).

A small model leaves a core mostly idle per step, and one-at-a-time training pays the framework's
per-operation cost once per client and step. Here G clients' weights are stacked and run as one
network with G groups (``network_forward(..., groups=G)``: grouped convolutions, per-channel
statistics): one step of the group costs little more than one client's step. Each client keeps
its own data, batch order (:func:`hpcfed.learning.training.batch_schedule`, as one-at-a-time training),
gradient-norm clip and SGD state, so the weights equal one-at-a-time training up to float rounding.
Clients whose batch at a step has another size (the last batch of an epoch) run as another group
at that step, so batch statistics never mix padding in; a client without a batch is not updated.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from hpcfed.config import TrainConfig
from hpcfed.learning.precision import arranged, autocast, memory_format
from hpcfed.learning.training import batch_schedule, min_batch
from hpcfed.supernet import ElasticResNet, SubnetSpec
from hpcfed.supernet.network import network_forward


def train_group(model: ElasticResNet, spec: SubnetSpec, x: torch.Tensor, y: torch.Tensor,
                rows: list[torch.Tensor], generators: list[torch.Generator], cfg: TrainConfig,
                scale: float = 1.0) -> list[tuple[torch.Tensor, float, int]]:
    """Train one client per entry of ``rows`` (its sample indices into x, y) from the model's weights.

    Returns, per client: its trained slice (flat, in ``flat_index`` order), mean loss, samples processed.
    """
    group, device = len(rows), x.device
    params = {k: v.detach().unsqueeze(0).repeat(group, *[1] * v.dim()).requires_grad_(True)
              for k, v in model.sliced(spec).items()}                    # name -> (G, ...)
    schedules = [batch_schedule(len(r), cfg, g, min_batch(model.space.norm)) for r, g in zip(rows, generators)]
    loss_sum = torch.zeros(group, dtype=torch.float64, device=device)
    seen = [0] * group
    state: dict = {}                                                      # SGD momentum state
    layout = memory_format(cfg.memory_format, cfg.precision)
    for t in range(max(map(len, schedules), default=0)):
        by_size: dict[int, list[int]] = {}
        for g, schedule in enumerate(schedules):
            if t < len(schedule):
                by_size.setdefault(len(schedule[t]), []).append(g)
        for size, members in by_size.items():
            batch = torch.stack([rows[g][schedules[g][t]] for g in members]).to(device)   # (G', size)
            with autocast(cfg.precision, device):
                logits = _group_logits(model, spec, params, members, x[batch], scale, layout)  # (G', B, classes)
            losses = F.cross_entropy(logits.float().flatten(0, 1), y[batch].reshape(-1), reduction="none")
            losses = losses.view(len(members), -1).mean(dim=1)                            # (G',)
            losses.sum().backward()                                       # clients are independent
            loss_sum[members] += losses.detach().double() * size
            for g in members:
                seen[g] += size
        active = torch.zeros(group, dtype=torch.bool, device=device)
        active[[g for members in by_size.values() for g in members]] = True
        with torch.no_grad():
            _sgd_step(params, state, active, cfg)
    thetas = torch.cat([p.detach().flatten(1) for p in params.values()], dim=1)   # (G, slice size)
    return [(thetas[g], loss_sum[g].item() / seen[g] if seen[g] else float("nan"), seen[g]) for g in range(group)]


def _group_logits(model, spec, params, members, xb, scale, layout) -> torch.Tensor:
    """Each member's logits on its batch: xb (G', B, C, H, W) -> (G', B, classes); the network's input
    in memory ``layout``."""
    count, size = xb.shape[:2]
    if count == 1:
        alone = {k: v[members[0]] for k, v in params.items()}
        logits = network_forward(alone, model.space, spec.arch, arranged(xb[0], layout), scale).unsqueeze(0)   # (1, B, classes)
    else:
        whole_group = count == next(iter(params.values())).shape[0]
        chosen = params if whole_group else {k: v[members] for k, v in params.items()}
        packed = xb.transpose(0, 1).reshape(size, -1, *xb.shape[3:])     # (B, G' x C, H, W)
        logits = network_forward(chosen, model.space, spec.arch, arranged(packed, layout), scale, groups=count).transpose(0, 1)
    return logits


def _sgd_step(params: dict, state: dict, active: torch.Tensor, cfg: TrainConfig) -> None:
    """torch.optim.SGD's update (after clip_grad_norm_), per client, for the ``active`` clients only.

    ``state`` holds the momentum buffers and which clients have stepped before (a fresh torch SGD
    starts its buffer with the first gradient).
    """
    grads = {k: p.grad for k, p in params.items()}
    if cfg.clip_norm > 0:
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(dim=1) for g in grads.values()))    # (G,)
        coef = (cfg.clip_norm / (norms + 1e-6)).clamp(max=1.0)
        grads = {k: g * _per_client(coef, g) for k, g in grads.items()}
    started = state.setdefault("started", torch.zeros_like(active))
    for k, p in params.items():
        step = grads[k] + cfg.weight_decay * p if cfg.weight_decay else grads[k]
        on = _per_client(active, step)
        if cfg.momentum:
            buf = state.setdefault(k, torch.zeros_like(step))
            renewed = torch.where(_per_client(started, step), cfg.momentum * buf + step, step)
            state[k] = step = torch.where(on, renewed, buf)
        p -= cfg.lr * step * on
        p.grad = None
    state["started"] = started | active


def _per_client(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(G,) values shaped to broadcast over a stacked (G, ...) tensor."""
    return values.view(-1, *[1] * (like.dim() - 1))
