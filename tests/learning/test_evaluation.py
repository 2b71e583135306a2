"""Evaluation a deployed model can reproduce: statistics calibrated on training data, then fixed, so an
accuracy depends neither on ``eval.batch_size`` nor on the other test images (issue 11, item 4)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hpcfed.config import TrainConfig
from hpcfed.data.splits import calibration_sample
from hpcfed.learning.evaluation import calibrate, evaluate, score
from hpcfed.learning.training import train_subnet
from hpcfed.supernet import ElasticResNet, SubnetSpec
from tests.fakes import tiny_space
from tests.loading import load_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", None, "iid", 0.5, 2, 8, 0.2, 0)


def trained(space, digits) -> ElasticResNet:
    """A supernet after a few SGD steps on one client (so predictions are not all one class)."""
    model = ElasticResNet(space, torch.Generator().manual_seed(0))
    x, y = digits.client_data(0)
    train_subnet(model, SubnetSpec(space.largest()), x, y, TrainConfig(local_epochs=2, batch_size=16),
                 torch.Generator().manual_seed(1))
    return model


@pytest.mark.parametrize("norm", ["none", "bn", "rms"])
def test_accuracy_is_the_same_for_every_batch_size_and_needs_no_other_test_image(digits, norm):
    space = tiny_space(norm, width_choices=(0.5, 1.0))
    model = trained(space, digits)
    calibration = calibration_sample(digits, 200, seed=0)
    specs = [SubnetSpec(space.smallest()), SubnetSpec(space.largest())]
    by_size = [evaluate(model, specs, digits.x_test, digits.y_test, size, calibration) for size in (1, 16, 500)]
    assert np.array_equal(by_size[0], by_size[1]) and np.array_equal(by_size[0], by_size[2])
    assert 0.1 < by_size[0][1] <= 1.0
    statistics = calibrate(model, specs[1], calibration)
    with torch.no_grad():   # one image's logits alone equal its logits among all the others
        alone = model(digits.x_test[7:8], specs[1], statistics=statistics)
        among = model(digits.x_test, specs[1], statistics=statistics)[7:8]
    assert torch.allclose(alone, among, atol=1e-5)


def test_calibrated_statistics_are_the_calibration_samples_own(digits):
    space = tiny_space("bn")
    model = trained(space, digits)
    calibration = calibration_sample(digits, 300, seed=0)
    spec = SubnetSpec(space.largest())
    statistics = calibrate(model, spec, calibration)
    with torch.no_grad():
        stem = F.conv2d(calibration, model.sliced(spec)["stem.conv"], padding=1).double()
    mean, var = statistics.fixed["stem.norm"]
    assert torch.allclose(mean.double(), stem.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(var.double(), stem.var(dim=(0, 2, 3), unbiased=False), atol=1e-4)
    layers = {name.rsplit(".", 1)[0] for name in model.sliced(spec)}
    assert set(statistics.fixed) == {layer for layer in layers if layer.endswith("norm") or layer[-5:-1] == "norm"}
    # the test set changes nothing: statistics come from the calibration samples alone
    again = calibrate(model, spec, calibration)
    assert all(torch.equal(again.fixed[k][0], statistics.fixed[k][0]) for k in statistics.fixed)


def test_calibration_sample_reads_training_samples_of_whole_clients_in_a_seeded_order(digits):
    sample = calibration_sample(digits, 50, seed=3)
    assert sample.shape == (50, *digits.input_shape)
    pool = torch.cat([digits.client_data(k)[0] for k in range(digits.num_clients)])
    rows = {tuple(r) for r in pool.reshape(len(pool), -1).tolist()}
    assert all(tuple(r) in rows for r in sample.reshape(50, -1).tolist())
    assert torch.equal(sample, calibration_sample(digits, 50, seed=3))
    assert not torch.equal(sample, calibration_sample(digits, 50, seed=4))


def test_score_counts_correct_predictions_and_sums_the_loss(digits):
    space = tiny_space("rms")
    model = trained(space, digits)
    spec = SubnetSpec(space.largest())
    correct, loss, loss_sq = score(model, spec, digits.x_test, digits.y_test, 64, None)
    with torch.no_grad():
        logits = model(digits.x_test, spec)
    assert correct == int((logits.argmax(1) == digits.y_test).sum())
    assert loss == pytest.approx(float(F.cross_entropy(logits, digits.y_test, reduction="sum")), rel=1e-5)
    assert loss_sq == pytest.approx(float(F.cross_entropy(logits, digits.y_test, reduction="none").square().sum()), rel=1e-5)
