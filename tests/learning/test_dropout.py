"""Tests of hpcfed.learning.dropout (DISTREAL's per-layer dropout vectors) and of channel sets smaller than
the arch's width (hpcfed.supernet.slicing, counted by hpcfed.supernet.cost)."""
from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from hpcfed.config import TrainConfig
from hpcfed.engine.accounting import Costs
from hpcfed.errors import ConfigError
from hpcfed.learning.dropout import (
    RATES,
    DropoutVector,
    batch_spec,
    footprint,
    groups,
    kept,
    relative_macs,
    schedule,
    sized_spec,
)
from hpcfed.learning.evaluation import calibrate
from hpcfed.learning.sandwich import train_schedule
from hpcfed.strategies import ClientSlot
from hpcfed.strategies.distreal.timing import measure_step_seconds
from hpcfed.strategies.fedavg import FedAvg
from hpcfed.supernet import ElasticResNet, SubnetSpec, cost
from hpcfed.supernet.slicing import selections, widths
from tests.fakes import tiny_mobilenet, tiny_space
from tests.strategies.test_strategies import DEVICE, make_job

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MIXED = {"stem": 0.25, "s0": 0.5, "s0b1": 0.75, "s1": 0.125, "s1b0": 0.375}   # s0b0, s1b1 keep all


def model_of(space, seed: int = 0) -> ElasticResNet:
    return ElasticResNet(space, torch.Generator().manual_seed(seed))


# --- vectors, kept sizes and R(d) ----------------------------------------------------------------

def test_groups_and_kept_sizes():
    space = tiny_space()   # stem 8, s0 8, s0bj 8, s1 16, s1bj 16
    assert groups(space) == ("stem", "s0", "s0b0", "s0b1", "s1", "s1b0", "s1b1")
    assert RATES == (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75)
    assert [kept(8, r) for r in RATES] == [8, 7, 6, 5, 4, 3, 2]
    assert [kept(16, r) for r in RATES] == [16, 14, 12, 10, 8, 6, 4]
    assert kept(4, 0.75) == 1 and kept(3, 0.75) == 1 and kept(1, 0.5) == 1   # floor(rate x C) dropped, >= 1 kept
    vector = DropoutVector.of(space, MIXED)
    assert vector.kept_sizes(space) == {"stem": 6, "s0": 4, "s0b0": 8, "s0b1": 2, "s1": 14, "s1b0": 10, "s1b1": 16}
    assert DropoutVector.from_indices(vector.indices) == vector
    assert groups(tiny_mobilenet()) == ("stem", "s0", "s1")


def hand_relative_macs(keep: dict[str, float]) -> float:
    """sum_l (1 - d_(l-1))(1 - d_l) MACs_l / sum_l MACs_l for tiny_space's largest network, written out:
    8x8 input, stage 0 at 8x8 (64 positions), stage 1 at 4x4 (16), kernels 5x5 (25), stem 3x3 (9)."""
    layers = [  # (input group, output group, MACs of the full layer)
        (None, "stem", 8 * 1 * 9 * 64),
        ("stem", "s0b0", 8 * 8 * 25 * 64), ("s0b0", "s0", 8 * 8 * 25 * 64), ("stem", "s0", 8 * 8 * 64),
        ("s0", "s0b1", 8 * 8 * 25 * 64), ("s0b1", "s0", 8 * 8 * 25 * 64),
        ("s0", "s1b0", 16 * 8 * 25 * 16), ("s1b0", "s1", 16 * 16 * 25 * 16), ("s0", "s1", 16 * 8 * 16),
        ("s1", "s1b1", 16 * 16 * 25 * 16), ("s1b1", "s1", 16 * 16 * 25 * 16),
        ("s1", None, 16 * 10),   # the classifier
    ]
    k = lambda g: 1.0 if g is None else keep.get(g, 1.0)   # noqa: E731
    return sum(k(a) * k(b) * m for a, b, m in layers) / sum(m for _, _, m in layers)


def test_relative_macs_is_the_per_layer_formula():
    space = tiny_space()
    assert relative_macs(space, DropoutVector.uniform(space, 0.0)) == 1.0
    vector = DropoutVector.of(space, MIXED)   # every kept count is exact on 8 and 16 channels
    expected = hand_relative_macs({g: 1 - r for g, r in MIXED.items()})
    assert relative_macs(space, vector) == pytest.approx(expected, rel=1e-12)
    assert relative_macs(space, DropoutVector.uniform(space, 0.5)) == pytest.approx(0.25, abs=0.01)
    assert relative_macs(space, DropoutVector.uniform(space, 0.75)) < relative_macs(space, vector) < 1.0


