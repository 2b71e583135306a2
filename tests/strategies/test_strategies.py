"""Tests of hpcfed.strategies (SuperFed, FedAvg, HeteroFL) and of ClientHost.train's fused buffer."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from hpcfed.config import ClientsConfig, JobConfig, StrategyConfig, TrainConfig
from hpcfed.engine.worker import ClientHost
from hpcfed.errors import ConfigError
from hpcfed.learning.training import train_subnet
from hpcfed.population.devices import Device
from hpcfed.round.aggregate import SCALE
from hpcfed.seeding import rng as seeded_rng
from hpcfed.seeding import torch_generator
from hpcfed.strategies import STRATEGIES, ClientSlot, make_strategy
from hpcfed.strategies.distreal.strategy import Distreal
from hpcfed.strategies.fedavg import FedAvg
from hpcfed.strategies.feddropout import FederatedDropout
from hpcfed.strategies.fednas.strategy import FedNAS
from hpcfed.strategies.fedrolex import FedRolex
from hpcfed.strategies.fedsup import EFedSup, FedSup
from hpcfed.strategies.fjord import FjORD
from hpcfed.strategies.heterofl import HeteroFL
from hpcfed.strategies.ifedavg import IFedAvg
from hpcfed.strategies.superfed import SuperFed, maxnet_beta
from hpcfed.supernet import Arch, ElasticResNet, SubnetSpec, cost
from tests.fakes import run_plan, specs_of, tiny_space, train_task
from tests.loading import load_data

DEVICE = Device(speed_macs_per_s=1e9, memory_bytes=1e8, down_bytes_per_s=1e6, up_bytes_per_s=1e6)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_job(total: int = 6, rounds: int = 10, train: TrainConfig | None = None, seed: int = 0,
             name: str = "superfed", **options) -> JobConfig:
    return dataclasses.replace(JobConfig(), seed=seed, rounds=rounds,
                               clients=ClientsConfig(total=total, per_round=min(4, total)),
                               strategy=StrategyConfig(name, STRATEGIES[name].Options(**options)),
                               train=train or TrainConfig())


def make_slots(clients, samples=None) -> list[ClientSlot]:
    samples = samples or [10 * (i + 1) for i in range(len(clients))]
    return [ClientSlot(c, n, DEVICE, 1.0) for c, n in zip(clients, samples)]


def fits_all(slot, arch) -> bool:
    return True


# --- SuperFed: tracking sandwich -------------------------------------------------------------------

def test_tracking_sandwich_serves_least_served_clients_first():
    space = tiny_space()
    strategy = SuperFed(make_job(total=6), space)
    largest, smallest = space.largest(), space.smallest()
    slots = make_slots([1, 3, 4, 5])
    others = set()
    for r in range(8):
        largest_before = strategy.largest_count.copy()
        smallest_before = strategy.smallest_count.copy()
        specs = specs_of(strategy.assign(r, slots, fits_all, seeded_rng(0, "assign", r)))
        assert len(specs) == 4 and all(isinstance(s, SubnetSpec) and s.is_prefix for s in specs)
        # exactly one client's largest counter and one other client's smallest counter went up by one
        got_largest = np.flatnonzero(strategy.largest_count != largest_before)
        got_smallest = np.flatnonzero(strategy.smallest_count != smallest_before)
        assert len(got_largest) == 1 == len(got_smallest)
        (lc,), (sc,) = got_largest, got_smallest
        assert lc != sc and strategy.largest_count[lc] == largest_before[lc] + 1
        assert strategy.smallest_count[sc] == smallest_before[sc] + 1
        # ... and it was a client of the cohort that had received it least often
        cohort = [s.client for s in slots]
        assert largest_before[lc] == min(largest_before[c] for c in cohort)
        assert smallest_before[sc] == min(smallest_before[c] for c in cohort if c != lc)
        by_client = {s.client: spec for s, spec in zip(slots, specs)}
        assert by_client[lc].arch == largest and by_client[sc].arch == smallest
        for c in cohort:
            if c not in (lc, sc):
                space.validate(by_client[c].arch)
                others.add(by_client[c].arch)
    # Round robin: after 8 rounds of the same 4 clients each received the largest twice.
    assert strategy.largest_count.tolist() == [0, 2, 0, 2, 2, 2]
    assert strategy.smallest_count.sum() == 8 and strategy.smallest_count[[0, 2]].tolist() == [0, 0]
    assert len(others) >= 8                           # the rest are random architectures


def test_tracking_sandwich_counters_checkpoint():
    space = tiny_space()
    strategy = SuperFed(make_job(total=6), space)
    specs_of(strategy.assign(0, make_slots([0, 1, 2]), fits_all, seeded_rng(0, "assign", 0)))
    state = strategy.state_dict()
    other = SuperFed(make_job(total=6), space)
    other.load_state_dict(state)
    assert other.largest_count.tolist() == strategy.largest_count.tolist()
    assert other.smallest_count.tolist() == strategy.smallest_count.tolist()
    slots = make_slots([0, 1, 2])
    assert specs_of(strategy.assign(1, slots, fits_all, seeded_rng(0, "assign", 1))) == \
        specs_of(other.assign(1, slots, fits_all, seeded_rng(0, "assign", 1)))


def test_clients_get_only_archs_that_fit_and_never_the_largest_when_it_does_not():
    space = tiny_space()
    largest, smallest = space.largest(), space.smallest()
    strategy = SuperFed(make_job(total=6), space)
    small_budget = 3 * cost(space, smallest).macs

    def fits(slot, arch):
        macs = cost(space, arch).macs
        if slot.client == 0:
            return macs < cost(space, largest).macs        # everything but the largest
        if slot.client == 2:
            return macs <= small_budget                    # only small subnets
        if slot.client == 5:
            return False                                   # not even the smallest
        return True

    slots = make_slots([0, 2, 4, 5])
    seen_for_2 = set()
    for r in range(12):
        specs = specs_of(strategy.assign(r, slots, fits, seeded_rng(1, "assign", r)))
        for slot, spec in zip(slots, specs):
            if slot.client == 5:
                assert spec is None
                continue
            assert spec is not None and fits(slot, spec.arch)
            if slot.client == 0:
                assert spec.arch != largest
            if slot.client == 2:
                seen_for_2.add(spec.arch)
    assert strategy.largest_count[0] == 0 and strategy.largest_count[5] == 0 and strategy.smallest_count[5] == 0
    # clients 0 and 2 cannot take the largest: client 4 received it every round
    assert strategy.largest_count.tolist() == [0, 0, 0, 0, 12, 0]
    assert len(seen_for_2) > 1                              # client 2 also gets random small subnets


@pytest.mark.parametrize("distribution", ["sandwich", "random"])
def test_other_distributions_respect_fits(distribution):
    space = tiny_space()
    strategy = SuperFed(make_job(total=6, distribution=distribution), space)
    budget = cost(space, space.smallest()).macs * 4
    fits = lambda slot, arch: slot.client % 2 == 0 or cost(space, arch).macs <= budget  # noqa: E731
    slots = make_slots([0, 1, 2, 3, 4, 5])
    for r in range(5):
        for slot, spec in zip(slots, specs_of(strategy.assign(r, slots, fits, seeded_rng(2, "assign", r)))):
            assert spec is not None and fits(slot, spec.arch)
    if distribution == "random":
        assert strategy.largest_count.sum() == 0 == strategy.smallest_count.sum()
    else:
        assert strategy.largest_count.sum() == 5 == strategy.smallest_count.sum()


# --- SuperFed: weights -----------------------------------------------------------------------------

def test_maxnet_weights_by_hand():
    space = tiny_space()
    strategy = SuperFed(make_job(rounds=10, beta0=0.9, beta_end=0.0, decay_fraction=0.8), space)
    mid = Arch((2, 1), ((0.5, 1.0), (0.25,)), ((3, 5), (3,)), 1.0)
    specs = [SubnetSpec(space.smallest()), SubnetSpec(space.largest()), SubnetSpec(mid), SubnetSpec(mid)]
    slots = make_slots([0, 1, 2, 3])
    # round 0: beta = beta0 = 0.9; the three others share 0.1
    w = strategy.weights(0, slots, specs)
    np.testing.assert_allclose(w, [0.1 / 3, 0.9, 0.1 / 3, 0.1 / 3], rtol=0, atol=1e-12)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    # round 4 = T/2 (T = 0.8 x 10): beta = (0.9 + 1/4) / 2 = 0.575, since beta_end 0 means 1/n = 1/4
    w = strategy.weights(4, slots, specs)
    np.testing.assert_allclose(w, [0.425 / 3, 0.575, 0.425 / 3, 0.425 / 3], rtol=0, atol=1e-12)
    # from round T on: beta = 1/n, i.e. uniform
    for r in (8, 9):
        np.testing.assert_allclose(strategy.weights(r, slots, specs), [0.25] * 4, rtol=0, atol=1e-12)


def test_maxnet_weights_follow_maxnet_beta():
    space = tiny_space()
    strategy = SuperFed(make_job(rounds=20, beta0=0.8, beta_end=0.1, decay_fraction=0.5), space)
    specs = [SubnetSpec(space.largest())] + [SubnetSpec(space.smallest())] * 4
    slots = make_slots([0, 1, 2, 3, 4])
    for r in range(20):
        beta = maxnet_beta(r, 20, 0.8, 0.1, 0.5)
        w = strategy.weights(r, slots, specs)
        np.testing.assert_allclose(w, [beta] + [(1 - beta) / 4] * 4, rtol=0, atol=1e-12)
        assert w.sum() == pytest.approx(1.0, abs=1e-12)


def test_maxnet_without_the_largest_is_uniform_and_uniform_weighting_is_equal():
    space = tiny_space()
    slots = make_slots([0, 1, 2])
    no_largest = [SubnetSpec(space.smallest())] * 3
    maxnet = SuperFed(make_job(weighting="maxnet"), space)
    np.testing.assert_allclose(maxnet.weights(0, slots, no_largest), [1 / 3] * 3, rtol=0, atol=1e-15)
    uniform = SuperFed(make_job(weighting="uniform"), space)
    with_largest = [SubnetSpec(space.largest()), SubnetSpec(space.smallest()), SubnetSpec(space.smallest())]
    for r in (0, 3, 9):
        np.testing.assert_allclose(uniform.weights(r, slots, with_largest), [1 / 3] * 3, rtol=0, atol=1e-15)


def test_sample_weighted_multiplies_by_samples():
    space = tiny_space()
    strategy = SuperFed(make_job(weighting="uniform", sample_weighted=True), space)
    slots = make_slots([0, 1, 2], samples=[10, 30, 60])
    w = strategy.weights(0, slots, [SubnetSpec(space.smallest())] * 3)
    np.testing.assert_allclose(w / w.sum(), [0.1, 0.3, 0.6], rtol=0, atol=1e-12)


# --- FedAvg and HeteroFL ---------------------------------------------------------------------------

@pytest.mark.parametrize("choice", ["largest", "smallest", "ref2"])
def test_fedavg_assigns_its_arch_to_everyone_who_fits(choice):
    space = tiny_space(width_choices=(0.5, 1.0))
    strategy = FedAvg(make_job(name="fedavg", arch=choice), space)
    expected = {"largest": space.largest(), "smallest": space.smallest(),
                "ref2": space.references(5)[2]}[choice]
    slots = make_slots([0, 1, 2, 3])
    specs = specs_of(strategy.assign(0, slots, fits_all, seeded_rng(0, "assign", 0)))
    assert specs == [SubnetSpec(expected)] * 4
    refuse_2 = lambda slot, arch: slot.client != 2  # noqa: E731
    specs = specs_of(strategy.assign(1, slots, refuse_2, seeded_rng(0, "assign", 1)))
    assert specs == [SubnetSpec(expected), SubnetSpec(expected), None, SubnetSpec(expected)]
    np.testing.assert_array_equal(strategy.weights(0, slots, specs), [10.0, 20.0, 30.0, 40.0])
    assert strategy.train_scale(SubnetSpec(expected)) == 1.0


def test_heterofl_gives_the_widest_fitting_tier_and_scale_one_over_r():
    space = tiny_space(width_choices=(0.25, 1.0, 0.5))
    strategy = HeteroFL(make_job(name="heterofl"), space)
    full = space.largest()
    assert full == Arch((2, 2), ((1.0, 1.0), (1.0, 1.0)), ((5, 5), (5, 5)), 1.0)
    limit = {0: 1.0, 1: 0.6, 2: 0.25, 3: 0.2}       # widest width each client can hold
    fits = lambda slot, arch: arch.width <= limit[slot.client]  # noqa: E731
    specs = specs_of(strategy.assign(0, make_slots([0, 1, 2, 3]), fits, seeded_rng(0, "assign", 0)))
    assert specs[3] is None
    assert [s.arch.width for s in specs[:3]] == [1.0, 0.5, 0.25]
    for spec in specs[:3]:
        assert spec.is_prefix
        assert (spec.arch.depths, spec.arch.expands, spec.arch.kernels) == (full.depths, full.expands, full.kernels)
    assert [strategy.train_scale(s) for s in specs[:3]] == [1.0, 2.0, 4.0]
    assert [s.arch.width for _, s in strategy.references()] == [0.25, 0.5, 1.0]
    # the same client gets the same tier every round
    again = specs_of(strategy.assign(7, make_slots([0, 1, 2, 3]), fits, seeded_rng(0, "assign", 7)))
    assert again == specs


def test_make_strategy_by_name():
    space = tiny_space()
    expected = {"fedavg": FedAvg, "superfed": SuperFed, "heterofl": HeteroFL, "fedrolex": FedRolex,
                "feddropout": FederatedDropout, "fedsup": FedSup, "efedsup": EFedSup, "fjord": FjORD,
                "ifedavg": IFedAvg, "fednas": FedNAS, "distreal": Distreal}
    assert set(STRATEGIES) == set(expected)
    for name, cls in expected.items():
        assert type(make_strategy(make_job(name=name), space)) is cls


@pytest.mark.parametrize("tier", [0.25, 0.5])
def test_fedrolex_window_covers_every_channel_exactly_equally(tier):
    """Over C rounds the rolling window of a group of C channels covers each channel c = |window| times."""
    space = tiny_space(width_choices=(0.25, 0.5, 1.0))
    strategy = FedRolex(make_job(name="fedrolex"), space)
    fits = lambda slot, arch: arch.width <= tier  # noqa: E731
    full = space.max_group_sizes()
    counts = {group: np.zeros(size, dtype=int) for group, size in full.items()}
    rounds = int(np.lcm.reduce(list(full.values())))       # a multiple of every group's C
    for r in range(rounds):
        spec = specs_of(strategy.assign(r, make_slots([0]), fits, seeded_rng(0, "assign", r)))[0]
        assert spec.arch.width == tier and strategy.train_scale(spec) == 1 / tier
        channels = dict(spec.channels)
        assert set(channels) == set(full)                   # every group is narrowed at this tier
        sizes = space.group_sizes(spec.arch)
        for group, chosen in channels.items():    # the window starts at r mod C, contiguous modulo C
            assert set(chosen) == {(r + i) % full[group] for i in range(sizes[group])}, (r, group)
            counts[group][list(chosen)] += 1
    for group, hits in counts.items():
        assert (hits == rounds // full[group] * sizes[group]).all(), group


def test_federated_dropout_draws_random_channel_subsets_of_the_tier_size():
    space = tiny_space(width_choices=(0.5, 1.0))
    strategy = FederatedDropout(make_job(name="feddropout"), space)
    fits = lambda slot, arch: arch.width <= (0.5 if slot.client < 3 else 1.0)  # noqa: E731
    specs = specs_of(strategy.assign(4, make_slots([0, 1, 2, 3]), fits, seeded_rng(0, "assign", 4)))
    assert specs[3] == SubnetSpec(space.largest())                # the full width has nothing to drop
    full, sizes = space.max_group_sizes(), space.group_sizes(specs[0].arch)
    for spec in specs[:3]:
        for group, chosen in spec.channels:
            assert len(chosen) == sizes[group] < full[group] and len(set(chosen)) == len(chosen)
            assert 0 <= min(chosen) and max(chosen) < full[group]
    assert len({spec.channels for spec in specs[:3]}) == 3        # clients draw independently
    again = specs_of(strategy.assign(4, make_slots([0, 1, 2, 3]), fits, seeded_rng(0, "assign", 4)))
    later = specs_of(strategy.assign(5, make_slots([0, 1, 2, 3]), fits, seeded_rng(0, "assign", 5)))
    assert again == specs and later[:3] != specs[:3]               # seeded per round


# --- ClientHost.train: the fused buffer equals separately trained clients --------------------------

TRAIN = TrainConfig(local_epochs=1, batch_size=32, lr=0.05, momentum=0.5, clip_norm=5.0)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", None, "iid", 0.5, 2, 4, 0.2, 0)


def train_by_hand(space, base, spec, data, client, seed, round_index, scale=1.0):
    model = ElasticResNet(space)
    with torch.no_grad():
        model.flat.copy_(base)
    rows = torch.from_numpy(data.client_samples(client).copy())
    loss, seen = train_subnet(model, spec, data.x_train[rows], data.y_train[rows], TRAIN,
                              torch_generator(seed, "train", round_index, client), scale)
    return model.flat.detach().clone(), loss, seen


def test_client_host_fedavg_fuses_the_weighted_average_of_separately_trained_clients(digits):
    space = tiny_space("bn")
    assert digits.input_shape == space.input_shape and digits.num_classes == space.num_classes
    job = make_job(total=4, train=TRAIN, seed=5, name="fedavg", arch="largest")
    strategy = FedAvg(job, space)
    model = ElasticResNet(space, torch.Generator().manual_seed(0))
    base = model.flat.detach().clone()
    host = ClientHost(model, strategy, digits, device=torch.device("cpu"))
    spec = specs_of(strategy.assign(3, make_slots([2, 0]), fits_all, seeded_rng(0, "assign", 3)))[0]
    assert spec == SubnetSpec(space.largest())
    sums, outcome = run_plan(host, 3, [train_task(0, 2, spec, 0.25), train_task(1, 0, spec, 0.75)], {0: base})
    assert list(sums) == [0] and sums[0].dtype == torch.int64 and sums[0].shape == (model.num_params,)
    fedavg = sums[0].numpy().astype(np.float64) / SCALE      # full masks, weights 0.25 + 0.75 = 1

    theta2, loss2, seen2 = train_by_hand(space, base, spec, digits, 2, 5, 3)
    theta0, loss0, seen0 = train_by_hand(space, base, spec, digits, 0, 5, 3)
    assert (theta2 - base).abs().max() > 1e-3 and (theta0 - theta2).abs().max() > 1e-3   # real training
    expected = (0.25 * theta2.double() + 0.75 * theta0.double()).numpy()
    assert np.abs(fedavg - expected).max() <= 1e-6
    np.testing.assert_allclose(np.average(np.stack([theta2.numpy(), theta0.numpy()]), axis=0, weights=[1, 3]),
                               fedavg, rtol=0, atol=1e-6)
    metrics = outcome.metrics
    assert metrics["samples"][0] == seen2 == len(digits.client_samples(2))
    assert metrics["samples"][1] == seen0 == len(digits.client_samples(0))
    np.testing.assert_allclose(metrics["loss_sum"], [loss2 * seen2, loss0 * seen0], rtol=1e-6)
    assert metrics["rejected"].tolist() == [0.0, 0.0] and outcome.contributed().tolist() == [True, True]


def test_client_host_metrics_keep_the_loss_sum_to_fixed_point_precision(digits):
    space = tiny_space("none")
    strategy = FedAvg(make_job(total=4, train=TRAIN, seed=1, name="fedavg"), space)
    model = ElasticResNet(space, torch.Generator().manual_seed(2))
    base = model.flat.detach().clone()
    host = ClientHost(model, strategy, digits, device=torch.device("cpu"))
    spec = SubnetSpec(space.largest())
    _, outcome = run_plan(host, 0, [train_task(0, 3, spec, 1.0)], {0: base})
    _, loss, seen = train_by_hand(space, base, spec, digits, 3, 1, 0)
    loss_sum = outcome.metrics["loss_sum"][0]
    assert abs(loss_sum - loss * seen) <= 1e-9 * loss * seen     # 2**-40 resolution; float32 gives ~1e-7


def test_client_host_masks_partial_subnets_to_their_flat_index(digits):
    space = tiny_space("rms", width_choices=(0.5, 1.0))
    job = make_job(total=4, train=TRAIN, seed=7, name="heterofl")
    strategy = HeteroFL(job, space)
    model = ElasticResNet(space, torch.Generator().manual_seed(1))
    base = model.flat.detach().clone()
    host = ClientHost(model, strategy, digits, device=torch.device("cpu"))
    full = space.largest()
    half = SubnetSpec(Arch(full.depths, full.expands, full.kernels, 0.5))
    sums, _ = run_plan(host, 0, [train_task(0, 1, half, 1.0)], {0: base})
    fused, p = sums[0].numpy(), model.num_params
    index = model.flat_index(half).numpy()
    covered = np.zeros(p, dtype=bool)
    covered[index] = True
    assert 0 < covered.sum() < p
    assert np.all(fused[:p][~covered] == 0)
    theta, _, seen = train_by_hand(space, base, half, digits, 1, 7, 0, scale=2.0)   # HeteroFL: 1/r = 2
    got = fused[:p][covered].astype(np.float64) / SCALE      # weight 1
    assert np.abs(got - theta.numpy()[covered]).max() <= 1e-6
    assert (theta - base).abs().max() > 1e-3


def test_fedavg_trains_any_architecture_of_the_space_given_by_name():
    space = tiny_space()
    arch = space.sample(np.random.default_rng(4))
    strategy = make_strategy(make_job(name="fedavg", arch=arch.name), space)
    assert strategy.references() == [(0, SubnetSpec(arch))]
    specs = specs_of(strategy.assign(0, make_slots([0, 1]), lambda slot, a: True, seeded_rng(0, "assign", 0)))
    assert specs == [SubnetSpec(arch), SubnetSpec(arch)]
    too_deep = Arch(tuple(d + 1 for d in arch.depths), tuple(e + (e[-1],) for e in arch.expands),
                    tuple(k + (k[-1],) for k in arch.kernels), arch.width)
    with pytest.raises(ConfigError, match="strategy.fedavg: arch d"):
        make_strategy(make_job(name="fedavg", arch=too_deep.name), space).references()


# --- MaxNet's beta ---------------------------------------------------------------------------------

def test_maxnet_beta_endpoints_and_midpoint_by_hand():
    # rounds 10, decay_fraction 0.8: T = 8.  beta(4) = 0.9 * ((1 - a) * 0.5 * (1 + cos(pi/2)) + a)
    # with a = 0.25 / 0.9, i.e. 0.5 * (0.9 + 0.25) = 0.575.
    assert maxnet_beta(0, 10, 0.9, 0.25, 0.8) == pytest.approx(0.9, abs=1e-12)
    assert maxnet_beta(4, 10, 0.9, 0.25, 0.8) == pytest.approx(0.575, abs=1e-12)
    assert maxnet_beta(8, 10, 0.9, 0.25, 0.8) == pytest.approx(0.25, abs=1e-12)
    # beta(2): cos(pi/4) = sqrt(2)/2 -> 0.25 + 0.65 * 0.5 * (1 + sqrt(2)/2)
    assert maxnet_beta(2, 10, 0.9, 0.25, 0.8) == pytest.approx(0.25 + 0.325 * (1 + math.sqrt(0.5)), abs=1e-12)


@pytest.mark.parametrize("rounds, beta0, beta_end, fraction", [
    (40, 0.9, 0.125, 0.8), (10, 1.0, 0.0, 0.5), (7, 0.6, 0.2, 1.0), (100, 0.9, 0.05, 0.3)])
def test_maxnet_beta_decays_monotonically_then_stays(rounds, beta0, beta_end, fraction):
    horizon = fraction * rounds
    betas = [maxnet_beta(t, rounds, beta0, beta_end, fraction) for t in range(rounds + 5)]
    assert betas[0] == pytest.approx(beta0, abs=1e-12)
    if float(horizon).is_integer():
        assert betas[int(horizon)] == pytest.approx(beta_end, abs=1e-12)
    after = [b for t, b in enumerate(betas) if t >= horizon]
    assert after and all(b == pytest.approx(beta_end, abs=1e-12) for b in after)
    assert all(a >= b for a, b in zip(betas, betas[1:]))
    before = [b for t, b in enumerate(betas) if t <= horizon]
    assert all(a > b for a, b in zip(before, before[1:]))        # strictly decreasing until T
