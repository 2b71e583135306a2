"""Measured time of one local training step under a dropout vector, on the machine running it.

DISTREAL's offline table records, beside each vector's analytic R(d) (hpcfed.learning.dropout.relative_macs),
what one step really takes here. A step is what a client's local training does per batch
(hpcfed.learning.training.sgd_steps running hpcfed.learning.sandwich's batch loss): zero the gradients, forward and
backward of the batch's subnet, gradient clip, SGD step. Every timed step trains a fresh random
subset (:func:`hpcfed.learning.dropout.batch_spec`), so the per-batch slicing work is paid as in training;
drawing the subsets (rank 0's planning) is not timed.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np
import torch

from hpcfed.config import TrainConfig
from hpcfed.learning.dropout import DropoutVector, schedule
from hpcfed.learning.sandwich import train_schedule
from hpcfed.supernet import ElasticResNet, ResNetSpace


def measure_step_seconds(model: ElasticResNet, space: ResNetSpace, vector: DropoutVector, batch_size: int = 16,
                         repeats: int = 20, warmup: int = 3, cfg: TrainConfig | None = None,
                         seed: int = 0, clock: Callable[[], float] = time.perf_counter) -> float:
    """Median seconds (by ``clock``) of one training step of ``model`` (on its device) under ``vector``, over
    ``repeats`` steps after ``warmup`` untimed ones, on random inputs of the space's shape.

    ``cfg`` gives the optimiser settings (lr, momentum, weight decay, clip; default TrainConfig());
    its batch size is replaced by ``batch_size``. The model's weights are restored afterwards.
    ``clock``: wall time by default; ``time.process_time`` counts only this process's CPU time, steadier
    on a machine shared with other jobs (with one torch thread it is the step's compute time).
    """
    steps = warmup + repeats
    cfg = dataclasses.replace(cfg or TrainConfig(), batch_size=batch_size, local_epochs=1)
    device = model.flat.device
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(steps * batch_size, *space.input_shape, generator=g).to(device)
    y = torch.randint(0, space.num_classes, (steps * batch_size,), generator=g).to(device)
    batches = schedule(space, [vector] * steps, seed, 0, 0)
    starts: list[float] = []

    def timed(spec) -> float:
        # train_schedule asks a batch's scale once, right before its forward pass (one spec per
        # batch here): so consecutive stamps bound exactly one step of the real training loop
        _sync(device)
        starts.append(clock())
        return 1.0

    saved = model.flat.detach().clone()
    try:
        train_schedule(model, batches, x, y, cfg, torch.Generator().manual_seed(seed), distill=False,
                       scale=timed)
        _sync(device)
        starts.append(clock())
    finally:
        with torch.no_grad():
            model.flat.copy_(saved)
    return float(np.median(np.diff(starts)[warmup:]))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
