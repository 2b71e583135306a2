"""Server-side evaluation of reference subnets on the held-out test set."""
from __future__ import annotations

import numpy as np
import torch

from hpcfed.supernet import ElasticResNet, SubnetSpec


@torch.no_grad()
def evaluate(model: ElasticResNet, specs: list[SubnetSpec], x: torch.Tensor, y: torch.Tensor,
             batch_size: int) -> np.ndarray:
    """Top-1 accuracy (fraction in [0, 1]) of each spec on (x, y), in fixed batches."""
    accuracies = []
    for spec in specs:
        correct = 0
        for start in range(0, len(y), batch_size):
            logits = model(x[start:start + batch_size], spec)
            correct += int((logits.argmax(dim=1) == y[start:start + batch_size]).sum())
        accuracies.append(correct / len(y))
    return np.array(accuracies)
