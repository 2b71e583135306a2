"""Tests of multi-subnet local training (hpcfed.learning.sandwich) and the strategies built on it:
FedSup, E-FedSup (hpcfed.strategies.fedsup) and FjORD (hpcfed.strategies.fjord)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hpcfed.config import ClientsConfig, JobConfig, StrategyConfig, TrainConfig
from hpcfed.engine.worker import ClientHost
from hpcfed.learning.sandwich import sandwich_step_loss, train_schedule
from hpcfed.learning.training import batch_lengths, batch_schedule, min_batch
from hpcfed.population.devices import Device
from hpcfed.round.aggregate import fixed_weight
from hpcfed.round.merge import merge
from hpcfed.round.outcome import Outcome
from hpcfed.round.plan import RoundPlan, needed_slices
from hpcfed.seeding import rng as seeded_rng
from hpcfed.strategies import STRATEGIES, ClientSlot
from hpcfed.strategies.fedsup import EFedSup, FedSup
from hpcfed.strategies.fjord import FjORD
from hpcfed.supernet import Arch, ElasticResNet, SubnetSpec, cost
from tests.fakes import run_plan, specs_of, tiny_mobilenet, tiny_space, train_task
from tests.loading import load_data as load_section

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TRAIN = TrainConfig(local_epochs=2, batch_size=8, lr=0.05, clip_norm=0.0)


def make_job(name: str, **options) -> JobConfig:
    return dataclasses.replace(JobConfig(), seed=3, clients=ClientsConfig(total=8, per_round=4),
                               strategy=StrategyConfig(name, STRATEGIES[name].Options(**options)), train=TRAIN)


def slot(client: int, memory_bytes: float = 1e9, samples: int = 30) -> ClientSlot:
    return ClientSlot(client, samples, Device(1e9, memory_bytes, 1e6, 1e6), 1.0)


# --- the sandwich step ----------------------------------------------------------------------------
@pytest.mark.parametrize("distill", [True, False])
def test_sandwich_step_loss_is_the_sum_of_the_terms_by_hand(distill):
    space = tiny_space("rms", width_choices=(0.5, 1.0))
    model = ElasticResNet(space, torch.Generator().manual_seed(0))
    x = torch.randn(6, *space.input_shape, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 3, 3, 9, 1, 5])
    largest, smallest = space.largest(), space.smallest()
    middle = space.sample_within(largest, np.random.default_rng(4))
    archs = (largest, middle, smallest)

    total = sandwich_step_loss(model, tuple(SubnetSpec(a) for a in archs), x, y, distill)
    got_grad = torch.cat([w.grad.reshape(-1) for w in model.weights])

    # by hand, on standalone extracted subnets: -log p[y] for the teacher, then
    # sum_c p_teacher (log p_teacher - log p_student) / B (or -log p_student[y])
    def log_probs(arch):
        logits = model.extract(SubnetSpec(arch))(x)
        return logits - logits.exp().sum(dim=1, keepdim=True).log()
    teacher = log_probs(largest).detach()
    terms = [-teacher[torch.arange(6), y].mean()]
    for arch in archs[1:]:
        student = log_probs(arch)
        if distill:
            terms.append((teacher.exp() * (teacher - student)).sum() / 6)
        else:
            terms.append(-student[torch.arange(6), y].mean())
    assert all(t.item() > 1e-4 for t in terms)
    assert abs(total.item() - sum(t.item() for t in terms)) <= 1e-5 * total.item()

    # the accumulated gradients are those of the summed loss
    reference = ElasticResNet(space)
    with torch.no_grad():
        reference.flat.copy_(model.flat)
    teacher_logits = reference(x, SubnetSpec(largest))
    summed = torch.nn.functional.cross_entropy(teacher_logits, y)
    soft = torch.softmax(teacher_logits.detach(), dim=1)
    for arch in archs[1:]:
        out = torch.log_softmax(reference(x, SubnetSpec(arch)), dim=1)
        summed = summed + ((soft * (soft.log() - out)).sum() / 6 if distill else -out[torch.arange(6), y].mean())
    summed.backward()
    want_grad = torch.cat([w.grad.reshape(-1) for w in reference.weights])
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-5, atol=1e-7)


def test_train_schedule_rejects_a_too_long_schedule_and_stops_early_on_a_short_one():
    space = tiny_space("none")
    model = ElasticResNet(space)
    x, y = torch.randn(20, *space.input_shape), torch.randint(0, 10, (20,))
    with pytest.raises(ValueError, match="7 entries for 6 batches"):
        train_schedule(model, [(SubnetSpec(space.largest()),)] * 7, x, y, TRAIN, torch.Generator(), distill=True)
    _, seen = train_schedule(model, [(SubnetSpec(space.largest()),)] * 3, x, y, TRAIN, torch.Generator(), distill=True)
    lengths = batch_lengths(20, TRAIN, min_batch("none"))
    assert len(lengths) == 6 and seen == sum(lengths[:3])    # fewer local steps: the first three batches


def test_batch_lengths_are_the_sizes_of_the_batch_schedule():
    for n, norm in [(30, "bn"), (17, "bn"), (16, "none"), (3, "rms"), (1, "bn")]:
        got = [len(b) for b in batch_schedule(n, TRAIN, torch.Generator().manual_seed(0), min_batch(norm))]
        assert got == batch_lengths(n, TRAIN, min_batch(norm))


# --- FedSup ---------------------------------------------------------------------------------------
def test_fedsup_ships_the_whole_supernet_and_its_schedule_is_the_sandwich():
    space = tiny_space("bn", width_choices=(0.5, 1.0))
    strategy = FedSup(make_job(name="fedsup", sandwich_random=3), space)
    slots = [slot(0, memory_bytes=1.0), slot(5)]          # FedSup does not consult the device
    specs = specs_of(strategy.assign(0, slots, lambda s, a: False, seeded_rng(0, "assign", 0)))
    assert specs == [SubnetSpec(space.largest())] * 2
    schedule = strategy.schedule(2, slot(5, samples=30), specs[1])
    assert len(schedule) == len(batch_lengths(30, TRAIN, 2)) == 8
    randoms = set()
    for batch in schedule:
        archs = [s.arch for s in batch]
        assert len(archs) == 5 and archs[0] == space.largest() and archs[-1] == space.smallest()
        assert all(s.is_prefix for s in batch)
        randoms.update(archs[1:-1])
    assert len(randoms) > 3 and all(space.validate(a) for a in randoms)
    assert schedule == strategy.schedule(2, slot(5, samples=30), specs[1])       # seeded per round and client
    assert schedule != strategy.schedule(3, slot(5, samples=30), specs[1])
    assert schedule != strategy.schedule(2, slot(6, samples=30), specs[1])


@pytest.mark.parametrize("make_space", [tiny_space, tiny_mobilenet])
def test_sample_within_stays_inside_the_bound_and_reaches_all_of_it(make_space):
    space = make_space("bn", width_choices=(0.25, 0.5, 1.0))
    g = np.random.default_rng(0)
    for _ in range(30):
        bound = space.sample(g)
        drawn = [space.sample_within(bound, g) for _ in range(200)]
        assert all(space.contains(bound, a) and space.validate(a) for a in drawn)
        assert bound in drawn or len(set(drawn)) > 20
        within = set(ElasticResNet(space).flat_index(SubnetSpec(bound)).tolist())
        assert all(set(ElasticResNet(space).flat_index(SubnetSpec(a)).tolist()) <= within for a in drawn[:5])


# --- E-FedSup -------------------------------------------------------------------------------------
def test_efedsup_device_tiers_are_the_largest_reference_subnet_that_fits():
    space = tiny_space("bn", width_choices=(0.5, 1.0))
    job = make_job(name="efedsup")
    strategy = EFedSup(job, space)
    tiers = space.references(job.eval.subnets)
    need = [cost(space, a).train_memory_bytes(TRAIN.batch_size) for a in tiers]
    assert need == sorted(need)
    fits = lambda s, a: cost(space, a).train_memory_bytes(TRAIN.batch_size) <= s.device.memory_bytes  # noqa: E731
    memories = [need[0] - 1, *need, (need[1] + need[-1]) / 2]
    specs = specs_of(strategy.assign(0, [slot(i, m) for i, m in enumerate(memories)], fits, seeded_rng(0, "assign", 0)))
    assert specs[0] is None and len(set(specs[1:])) > 2
    for memory, spec in zip(memories[1:], specs[1:]):
        assert spec == SubnetSpec(tiers[max(j for j, n in enumerate(need) if n <= memory)])


def test_efedsup_fixed4_tiers_follow_the_client_and_the_parameter_bands():
    space = tiny_space("bn", width_choices=(0.5, 1.0))
    strategy = EFedSup(make_job(name="efedsup", tiers="fixed4"), space)
    low, high = cost(space, space.smallest()).params, cost(space, space.largest()).params
    middle = (low + high) / 2
    for r in range(5):
        specs = specs_of(strategy.assign(r, [slot(c) for c in range(8)], lambda s, a: True, seeded_rng(0, "assign", r)))
        params = [cost(space, s.arch).params for s in specs]
        for c in (0, 4):
            assert specs[c].arch == space.smallest()
        for c in (3, 7):
            assert specs[c].arch == space.largest()
        assert all(low <= params[c] <= middle for c in (1, 5)) and all(middle <= params[c] <= high for c in (2, 6))


def test_efedsup_trains_and_ships_nothing_outside_the_clients_slice():
    space = tiny_space("bn", width_choices=(0.5, 1.0))
    data = load_section("digits", None, "iid", 0.5, 2, 8, 0.2, 0)
    strategy = EFedSup(make_job(name="efedsup"), space)
    model = ElasticResNet(space, torch.Generator().manual_seed(0))
    base = model.flat.detach().clone()
    host = ClientHost(model, strategy, data, torch.device("cpu"))
    for client, arch in ((1, space.references(5)[1]), (2, space.references(5)[3])):
        spec = SubnetSpec(arch)
        index = model.flat_index(spec)
        assert 0 < len(index) < model.num_params
        outside = torch.ones(model.num_params, dtype=torch.bool)
        outside[index] = False
        schedule = strategy.schedule(0, slot(client, samples=int(data.samples_per_client()[client])), spec)
        for specs in schedule:
            for s in specs:
                assert not outside[model.flat_index(s)].any()
        task = train_task(0, client, spec, 1.0, schedule=tuple(schedule))
        run_plan(host, 0, [task], {0: base})
        changed = model.flat.detach() != base
        assert changed[index].any() and not changed[outside].any()
        # what a worker receives for it: exactly the slice's values (hpcfed.round.plan.needed_slices)
        assert torch.equal(model.union_index(needed_slices([task])[0]), index)


def test_efedsup_selected_merge_divides_covered_elements_by_all_contributing_clients():
    space = tiny_space("bn", width_choices=(0.5, 1.0))
    model = ElasticResNet(space)
    small, large = SubnetSpec(space.references(5)[1]), SubnetSpec(space.largest())
    plan = RoundPlan(0, (train_task(0, 0, small, 0.25), train_task(1, 1, large, 0.5), train_task(2, 2, small, 0.25)))
    made = {"samples": np.array([10.0, 10.0, 10.0]), "rejected": np.array([0.0, 0.0, 1.0])}   # task 2 rejected
    outcome = Outcome(plan.tasks, {**made, "loss_sum": np.zeros(3)}, np.zeros(3, dtype=np.int64), np.zeros(1))
    sums = {0: torch.full((model.num_params,), fixed_weight(0.25) + fixed_weight(0.5), dtype=torch.int64)}
    old = {0: torch.full((model.num_params,), -1.0)}
    inside = torch.zeros(model.num_params, dtype=torch.bool)
    inside[model.flat_index(small)] = True
    for rule, outside_value in (("covered", 0.75 / 0.5), ("selected", 1.0)):
        strategy = EFedSup(make_job(name="efedsup", merge=rule), space)
        new = merge(sums, plan, outcome, old, model.union_index, strategy.merge_denominator)[0]
        # inside the small slice both contributing clients cover: (0.25 + 0.5) / (0.25 + 0.5)
        assert (new[inside] == 1.0).all()
        # outside it only the large one covers: divided by its 0.5 (covered) or by 0.75 (selected)
        assert torch.allclose(new[~inside], torch.tensor(outside_value))


# --- FjORD ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("distill", [True, False])
def test_fjord_levels_stay_within_each_clients_p_max(distill):
    space = tiny_space("bn", width_choices=(0.25, 0.5, 1.0))
    strategy = FjORD(make_job(name="fjord", distill=distill), space)
    full = space.largest()
    for p_max in (0.25, 0.5, 1.0):
        top = Arch(full.depths, full.expands, full.kernels, p_max)
        levels = []
        for client in range(6):
            for specs in strategy.schedule(1, slot(client, samples=40), SubnetSpec(top)):
                archs = tuple(s.arch for s in specs)
                level = archs[-1]
                assert level.width <= p_max and level.depths == full.depths and level.expands == full.expands
                if distill and level != top:
                    assert archs == (top, level)
                else:
                    assert archs == (level,)
                levels.append(level.width)
        assert sorted(set(levels)) == [w for w in (0.25, 0.5, 1.0) if w <= p_max]
    assert strategy.train_scale(SubnetSpec(full)) == 1.0 and not strategy.batchable


def test_fjord_assigns_the_widest_fitting_tier_as_p_max():
    space = tiny_space("bn", width_choices=(0.25, 0.5, 1.0))
    strategy = FjORD(make_job(name="fjord"), space)
    need = [cost(space, a).train_memory_bytes(TRAIN.batch_size) for a in strategy.tiers()]
    fits = lambda s, a: cost(space, a).train_memory_bytes(TRAIN.batch_size) <= s.device.memory_bytes  # noqa: E731
    specs = specs_of(strategy.assign(0, [slot(0, need[1]), slot(1, need[2]), slot(2, need[0] - 1)], fits, None))
    assert [s and s.arch.width for s in specs] == [0.5, 1.0, None]
