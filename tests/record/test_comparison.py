"""Time to a target accuracy: hpcfed.record.report.time_to_target, compare.py --target and plot.py with several runs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hpcfed.errors import HpcfedError
from hpcfed.record.comparison import COMPARISON_COLUMNS, comparison_rows, parse_target, time_to_target


def hand_made() -> dict:
    """Six rounds, 10 virtual seconds each; evaluations after rounds 2, 4 and 6 (eval/round 1, 3, 5)."""
    return {"attrs": {"strategy": "fedavg"},
            "rounds": {"round": np.arange(6), "virtual_time_s": 10.0 * np.arange(1, 7), "macs": np.ones(6),
                       "bytes_down": np.ones(6, np.int64), "bytes_up": np.ones(6, np.int64),
                       "wall_time_s": np.arange(6.0)},
            "eval": {"round": np.array([1, 3, 5]), "subnet_names": np.array(["late", "never", "exact"], dtype=object),
                     "subnet_macs": np.array([3, 2, 1]), "subnet_params": np.array([30, 20, 10]),
                     "accuracy": np.array([[0.2, 0.1, 0.5],
                                           [0.6, 0.2, 0.4],
                                           [0.4, 0.3, 0.9]])}}


def test_time_to_target_is_the_virtual_time_of_the_first_evaluation_at_or_above_it():
    late, never, exact = time_to_target(hand_made(), 0.5)
    assert late == (40.0, 4)   # 2nd evaluation (eval/round 3): 4 rounds done, 40 s; the dip after it is ignored
    assert math.isnan(never[0]) and math.isnan(never[1])
    assert exact == (20.0, 2)             # exactly the target counts as reached
    assert [t for t, _ in time_to_target(hand_made(), 0.05)] == [20.0, 20.0, 20.0]
    with pytest.raises(HpcfedError):
        time_to_target(hand_made(), 0.0)


def test_comparison_rows_carry_the_time_to_target_only_when_given_one():
    rows = comparison_rows("m", hand_made(), target=0.5)
    assert all(list(r) == list(COMPARISON_COLUMNS) for r in rows)
    assert [(r["time_to_target_s"], r["round_to_target"]) for r in rows][::2] == [(40.0, 4), (20.0, 2)]
    for r in comparison_rows("m", hand_made()):      # tools/reproduce.py's call
        assert math.isnan(r["time_to_target_s"]) and math.isnan(r["round_to_target"])
    search = hand_made()      # a FedNAS run: no reference subnets; its family's accuracy is read once, at the end
    search["eval"].update(subnet_names=np.array([], dtype=object), subnet_macs=np.array([], np.int64),
                          subnet_params=np.array([], np.int64), accuracy=np.zeros((3, 0)))
    search["attrs"] = {**search["attrs"], "strategy": "fednas"}   # its strategy reports the family (reported_subnets)
    search["search"] = {"family": {"role": np.array(["chosen"], dtype=object),
                                   "arch_name": np.array(["x"], dtype=object), "macs_per_sample": np.array([5]),
                                   "params": np.array([50]), "test_accuracy": np.array([0.95])}}
    [row] = comparison_rows("fednas", search, target=0.5)
    assert row["accuracy"] == 0.95 and math.isnan(row["time_to_target_s"]) and math.isnan(row["round_to_target"])


@pytest.mark.parametrize("text, value", [("0.9", 0.9), ("1", 1.0), ("1e-3", 0.001)])
def test_parse_target_accepts_a_fraction(text, value):
    assert parse_target(text) == value


@pytest.mark.parametrize("text", ["85", "0", "-0.5", "nan", "abc", ""])
def test_parse_target_refuses_anything_else(text):
    with pytest.raises(HpcfedError, match=r"accepted .*\(0, 1\]"):
        parse_target(text)
