"""Batched multi-client training equals training the clients one at a time (up to float rounding)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hpcfed.config import TrainConfig
from hpcfed.learning.batched import train_group
from hpcfed.learning.training import train_subnet
from hpcfed.round.aggregate import SCALE
from hpcfed.seeding import torch_generator
from hpcfed.supernet import Arch, ElasticResNet, SubnetSpec
from tests.fakes import run_plan, tiny_mobilenet, tiny_space, train_task
from tests.loading import load_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def digits():
    """Dirichlet clients of unequal sizes, so last batches differ and some clients run out early."""
    return load_data("digits", None, "dirichlet", 0.3, 2, 40, 0.2, 0)


def one_at_a_time(model, base, spec, data, clients, cfg, scale):
    out = []
    for c in clients:
        with torch.no_grad():
            model.flat.copy_(base)
        rows = torch.from_numpy(data.client_samples(c).copy())
        loss, seen = train_subnet(model, spec, data.x_train[rows], data.y_train[rows], cfg,
                                  torch_generator(3, "train", 1, c), scale)
        out.append((model.flat.detach()[model.flat_index(spec)].clone(), loss, seen))
    return out


def batched(model, base, spec, data, clients, cfg, scale):
    with torch.no_grad():
        model.flat.copy_(base)
    rows = [torch.from_numpy(data.client_samples(c).copy()) for c in clients]
    return train_group(model, spec, data.x_train, data.y_train, rows,
                       [torch_generator(3, "train", 1, c) for c in clients], cfg, scale)


# BatchNorm on a two-sample batch (the last batch of an 18-sample client) is so sensitive that
# with momentum a 1e-7 rounding difference of the grouped convolution grows to 1e-3 on one client
# or another; that is the arithmetic of static BN on tiny batches, so BN is tested without momentum.
OPTIMISERS = [("none", 0.0, 0.0), ("bn", 0.0, 0.0), ("rms", 0.0, 0.0), ("bn", 0.0, 1e-3),
              ("none", 0.9, 1e-3), ("rms", 0.9, 1e-3)]


@pytest.mark.parametrize("make_space", [tiny_space, tiny_mobilenet], ids=["resnet", "mobilenet"])
@pytest.mark.parametrize("norm,momentum,weight_decay", OPTIMISERS)
def test_a_group_trains_what_each_client_trains_alone(digits, norm, momentum, weight_decay, make_space):
    space = make_space(norm)
    model = ElasticResNet(space, torch.Generator().manual_seed(0))
    base = model.flat.detach().clone()
    spec = SubnetSpec(space.sample(np.random.default_rng(4)))
    cfg = TrainConfig(local_epochs=2, batch_size=8, lr=0.05, momentum=momentum, weight_decay=weight_decay)
    clients = list(range(7))
    sizes = {len(digits.client_samples(c)) for c in clients}
    assert len(sizes) > 3                                  # unequal clients: ragged steps are exercised
    alone = one_at_a_time(model, base, spec, digits, clients, cfg, 1.0)
    together = batched(model, base, spec, digits, clients, cfg, 1.0)
    for (theta_a, loss_a, seen_a), (theta_b, loss_b, seen_b) in zip(alone, together):
        assert seen_a == seen_b
        assert abs(loss_a - loss_b) <= TOLERANCE
        assert (theta_a - theta_b).abs().max().item() <= TOLERANCE
        assert (theta_a - base[model.flat_index(spec)]).abs().max() > 1e-3          # real training


@pytest.mark.parametrize("make_space", [tiny_space, tiny_mobilenet], ids=["resnet", "mobilenet"])
def test_heterofl_width_tier_with_its_scaler(digits, make_space):
    space = make_space("bn", width_choices=(0.5, 1.0))
    model = ElasticResNet(space, torch.Generator().manual_seed(1))
    base = model.flat.detach().clone()
    full = space.largest()
    spec = SubnetSpec(Arch(full.depths, full.expands, full.kernels, 0.5))
    cfg = TrainConfig(local_epochs=1, batch_size=8, lr=0.05)
    alone = one_at_a_time(model, base, spec, digits, [3, 4, 5], cfg, 2.0)
    together = batched(model, base, spec, digits, [3, 4, 5], cfg, 2.0)
    for (theta_a, _, _), (theta_b, _, _) in zip(alone, together):
        assert (theta_a - theta_b).abs().max().item() <= TOLERANCE


def test_the_client_host_batches_a_group_and_gets_the_same_fused_sums(digits):
    from hpcfed.engine.worker import ClientHost
    from hpcfed.strategies.fedavg import FedAvg
    from tests.strategies.test_strategies import make_job
    space = tiny_space("bn")
    spec = SubnetSpec(space.largest())
    sums = []
    for group_of in (1, 4):
        job = make_job(total=40, train=TrainConfig(local_epochs=1, batch_size=8, lr=0.05), name="fedavg")
        model = ElasticResNet(space, torch.Generator().manual_seed(0))
        host = ClientHost(model, FedAvg(job, space), digits, device=torch.device("cpu"))
        tasks = [train_task(i, c, spec, 0.25, group=i // group_of) for i, c in enumerate([0, 5, 9, 12])]
        fused, _ = run_plan(host, 2, tasks, {0: model.flat.detach().clone()})
        sums.append(fused[0].numpy().astype(np.float64) / SCALE)     # weights sum to 1
    assert np.abs(sums[0] - sums[1]).max() <= TOLERANCE
