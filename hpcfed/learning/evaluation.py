"""Evaluation as a deployed model sees it, and the reference evaluations on the test set.

Before a subnet is scored, its normalisation statistics (``model.norm: bn``) are calibrated on
training samples and held fixed (:func:`calibrate`, hpcfed.supernet.norm.NormStatistics), so every
sample is scored on its own: accuracies do not depend on ``eval.batch_size`` or on the other test
images. The server calibrates on ``eval.calibration_samples`` training samples
(hpcfed.data.splits.calibration_sample); a client scoring its validation split calibrates on its own
training samples (hpcfed.engine.worker). Reference evaluations on the server's test set are what a run
*reports*, never what it decides: decisions use federated validation (hpcfed.round.plan, hpcfed.round.outcome).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from hpcfed.learning.precision import autocast
from hpcfed.supernet import ElasticResNet, SubnetSpec
from hpcfed.supernet.norm import NormStatistics

CALIBRATION_BATCH = 256   # samples per calibration forward pass (fixed: statistics never depend on eval settings)


@torch.no_grad()
def calibrate(model: ElasticResNet, spec: SubnetSpec, x: torch.Tensor, precision: str = "fp32") -> NormStatistics | None:
    """The spec's normalisation statistics over the calibration inputs ``x`` (None: the norm has none),
    with the forward passes at ``precision`` (hpcfed.learning.precision; the sums are float64)."""
    if model.space.norm != "bn":
        return None
    statistics = NormStatistics()
    with autocast(precision, x.device):
        for start in range(0, len(x), CALIBRATION_BATCH):
            model(x[start:start + CALIBRATION_BATCH], spec, statistics=statistics)
    return statistics.freeze()


class Score(NamedTuple):
    """One subnet's score on a set of samples: correct predictions and the sum and sum of squares of the
    per-example cross-entropy (with the count, the mean loss and its standard error follow)."""
    correct: int
    loss_sum: float
    loss_sq_sum: float


@torch.no_grad()
def score(model: ElasticResNet, spec: SubnetSpec, x: torch.Tensor, y: torch.Tensor, batch_size: int,
          statistics: NormStatistics | None, prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
          precision: str = "fp32") -> Score:
    """:class:`Score` of ``spec`` on (x, y), sample by sample in effect; ``prepare`` turns each batch of
    ``x`` into the model's inputs (a stored set's normalisation); the forward passes run at
    ``precision``, the scores in fp32."""
    correct, loss, loss_sq = 0, 0.0, 0.0
    for start in range(0, len(y), batch_size):
        batch = x[start:start + batch_size]
        with autocast(precision, batch.device):
            logits = model(batch if prepare is None else prepare(batch), spec, statistics=statistics)
        logits = logits.float()
        target = y[start:start + batch_size]
        correct += int((logits.argmax(dim=1) == target).sum())
        loss += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
        loss_sq += float(torch.nn.functional.cross_entropy(logits, target, reduction="none").double().square().sum())
    return Score(correct, loss, loss_sq)


def evaluate(model: ElasticResNet, specs: list[SubnetSpec], x: torch.Tensor, y: torch.Tensor,
             batch_size: int, calibration: torch.Tensor,
             prepare: Callable[[torch.Tensor], torch.Tensor] | None = None, precision: str = "fp32") -> np.ndarray:
    """Top-1 accuracy (fraction in [0, 1]) of each spec on (x, y), statistics calibrated on ``calibration``
    (``prepare``, ``precision``: as :func:`score`)."""
    return np.array([score(model, spec, x, y, batch_size, calibrate(model, spec, calibration, precision), prepare,
                           precision).correct / len(y) for spec in specs])


class ReferenceEvaluation:
    """Scores every reference (model, spec) of a run on the test set, with rank 0's own supernet buffer;
    the test inputs ``x`` may be held as stored and turned into inputs batch by batch (``prepare``)."""

    def __init__(self, model: ElasticResNet, references: list[tuple[int, SubnetSpec]], x: torch.Tensor,
                 y: torch.Tensor, batch_size: int, calibration: torch.Tensor,
                 prepare: Callable[[torch.Tensor], torch.Tensor] | None = None, precision: str = "fp32"):
        self.model, self.references, self.x, self.y, self.batch_size = model, references, x, y, batch_size
        self.calibration, self.prepare, self.precision = calibration, prepare, precision

    def __call__(self, models: dict[int, torch.Tensor]) -> np.ndarray:
        return self.score(models, self.references)

    @torch.no_grad()
    def score(self, models: dict[int, torch.Tensor], references: list[tuple[int, SubnetSpec]]) -> np.ndarray:
        """Test accuracy of each (model, spec) of ``references`` (a strategy's end-of-run report uses it too)."""
        accuracy = np.zeros(len(references))
        for model_id in dict.fromkeys(m for m, _ in references):
            columns = [i for i, (m, _) in enumerate(references) if m == model_id]
            self.model.flat.copy_(models[model_id])
            accuracy[columns] = evaluate(self.model, [references[i][1] for i in columns], self.x, self.y,
                                         self.batch_size, self.calibration, self.prepare, self.precision)
        return accuracy