@pytest.mark.parametrize("rates, match", [
    ((0.0, 0.8, 0, 0, 0, 0, 0), "0.8"),          # not in the set
    ((0.0, 1.0, 0, 0, 0, 0, 0), "1"),            # outside [0, 1)
    ((0.0, -0.125, 0, 0, 0, 0, 0), "-0.125"),
    ((0.0, 0.1, 0, 0, 0, 0, 0), "0.1"),
])
def test_bad_rates_are_one_line_errors(rates, match):
    with pytest.raises(ConfigError, match=match) as err:
        DropoutVector(rates)
    assert "\n" not in str(err.value)


def test_bad_vectors_are_one_line_errors():
    space = tiny_space()
    cases = [lambda: DropoutVector((0.0,) * 3).kept_sizes(space),          # wrong length for the space
             lambda: DropoutVector.of(space, {"s9": 0.5}),                  # unknown group
             lambda: DropoutVector((0.5,), choices=(0.0, 0.5, 1.0)),        # a choice outside [0, 1)
             lambda: DropoutVector.from_indices((0, 7)),                    # gene outside the set
             lambda: DropoutVector((0.2,), choices=(0.0, 0.25))]
    for case in cases:
        with pytest.raises(ConfigError) as err:
            case()
        assert "\n" not in str(err.value)
    assert DropoutVector((0.2,), choices=(0.0, 0.2)).rates == (0.2,)       # a configurable set


# --- per-batch subsets ---------------------------------------------------------------------------

def test_batch_subsets_have_the_vector_sizes_and_are_seeded_per_client_round_batch():
    space = tiny_space()
    vector = DropoutVector.of(space, MIXED)
    spec = batch_spec(space, vector, 0, 3, 2, 5)
    assert spec.arch == space.largest()
    assert widths(space, spec) == vector.kept_sizes(space)
    assert {g for g, _ in spec.channels} == set(MIXED)                 # rate-0 groups stay full (prefix)
    assert batch_spec(space, vector, 0, 3, 2, 5) == spec               # same keys, same subsets
    others = [batch_spec(space, vector, *keys) for keys in [(0, 3, 2, 6), (0, 4, 2, 5), (0, 3, 3, 5), (1, 3, 2, 5)]]
    assert all(o != spec and widths(space, o) == widths(space, spec) for o in others)
    batches = schedule(space, [vector] * 6, 0, 3, 2)
    assert len({specs for specs in batches}) == 6 and all(len(specs) == 1 for specs in batches)
    assert batches[5][0] == spec
    assert footprint(batches + batches[:2]) == tuple(specs[0] for specs in batches)
    assert batch_spec(space, DropoutVector.uniform(space, 0.0), 0, 3, 2, 5) == SubnetSpec(space.largest())


# --- channel sets smaller than the arch's width: slicing and cost ---------------------------------

def test_small_channel_sets_cost_what_they_compute():
    space = tiny_space()
    model = model_of(space)
    vector = DropoutVector.of(space, MIXED)
    spec = batch_spec(space, vector, 0, 1, 0, 0)
    full = cost(space, space.largest())
    c = cost(space, spec)
    assert c.macs < full.macs and c.params < full.params and c.activations < full.activations
    assert c == cost(space, sized_spec(space, vector))                          # any draw, same count
    assert c.params == len(model.flat_index(spec))                              # exact parameter count
    assert c.macs / full.macs == pytest.approx(hand_relative_macs({g: 1 - r for g, r in MIXED.items()}))
    # a set of the arch's own size (FedRolex, Federated Dropout) still costs what the arch costs
    arch = space.largest()
    same = SubnetSpec.of(arch, {"s0": (7, 1, 2, 5, 0, 3, 4, 6), "s1b1": tuple(range(15, -1, -1))})
    assert cost(space, same) == cost(space, arch) == cost(space, SubnetSpec(arch))


