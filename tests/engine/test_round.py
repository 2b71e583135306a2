"""The round as values (issue 10): the plan is what runs, each model merges only its own tasks,
per-batch channel-set schedules merge over their footprint, evaluate tasks score validation splits,
and the strategy observes them (and may stop the run)."""
from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hpcfed.assembly.job import load_job
from hpcfed.engine.controller import Controller
from hpcfed.engine.worker import ClientHost
from hpcfed.errors import ConfigError
from hpcfed.learning.sandwich import train_schedule
from hpcfed.round.merge import merge
from hpcfed.round.plan import EVALUATE, RoundPlan, Task
from hpcfed.seeding import torch_generator
from hpcfed.strategies import make_strategy
from hpcfed.supernet import Arch, ElasticResNet, SubnetSpec
from tests.fakes import run_plan, slot_of, tiny_space, train_task
from tests.loading import load_data
from tests.strategies.test_strategies import make_slots

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return load_data("digits", None, "iid", 0.5, 2, 8, 0.2, 0, client_val_fraction=0.25)


def setup(data, name="fedavg", **overrides):
    job = load_job(None, [f"strategy.name={name}", "train.local_epochs=1", "data.client_val_fraction=0.25",
                          *[f"{k}={v}" for k, v in overrides.items()]])
    space = tiny_space("rms", width_choices=(0.5, 1.0))
    model = ElasticResNet(space, torch.Generator().manual_seed(0))
    strategy = make_strategy(job, space)
    return job, space, model, strategy, ClientHost(model, strategy, data, torch.device("cpu"))


def dropout_spec(space, seed: int) -> SubnetSpec:
    """The largest architecture at half width, on a random half of every channel group (as DISTREAL draws them)."""
    g, full, top = np.random.default_rng(seed), space.max_group_sizes(), space.largest()
    half = Arch(top.depths, top.expands, top.kernels, 0.5)
    return SubnetSpec.of(half, {k: tuple(g.choice(full[k], n, replace=False))
                                for k, n in space.group_sizes(half).items() if n < full[k]})


def test_the_host_runs_exactly_the_tasks_schedules_and_footprints_the_plan_names(data):
    job, space, model, strategy, host = setup(data, "fedsup")
    calls = []
    train_client = strategy.train_client
    strategy.train_client = lambda m, spec, x, y, g, schedule: calls.append((len(y), spec, schedule)) or \
        train_client(m, spec, x, y, g, schedule)
    small = SubnetSpec(space.smallest())
    schedules = {c: tuple(strategy.schedule(0, slot_of(c, int(data.samples_per_client()[c])), small)) for c in (1, 4)}
    plan = RoundPlan(0, tuple(train_task(i, c, small, 0.5, schedule=schedules[c]) for i, c in enumerate((1, 4))))
    assert pickle.loads(pickle.dumps(plan)) == plan          # what the MPI backend broadcasts
    base = model.flat.detach().clone()
    sums, outcome = run_plan(host, 0, plan.tasks, {0: base})
    assert calls == [(int(data.samples_per_client()[c]), small, schedules[c]) for c in (1, 4)]
    covered = torch.zeros(model.num_params, dtype=torch.bool)
    covered[model.flat_index(small)] = True
    assert (sums[0][~covered] == 0).all() and (sums[0][covered] != 0).any()
    assert outcome.metrics["samples"].tolist() == [float(data.samples_per_client()[c]) for c in (1, 4)]


def test_two_models_each_merge_only_their_own_tasks(data):
    job, space, model, strategy, host = setup(data)
    spec = SubnetSpec(space.largest())
    base = {0: model.flat.detach().clone(), 1: model.flat.detach().clone() * 0.5}
    both = [train_task(0, 1, spec, 0.5, model=0), train_task(1, 2, spec, 1.0, model=1),
            train_task(2, 3, spec, 0.5, model=0)]
    plan = RoundPlan(0, tuple(both))
    sums, outcome = run_plan(host, 0, both, base)
    new = merge(sums, plan, outcome, base, model.union_index)
    for m, own in ((0, [both[0], both[2]]), (1, [both[1]])):
        alone_plan = RoundPlan(0, tuple(dataclasses.replace(t, slot=i) for i, t in enumerate(own)))
        alone_sums, alone_outcome = run_plan(host, 0, alone_plan.tasks, {m: base[m]})
        alone = merge(alone_sums, alone_plan, alone_outcome, {m: base[m]}, model.union_index)
        assert torch.equal(new[m], alone[m]) and not torch.equal(new[m], base[m])
    assert not torch.equal(new[0], new[1])


