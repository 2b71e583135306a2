"""Precision and memory layout of training (hpcfed.learning.precision): what each setting runs, and that
the weights a client trains stay what fp32 / the contiguous layout give, within float tolerance."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from hpcfed.config import TrainConfig
from hpcfed.learning.batched import train_group
from hpcfed.learning.precision import arranged, autocast, eval_precision, memory_format
from hpcfed.learning.training import train_subnet
from hpcfed.seeding import torch_generator
from hpcfed.supernet import ElasticResNet, SubnetSpec
from tests.fakes import tiny_space
from tests.loading import load_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", None, "iid", 0.3, 2, 10, 0.2, 0)


def test_fp32_enters_no_autocast_and_bf16_runs_products_in_bf16():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast("fp32", "cpu"):
        assert (a @ b).dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    with autocast("bf16", torch.device("cpu")):
        assert (a @ b).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="'fp16'.*fp32 \\| bf16"):
        autocast("fp16", "cpu")


def test_evaluation_follows_the_training_precision_unless_told_otherwise():
    assert eval_precision("bf16", "") == "bf16"
    assert eval_precision("bf16", "fp32") == "fp32"
    assert eval_precision("fp32", "bf16") == "bf16"


def test_auto_layout_is_channels_last_with_bf16_only():
    assert memory_format("auto", "fp32") == torch.contiguous_format
    assert memory_format("auto", "bf16") == torch.channels_last
    assert memory_format("channels_last", "fp32") == torch.channels_last
    assert memory_format("contiguous", "bf16") == torch.contiguous_format
    with pytest.raises(ValueError, match="'nhwc'"):
        memory_format("nhwc", "fp32")
    features = torch.randn(2, 5)
    assert arranged(features, torch.channels_last) is features
    for images in (torch.randn(2, 3, 4, 4), torch.randn(2, 1, 4, 4)):   # one channel: NHWC strides all the same
        nhwc = arranged(images, torch.channels_last)
        assert torch.equal(nhwc, images) and nhwc.stride(1) == 1
        out = torch.nn.functional.conv2d(nhwc, torch.randn(4, images.shape[1], 3, 3))
        assert out.stride(1) == 1 and out.is_contiguous(memory_format=torch.channels_last)   # convolutions follow
        assert arranged(images, torch.contiguous_format).is_contiguous()


def trained(space, data, cfg, clients=(0, 1, 2)) -> list[torch.Tensor]:
    """The slice each client trains alone from the same start."""
    model = ElasticResNet(space, torch.Generator().manual_seed(0))
    base = model.flat.detach().clone()
    spec = SubnetSpec(space.sample(np.random.default_rng(2)))
    out = []
    for c in clients:
        with torch.no_grad():
            model.flat.copy_(base)
        rows = torch.from_numpy(data.client_samples(c).copy())
        train_subnet(model, spec, data.x_train[rows], data.y_train[rows], cfg, torch_generator(1, "train", 0, c))
        out.append(model.flat.detach()[model.flat_index(spec)].clone() - base[model.flat_index(spec)])
    return out


@pytest.mark.parametrize("norm", ["bn", "none"])
def test_channels_last_trains_the_same_weights_within_float_tolerance(digits, norm, monkeypatch):
    space = tiny_space(norm)
    cfg = TrainConfig(local_epochs=2, batch_size=8, lr=0.05)   # without momentum (tests/learning/test_batched.py says why)
    plain = trained(space, digits, cfg)
    layouts = set()
    forward = ElasticResNet.forward

    def recording(self, x, *args, **kwargs):
        layouts.add(x.is_contiguous(memory_format=torch.channels_last) and x.stride(1) == 1)
        return forward(self, x, *args, **kwargs)
    monkeypatch.setattr(ElasticResNet, "forward", recording)
    nhwc = trained(space, digits, replace(cfg, memory_format="channels_last"))
    assert layouts == {True}                                         # every batch arrived channels-last
    for a, b in zip(plain, nhwc):
        assert a.abs().max() > 1e-3                                  # real training
        assert (a - b).abs().max() <= 1e-4 * a.abs().max()


def test_bf16_training_moves_the_weights_as_fp32_does_and_repeats_bit_for_bit(digits):
    """bf16 rounds every product to 8 significant bits, so an update agrees with fp32's in direction
    and size, not bit for bit; run twice, it is bit-identical (the invariances rest on that)."""
    space = tiny_space("bn")
    cfg = TrainConfig(local_epochs=1, batch_size=8, lr=0.05)
    fp32 = trained(space, digits, cfg)
    bf16 = trained(space, digits, replace(cfg, precision="bf16"))
    again = trained(space, digits, replace(cfg, precision="bf16"))
    for a, b, c in zip(fp32, bf16, again):
        assert torch.equal(b, c)
        assert not torch.equal(a, b)
        cosine = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
        assert cosine > 0.95 and 0.8 < (b.norm() / a.norm()).item() < 1.25, cosine


def test_a_bf16_group_trains_what_each_client_trains_alone_in_bf16(digits):
    space = tiny_space("none")
    cfg = TrainConfig(local_epochs=1, batch_size=8, lr=0.05, precision="bf16")
    model = ElasticResNet(space, torch.Generator().manual_seed(0))
    base = model.flat.detach().clone()
    spec = SubnetSpec(space.sample(np.random.default_rng(2)))
    alone = trained(space, digits, cfg)
    rows = [torch.from_numpy(digits.client_samples(c).copy()) for c in range(3)]
    together = train_group(model, spec, digits.x_train, digits.y_train, rows,
                           [torch_generator(1, "train", 0, c) for c in range(3)], cfg)
    for delta, (theta, _, _) in zip(alone, together):
        grouped = theta - base[model.flat_index(spec)]
        assert torch.nn.functional.cosine_similarity(delta, grouped, dim=0).item() > 0.99