@pytest.mark.parametrize("norm", ["none", "bn", "rms"])
def test_supernet_forward_on_small_sets_equals_extracted_subnet(norm):
    space = tiny_space(norm)
    model = model_of(space)
    spec = batch_spec(space, DropoutVector.of(space, MIXED), 0, 1, 0, 0)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        subnet = model.extract(spec)
        assert (subnet(x) - model(x, spec)).abs().max().item() <= 1e-5
        assert sum(p.numel() for p in subnet.parameters()) == cost(space, spec).params
        if norm == "bn":   # batch statistics of the kept channels; calibrated evaluation works too
            statistics = calibrate(model, spec, x)
            assert (model(x, spec, statistics=statistics) - subnet(x, statistics=statistics)).abs().max() <= 1e-5


def test_small_sets_work_in_a_mobilenet_space():
    space = tiny_mobilenet()
    model = model_of(space)
    vector = DropoutVector.of(space, {"s0": 0.5, "s1": 0.25})
    spec = batch_spec(space, vector, 0, 0, 0, 0)
    assert widths(space, spec) == {"stem": 8, "s0": 4, "s1": 12}
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert (model.extract(spec)(x) - model(x, spec)).abs().max().item() <= 1e-5
    assert cost(space, spec).params == len(model.flat_index(spec))
    assert cost(space, spec).macs / cost(space, space.largest()).macs == relative_macs(space, vector)


def test_sets_larger_than_the_arch_width_or_empty_are_errors():
    space = tiny_space(width_choices=(0.5, 1.0))
    arch = dataclasses.replace(space.largest(), width=0.5)   # s0 has 4 of 8 channels
    with pytest.raises(ConfigError, match="1 to 4"):
        selections(space, SubnetSpec.of(arch, {"s0": (0, 1, 2, 3, 4)}))
    assert len(selections(space, SubnetSpec.of(arch, {"s0": (5,)}))["s0"]) == 1   # one channel is a width


# --- training with a dropout schedule --------------------------------------------------------------

@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_dropout_training_changes_only_the_union_of_the_batches_slices(momentum):
    space = tiny_space()
    model = model_of(space)
    before = model.flat.detach().clone()
    cfg = TrainConfig(local_epochs=1, batch_size=8, lr=0.05, momentum=momentum)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)
    vectors = [DropoutVector.uniform(space, 0.75), DropoutVector.of(space, MIXED)] * 2   # 4 batches of 8
    batches = schedule(space, vectors, 0, 1, 0)
    loss, seen = train_schedule(model, batches, x, y, cfg, torch.Generator().manual_seed(0), distill=False)
    assert seen == 32 and loss == loss
    inside = torch.zeros(model.num_params, dtype=torch.bool)
    inside[model.union_index(footprint(batches))] = True
    assert 0 < int(inside.sum()) < model.num_params
    changed = model.flat.detach() != before
    assert not changed[~inside].any()                         # nothing outside the union moved
    assert changed[inside].float().mean() > 0.5               # most of the trained elements did


def test_a_dropout_schedule_costs_its_batches_kept_channels():
    space = tiny_space()
    job = make_job(name="fedavg", train=TrainConfig(local_epochs=1, batch_size=8))
    vector = DropoutVector.of(space, MIXED)

    class Dropping(FedAvg):
        def schedule(self, round_index, slot, spec):
            return schedule(space, [vector] * self.local_batches(slot.samples), job.seed, slot.client, round_index)

    slot = ClientSlot(1, 32, DEVICE, 1.0)
    plain, dropping = Costs(job, space, FedAvg(job, space)), Costs(job, space, Dropping(job, space))
    full = SubnetSpec(space.largest())
    assert plain.local_work(0, slot, full) == (None, cost(space, full).train_macs(32))
    batches, macs = dropping.local_work(0, slot, full)
    assert len(batches) == 4 and macs == 32 * cost(space, sized_spec(space, vector)).train_macs(1)
    assert macs == pytest.approx(relative_macs(space, vector) * cost(space, full).train_macs(32))


def test_measured_step_seconds_is_positive_and_leaves_the_weights():
    space = tiny_space()
    model = model_of(space)
    before = model.flat.detach().clone()
    small = measure_step_seconds(model, space, DropoutVector.uniform(space, 0.5), batch_size=8, repeats=3,
                                 warmup=1, clock=time.process_time)
    assert small > 0 and torch.equal(model.flat, before)
