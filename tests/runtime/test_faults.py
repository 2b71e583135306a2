"""Fault injection (hpcfed.runtime.faults): which faults of a finished run did not fire, and why."""
from __future__ import annotations

from hpcfed.config import FaultsConfig
from hpcfed.runtime.faults import not_fired


def test_a_finished_run_names_each_fault_that_did_not_fire_and_why():
    faults = FaultsConfig(raise_at=((1, 0),), nan_at=((2, 1), (3, 1)), blowup_at=((4, 9),), kill_rank=(5, 1),
                          signal_at=(7, 15), kill_in_checkpoint=2)
    lines = not_fired(faults, trained={(1, 0), (2, 1)}, rounds_played=5, ranks=3, checkpoint_every=2)
    assert lines == [
        "faults.nan_at [3, 1] did not fire: client 3 did not train in round 1 (not sampled, offline or no subnet "
        "fitted; clients/ lists who trained)",
        "faults.blowup_at [4, 9] did not fire: round 9 was not played (the run played rounds 0-4)",
        "faults.kill_rank [5, 1] did not fire: the run had ranks 0-2",
        "faults.signal_at [7, 15] did not fire: round 7 was not played (the run played rounds 0-4)",
        "faults.kill_in_checkpoint 2 did not fire: no checkpoint follows round 2 (checkpoint.every = 2)"]
    assert not_fired(FaultsConfig(nan_at=((2, 1),)), {(2, 1)}, 5, 3, 2) == []
    assert not_fired(FaultsConfig(), set(), 5, 3, 2) == []