def test_a_schedule_of_explicit_channel_sets_merges_over_the_union_of_its_batches(data):
    job, space, model, strategy, host = setup(data)
    client, n = 2, int(data.samples_per_client()[2])
    batches = strategy.local_batches(n)
    picks = [dropout_spec(space, seed) for seed in range(3)]
    schedule = tuple((picks[b % 3],) for b in range(batches))
    footprint = tuple(dict.fromkeys(s for (s,) in schedule))
    task = train_task(0, client, SubnetSpec(space.largest()), 1.0, schedule=schedule, footprint=footprint)
    base = model.flat.detach().clone()
    sums, outcome = run_plan(host, 0, [task], {0: base})
    new = merge(sums, RoundPlan(0, (task,)), outcome, {0: base}, model.union_index)[0]
    union = torch.zeros(model.num_params, dtype=torch.bool)
    union[model.union_index(footprint)] = True
    assert union.sum() < model.num_params
    assert torch.equal(new[~union], base[~union])              # outside the batches' channels: unchanged
    by_hand = ElasticResNet(space)
    with torch.no_grad():
        by_hand.flat.copy_(base)
    x, y = data.client_data(client)
    train_schedule(by_hand, schedule, x, y, job.train, torch_generator(job.seed, "train", 0, client), False)
    assert torch.allclose(new[union], by_hand.flat.detach()[union], atol=1e-6)
    assert not torch.equal(new[union], base[union])


def test_client_validation_scores_equal_a_direct_computation(data):
    job, space, model, strategy, host = setup(data)
    specs = [SubnetSpec(space.smallest()), SubnetSpec(space.largest())]
    tasks = [Task(i, EVALUATE, client, 0, spec) for i, (client, spec) in enumerate((c, s) for c in (0, 5) for s in specs)]
    base = model.flat.detach().clone()
    sums, outcome = run_plan(host, 0, tasks, {0: base})
    assert sums == {}                                               # nothing trained, nothing to merge
    scores = outcome.validation()
    for spec in specs:
        correct = total = 0
        for client in (0, 5):
            x, y = data.client_validation(client)
            assert len(y) == data.validation_per_client()[client] > 0
            with torch.no_grad():
                logits = model(x, spec)
            correct, total = correct + int((logits.argmax(1) == y).sum()), total + len(y)
        assert scores[(0, spec)] == (correct, total)
    x, y = data.client_validation(5)
    with torch.no_grad():
        loss = float(F.cross_entropy(model(x, specs[1]), y, reduction="sum"))
    assert outcome.metrics["loss_sum"][3] == pytest.approx(loss, rel=1e-6)


def test_the_controller_observes_validation_and_stops_after_patience(data):
    job, space, model, strategy, host = setup(data, **{"eval.val_every": 1, "eval.patience": 2, "eval.min_delta": 0.5})
    controller = Controller(job, strategy)
    seen = []
    observe = strategy.observe
    strategy.observe = lambda r, outcome: seen.append(outcome.validation()) or observe(r, outcome)
    base = model.flat.detach().clone()
    for r in range(3):
        targets = strategy.validation_specs(r)
        assert targets == strategy.references()
        tasks = [Task(i, EVALUATE, 3, m, s) for i, (m, s) in enumerate(targets)]
        _, outcome = run_plan(host, r, tasks, {0: base})
        strategy.observe(r, outcome)
        controller.observe(r, outcome)
        assert set(seen[-1]) == set(targets)
        assert bool(controller.stop_reason(r + 1)) == (r == 2)   # the same weights never improve by 0.5
    assert "early stop after round 2" in controller.stop_reason(3)
    restored = Controller(job, make_strategy(job, space))
    restored.load_state_dict(controller.state_dict())
    assert restored.stop_reason(3) == controller.stop_reason(3)


def test_ifedavg_deals_the_cohort_into_one_group_per_model_and_references_each(data):
    job, space, model, strategy, host = setup(data, "ifedavg", **{"strategy.ifedavg.archs": "[smallest,ref2,largest]"})
    archs = [space.smallest(), space.references(job.eval.subnets)[2], space.largest()]
    assert strategy.models() == {0: 0, 1: 0, 2: 0}   # every model starts from the initial supernet
    assert strategy.references() == [(m, SubnetSpec(a)) for m, a in enumerate(archs)]
    slots = make_slots(list(range(7)))
    too_small = lambda slot, arch: not (slot.client == 4 and arch == archs[1])   # noqa: E731
    assigned = strategy.assign(0, slots, too_small, None)
    assert assigned == [(i % 3, SubnetSpec(archs[i % 3])) if i != 4 else None for i in range(7)]
    with pytest.raises(ConfigError, match=r"strategy.ifedavg.archs\[1\] = 'ref9'"):
        load_job(None, ["strategy.name=ifedavg", "strategy.ifedavg.archs=[smallest,ref9]"])
    with pytest.raises(ConfigError, match="distinct"):
        load_job(None, ["strategy.name=ifedavg", "strategy.ifedavg.archs=[largest,largest]"])
