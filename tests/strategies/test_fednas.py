"""FedNAS (hpcfed.strategies.fednas, hpcfed.strategies.fednas.candidates): candidates, groups, dropping, stop rules,
no test-set decisions, rank invariance, resume, bad input."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from hpcfed.assembly.job import load_job
from hpcfed.errors import ConfigError
from hpcfed.population.devices import Device
from hpcfed.round.plan import EVALUATE, TRAIN, Task
from hpcfed.strategies import ClientSlot, make_strategy
from hpcfed.strategies.fednas.candidates import measure, netadapt_candidates, sample_candidates, step_budget
from hpcfed.strategies.fednas.race import estimate, gap_in_se, pooled
from hpcfed.supernet import ResNetSpace, SubnetSpec
from hpcfed.supernet.mobilenet import MobileNetSpace
from tests.launch import TINY

# warm-up 2 rounds, then steps of 10, 7, ... candidates (kernels 3 and 5, 10 % budget cuts) down to half
# the largest's MACs, an evaluation every round, final training 2 rounds: 25 rounds in all
FEDNAS = [*TINY, "--set", "rounds=60", "--set", "clients.per_round=6", "--set", "strategy.name=fednas",
          "--set", "model.kernel_choices=[3,5]", "--set", "data.client_val_fraction=0.2",
          "--set", "strategy.fednas.warmup_rounds=2", "--set", "strategy.fednas.finetune_rounds=2",
          "--set", "strategy.fednas.shrink=0.1", "--set", "strategy.fednas.eval_every=1", "--set", "eval.every=100"]
SPACES = [ResNetSpace((1, 8, 8), 10, stem=8, widths=(8, 16), kernel_choices=(3, 5), width_choices=(0.5, 1.0)),
          MobileNetSpace((1, 8, 8), 10, stem=8, widths=(8, 16), kernel_choices=(3, 5))]


def changed_places(parent, arch) -> list[str]:
    """Where ``arch`` differs from ``parent``: depth per stage, expand and kernel per block, width."""
    places = [f"depth s{s}" for s in range(len(parent.depths)) if parent.depths[s] != arch.depths[s]]
    for s, d in enumerate(arch.depths):
        places += [f"expand s{s}" for b in range(d) if arch.expands[s][b] != parent.expands[s][b]]
        places += [f"kernel s{s}" for b in range(d) if arch.kernels[s][b] != parent.kernels[s][b]]
    return places + (["width"] if arch.width != parent.width else [])


@pytest.mark.parametrize("space", SPACES, ids=["resnet", "mobilenet"])
@pytest.mark.parametrize("what", ["macs", "params"])
def test_netadapt_candidates_meet_the_budget_and_change_one_dimension_of_one_place(space, what):
    parent = space.largest()
    for cut in (0.05, 0.1, 0.3):
        budget = step_budget(measure(space, parent, what), 0, cut, 0.96, 0.0)
        found = netadapt_candidates(space, parent, budget, what)
        assert found and len({c.arch for c in found}) == len(found)
        for c in found:
            space.validate(c.arch)
            assert measure(space, c.arch, what) <= budget
            places = changed_places(parent, c.arch)
            assert len(set(places)) == 1 and places[0].split()[0] == c.dimension, (c, places)
    kinds = {c.dimension for c in netadapt_candidates(space, parent, 0.95 * measure(space, parent, what), what)}
    assert {"depth", "expand", "kernel"} <= kinds


def test_a_budget_no_single_shrink_meets_still_gives_smaller_candidates_and_sampling_stays_inside():
    space = SPACES[0]
    parent, smallest = space.largest(), measure(space, space.smallest(), "macs")
    found = netadapt_candidates(space, parent, smallest, "macs")
    assert found and all(measure(space, c.arch, "macs") < measure(space, parent, "macs") for c in found)
    assert netadapt_candidates(space, space.smallest(), smallest, "macs") == []
    budget = 0.6 * measure(space, parent, "macs")
    sampled = sample_candidates(space, parent, budget, 5, np.random.default_rng(0))
    assert len(sampled) == 5 and all(measure(space, c.arch, "macs") <= budget for c in sampled)
    assert all(space.contains(parent, c.arch) for c in sampled)


def fednas(*overrides):
    job = load_job(None, [a for a in FEDNAS if a != "--set"] + list(overrides))
    space = ResNetSpace((1, 8, 8), 10, stem=8, widths=(8, 16), kernel_choices=(3, 5))
    return make_strategy(job, space)


def slots(n):
    device = Device(speed_macs_per_s=1e9, memory_bytes=10**12, down_bytes_per_s=1e6, up_bytes_per_s=1e6)
    return [ClientSlot(c, 10 + 7 * c, device, 1.0) for c in range(n)]


def test_groups_are_disjoint_cover_the_cohort_and_balance_predicted_work():
    strategy = fednas("strategy.fednas.warmup_rounds=0")
    live = [c["model"] for c in strategy.live_candidates()]
    assert len(live) >= 5
    cohort = slots(23)
    assigned = strategy.assign(0, cohort, lambda slot, arch: True, np.random.default_rng(0))
    assert all(a is not None and a[0] in live for a in assigned)       # every client in exactly one group
    assert {a[0] for a in assigned} == set(live)                       # every live candidate gets clients
    load = {m: 0.0 for m in live}
    for slot, (model, spec) in zip(cohort, assigned):
        assert spec.arch == strategy.arch_of(model)
        load[model] += slot.samples * measure(strategy.space, spec.arch, "macs")
    biggest = max(s.samples for s in cohort) * max(measure(strategy.space, strategy.arch_of(m), "macs") for m in live)
    assert max(load.values()) - min(load.values()) <= biggest


def outcome_of(strategy, round_index, scores, spread=None):
    """A round in which every live candidate trained on one client and was scored on 100 samples:
    ``scores`` maps a model to its correct predictions (each wrong one has loss 1, a right one 0) or,
    with ``spread``, to its mean per-example loss with that per-example standard deviation."""
    tasks, metrics = [], {"samples": [], "correct": [], "total": [], "loss_sum": [], "loss_sq_sum": [], "rejected": []}
    for kind in (TRAIN, EVALUATE):
        for c in strategy.live_candidates() or [{"model": 0}]:
            spec = SubnetSpec(strategy.arch_of(c["model"]))
            if kind == EVALUATE and c["model"] not in scores:
                continue
            tasks.append(Task(len(tasks), kind, 0, c["model"], spec))
            value = scores.get(c["model"], 0) if kind == EVALUATE else 0
            if spread is None:
                correct, loss, squares = value, 100.0 - value, 100.0 - value
            else:
                correct, loss, squares = 0, 100.0 * value, 99 * spread ** 2 + 100 * value ** 2
            evaluated = kind == EVALUATE
            for name, v in (("samples", 0 if evaluated else 10), ("correct", correct), ("total", 100 if evaluated else 0),
                            ("loss_sum", loss if evaluated else 0.0), ("loss_sq_sum", squares if evaluated else 0.0),
                            ("rejected", 0)):
                metrics[name].append(v)
    metrics = {k: np.array(v, dtype=float) for k, v in metrics.items()}
    return SimpleNamespace(tasks=tuple(tasks), metrics=metrics,
                           contributed=lambda: np.array([t.kind == TRAIN for t in tasks]))


def test_the_halving_rule_keeps_the_top_fraction_within_delta_and_a_stable_leader_ends_the_step():
    strategy = fednas("strategy.fednas.rule=halving", "strategy.fednas.warmup_rounds=0", "strategy.fednas.keep=1.0",
                      "strategy.fednas.delta=0.1",
                      "strategy.fednas.patience=2")
    live = [c["model"] for c in strategy.live_candidates()]
    scores = {m: 50 + 9 * i // (len(live) - 1) for i, m in enumerate(live)}   # the last is best, all within 10 points
    scores[live[0]] = 20                                       # 20 points behind: dropped
    strategy.observe(0, outcome_of(strategy, 0, scores))
    survivors = [c["model"] for c in strategy.live_candidates()]
    assert live[0] not in survivors and set(survivors) == set(live[1:])
    assert tuple(strategy.models()) == tuple(sorted({0, *survivors}))   # a dropped model is gone for good
    for r in (1, 2):                                           # the same leader twice more: the step ends
        strategy.observe(r, outcome_of(strategy, r, scores))
    assert strategy.state["step"] == 1 and strategy.state["family"] == [0, live[-1]]
    dropped = next(c for c in strategy.state["candidates"] if c["model"] == live[0])
    assert dropped["status"] == "dropped" and dropped["dropped"] == 0
    assert all(c["status"] in ("lost", "winner", "dropped") for c in strategy.state["candidates"] if c["step"] == 0)


def test_the_halving_rule_to_one_candidate_and_max_rounds_end_a_step_and_the_target_ends_the_search():
    strategy = fednas("strategy.fednas.rule=halving", "strategy.fednas.warmup_rounds=0", "strategy.fednas.keep=0.5",
                      "strategy.fednas.patience=9")
    r = 0
    while strategy.state["step"] == 0:
        live = [c["model"] for c in strategy.live_candidates()]
        strategy.observe(r, outcome_of(strategy, r, {m: 50 for m in live}))   # ties: proposal order decides
        r += 1
    assert r == int(np.ceil(np.log2(len([c for c in strategy.state["candidates"] if c["step"] == 0]))))
    capped = fednas("strategy.fednas.rule=halving", "strategy.fednas.warmup_rounds=0", "strategy.fednas.keep=1.0",
                    "strategy.fednas.patience=9",
                    "strategy.fednas.max_rounds=3", "strategy.fednas.eval_every=3")
    for r in range(3):
        assert capped.state["step"] == 0
        capped.observe(r, outcome_of(capped, r, {m: 40 + m for m in (c["model"] for c in capped.live_candidates())}
                                     if r == 2 else {}))
    assert capped.state["step"] == 1
    while strategy.state["phase"] == "search":
        strategy.observe(r, outcome_of(strategy, r, {c["model"]: 50 for c in strategy.live_candidates()}))
        r += 1
    assert strategy.state["phase"] == "finetune" and strategy.stop_reason() == ""
    assert measure(strategy.space, strategy.arch_of(strategy.state["final"]), "macs") <= strategy.target
    for _ in range(2):
        strategy.observe(r, outcome_of(strategy, r, {}))
        r += 1
    assert strategy.stop_reason().startswith("search finished: target budget met")


def test_the_standard_error_of_a_pooled_loss_matches_a_hand_computed_example():
    # per-example losses 0.5, 1.0 (client 3) and 2.0, 4.0 (client 4): mean 1.875, unbiased variance
    # 7.1875 / 3 = 2.395833..., standard error sqrt(2.395833 / 4) = 0.773924...
    rows = [[1, 2, 1.5, 0.25 + 1.0], [0, 2, 6.0, 4.0 + 16.0]]
    got = estimate(rows)
    assert got.loss == pytest.approx(1.875) and got.se == pytest.approx(0.7739242, rel=1e-6)
    assert got.samples == 4 and got.accuracy == 0.25
    # pooled: of the last two evaluation rounds, each client's latest row counts once; round 1 is too old
    evaluations = [[1, 3, 0, 2, 99.0, 99.0], [2, 3, 0, 2, 50.0, 50.0], [5, 4, *rows[1]], [7, 3, *rows[0]]]
    assert pooled(evaluations, 2) == got
    assert pooled(evaluations, 1) == estimate([rows[0]])
    assert gap_in_se(estimate([rows[1]]), estimate([rows[0]])) == pytest.approx(
        (3.0 - 0.75) / math.hypot(estimate([rows[1]]).se, estimate([rows[0]]).se))


def race(*overrides):
    return fednas("strategy.fednas.warmup_rounds=0", "strategy.fednas.rule=race", "strategy.fednas.z=2",
                  "strategy.fednas.min_client_epochs=3", "strategy.fednas.pool=1", *overrides)


def test_the_race_drops_only_after_the_minimum_training_and_beyond_z_standard_errors():
    strategy = race("strategy.fednas.max_rounds=6", "strategy.fednas.eval_every=1")
    live = [c["model"] for c in strategy.live_candidates()]
    leader, near, far, *rest = live
    # standard error of each score 1.0 / sqrt(100) = 0.1; the difference's sqrt(2) x 0.1 = 0.1414
    losses = {leader: 1.0, near: 1.0 + 1.9 * 0.1414, far: 1.0 + 2.1 * 0.1414, **{m: 3.0 for m in rest}}
    for r in range(2):   # 1 and 2 client-epochs: nobody is dropped, however far behind
        strategy.observe(r, outcome_of(strategy, r, losses, spread=1.0))
        assert [c["model"] for c in strategy.live_candidates()] == live
    strategy.observe(2, outcome_of(strategy, 2, losses, spread=1.0))
    assert [c["model"] for c in strategy.live_candidates()] == [leader, near]   # near is within 2 SE: kept
    decisions = strategy.state["decisions"]
    assert {d["model"] for d in decisions} == {far, *rest} and all(d["action"] == "dropped" for d in decisions)
    evidence = next(d for d in decisions if d["model"] == far)
    assert evidence["round"] == 2 and evidence["client_epochs"] == 3 and evidence["leader"] == leader
    assert evidence["gap_in_se"] == pytest.approx(2.1, rel=1e-3) and evidence["se"] == pytest.approx(0.1)
    for r in range(3, 6):   # near stays within 2 SE up to max_rounds: the step ends unresolved
        strategy.observe(r, outcome_of(strategy, r, losses, spread=1.0))
    assert strategy.state["step"] == 1 and strategy.state["family"] == [0, leader]
    step = strategy.state["steps"][0]
    assert not step["resolved"] and step["reason"] == "max_rounds" and step["winner"] == leader
    actions = {d["model"]: d["action"] for d in strategy.state["decisions"] if d["round"] == 5}
    assert actions == {leader: "won, unresolved", near: "lost"}


def test_a_step_whose_leader_is_ahead_of_all_by_z_standard_errors_is_resolved():
    strategy = race("strategy.fednas.max_rounds=6", "strategy.fednas.eval_every=1")
    live = [c["model"] for c in strategy.live_candidates()]
    losses = {m: 1.0 + (0.0 if i == 1 else 1.0) for i, m in enumerate(live)}   # the second leads by 7 SE
    r = 0
    while strategy.state["step"] == 0:
        strategy.observe(r, outcome_of(strategy, r, losses, spread=1.0))
        r += 1
    assert r == 3 and strategy.state["family"] == [0, live[1]]
    assert strategy.state["steps"][0]["resolved"] and strategy.state["steps"][0]["reason"] == "one candidate left"


def test_the_warm_up_ends_at_its_validation_target_or_at_its_round_cap():
    strategy = fednas("strategy.fednas.warmup_rounds=4", "strategy.fednas.warmup_accuracy=0.5",
                      "strategy.fednas.eval_every=1")
    assert strategy.validation_specs(0) == []             # nothing trained yet
    strategy.observe(0, outcome_of(strategy, 0, {}))
    assert [m for m, _ in strategy.validation_specs(1)] == [0]
    strategy.observe(1, outcome_of(strategy, 1, {0: 30}))    # 30 % < 50 %: still warming up
    assert strategy.state["phase"] == "warmup"
    strategy.observe(2, outcome_of(strategy, 2, {0: 60}))
    assert strategy.state["phase"] == "search" and min(c["born"] for c in strategy.live_candidates()) == 3
    assert strategy.state["decisions"][0]["action"] == "warm-up reached its target"
    capped = fednas("strategy.fednas.warmup_rounds=2", "strategy.fednas.warmup_accuracy=0.9",
                    "strategy.fednas.eval_every=1")
    capped.observe(0, outcome_of(capped, 0, {}))
    capped.observe(1, outcome_of(capped, 1, {0: 30}))
    assert capped.state["phase"] == "search"
    assert capped.state["decisions"][0]["action"] == "warm-up ended at warmup_rounds, target not reached"


@pytest.mark.parametrize("setting, message", [
    ("strategy.fednas.rule=greedy", "strategy.fednas.rule = 'greedy'"),
    ("strategy.fednas.z=0", "strategy.fednas.z = 0"),
    ("strategy.fednas.min_client_epochs=-1", "strategy.fednas.min_client_epochs = -1"),
    ("strategy.fednas.pool=0", "strategy.fednas.pool = 0"),
    ("strategy.fednas.warmup_accuracy=1.5", "strategy.fednas.warmup_accuracy = 1.5"),
    ("strategy.fednas.warmup_loss=-1", "strategy.fednas.warmup_loss = -1"),
])
def test_bad_race_and_warm_up_options_name_the_value_and_what_is_accepted(setting, message):
    with pytest.raises(ConfigError) as info:
        fednas(setting)
    assert str(info.value).startswith(message) and "accepted" in str(info.value), str(info.value)
