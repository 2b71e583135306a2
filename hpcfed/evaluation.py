"""Reference evaluations on the server's held-out test set: what a run *reports*, never what it decides.

Decisions (early stopping, candidate selection) use federated validation instead (evaluate tasks on
clients' validation splits, hpcfed.plan and hpcfed.outcome).
"""
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


class ReferenceEvaluation:
    """Scores every reference (model, spec) of a run on the test set, with rank 0's own supernet buffer."""

    def __init__(self, model: ElasticResNet, references: list[tuple[int, SubnetSpec]], x: torch.Tensor,
                 y: torch.Tensor, batch_size: int):
        self.model, self.references, self.x, self.y, self.batch_size = model, references, x, y, batch_size

    @torch.no_grad()
    def __call__(self, models: dict[int, torch.Tensor]) -> np.ndarray:
        accuracy = np.zeros(len(self.references))
        for model_id in dict.fromkeys(m for m, _ in self.references):
            columns = [i for i, (m, _) in enumerate(self.references) if m == model_id]
            self.model.flat.copy_(models[model_id])
            accuracy[columns] = evaluate(self.model, [self.references[i][1] for i in columns], self.x, self.y,
                                         self.batch_size)
        return accuracy
