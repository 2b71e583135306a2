"""The round plan's grouping and cost-aware mapping of tasks to worker ranks (longest processing time first)."""
from __future__ import annotations

import dataclasses

from hpcfed.round.plan import EVALUATE, Task, assign_groups, map_to_workers, needed_slices
from hpcfed.supernet import Arch, SubnetSpec
from tests.fakes import train_task

SPEC = SubnetSpec(Arch((1,), ((1.0,),), ((3,),)))
OTHER = SubnetSpec(Arch((1,), ((0.5,),), ((3,),)))


def tasks(costs, specs=None):
    """One task per cost, each in a group of its own (as assign_groups with batch_clients = 1 makes)."""
    specs = specs or [SPEC] * len(costs)
    return assign_groups([dataclasses.replace(train_task(i, 100 + i, s, 1.0), cost=c)
                          for i, (c, s) in enumerate(zip(costs, specs))], batch_clients=1)


def test_every_task_goes_to_exactly_one_worker_in_slot_order():
    mapping = map_to_workers(tasks([3, 1, 4, 1, 5, 9, 2, 6]), [1, 2, 3])
    slots = sorted(t.slot for ts in mapping.values() for t in ts)
    assert slots == list(range(8))
    for ts in mapping.values():
        assert [t.slot for t in ts] == sorted(t.slot for t in ts)


def test_costly_clients_are_spread_so_workers_finish_together():
    # LPT by hand: 8 -> w1, 7 -> w2, 6 -> w3, 5 -> w3 (had 6), 4 -> w2 (had 7), 2 -> w1 (had 8): 10, 11, 11
    mapping = map_to_workers(tasks([8, 7, 6, 5, 4, 2]), [1, 2, 3])
    loads = sorted(sum(t.cost for t in ts) for ts in mapping.values())
    assert loads == [10, 11, 11]


def test_more_workers_than_clients_leaves_some_idle():
    mapping = map_to_workers(tasks([1.0, 2.0]), [1, 2, 3, 4])
    assert sorted(len(ts) for ts in mapping.values()) == [0, 0, 1, 1]


def test_groups_hold_up_to_batch_clients_tasks_of_one_spec_in_slot_order():
    specs = [SPEC, OTHER, SPEC, SPEC, OTHER, SPEC]
    grouped = assign_groups(tasks([1] * 6, specs), batch_clients=2)
    assert [t.group for t in grouped] == [0, 1, 0, 2, 1, 2]
    assert [t.group for t in assign_groups(grouped, batch_clients=1)] == [0, 1, 2, 3, 4, 5]


def test_a_group_stays_on_one_worker():
    grouped = assign_groups(tasks([5, 1, 1, 1, 1, 1]), batch_clients=3)     # groups {0,1,2}, {3,4,5}
    mapping = map_to_workers(grouped, [1, 2, 3])
    placed = {t.slot: w for w, ts in mapping.items() for t in ts}
    assert placed[0] == placed[1] == placed[2] and placed[3] == placed[4] == placed[5]
    assert placed[0] != placed[3]


def test_groups_never_mix_models_schedules_or_evaluate_tasks():
    base = tasks([1] * 4)
    other_model = dataclasses.replace(base[1], model=1)
    scheduled = dataclasses.replace(base[2], schedule=((SPEC,),))
    evaluate = Task(3, EVALUATE, 7, 0, SPEC)
    grouped = assign_groups([base[0], other_model, scheduled, evaluate], batch_clients=4)
    assert len({t.group for t in grouped}) == 4


def test_needed_slices_are_per_model_unions_of_footprints_and_scored_specs():
    two = dataclasses.replace(train_task(0, 1, SPEC, 0.5), footprint=(SPEC, OTHER))
    needed = needed_slices([two, Task(1, EVALUATE, 2, 1, OTHER), train_task(2, 3, OTHER, 0.5)])
    assert needed == {0: (SPEC, OTHER), 1: (OTHER,)}
