"""hpcfed.experiments.jobruns.run_methods: several runs at once, and what a failure among them does."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hpcfed.errors import HpcfedError
from hpcfed.experiments import jobruns


def fake_runs(monkeypatch, fail: set[str], seconds: dict[str, float] | None = None):
    """Replace the real run by one that records its start and end (and how many ran at once)."""
    log, lock, running, most = [], threading.Lock(), [0], [0]

    def run_method(label, out, ranks, tool, watch=None):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            log.append(("start", label))
        time.sleep((seconds or {}).get(label, 0.05))
        with lock:
            running[0] -= 1
            log.append(("end", label))
        if label in fail:
            raise SystemExit(f"{tool}: error: method {label!r} failed")

    monkeypatch.setattr(jobruns, "run_method", run_method)
    return log, most


@pytest.mark.parametrize("parallel", [1, 3])
def test_every_run_goes_and_at_most_parallel_at_once(monkeypatch, parallel):
    log, most = fake_runs(monkeypatch, fail=set())
    runs = [(f"m{i}", Path("x")) for i in range(7)]
    jobruns.run_methods(runs, 0, "test", parallel)
    assert sorted(label for what, label in log if what == "end") == sorted(label for label, _ in runs)
    assert most[0] == parallel


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_failure_starts_nothing_more_lets_the_runs_under_way_end_and_ends_the_tool(monkeypatch, parallel):
    log, _ = fake_runs(monkeypatch, fail={"m1"}, seconds={"m0": 0.3, "m1": 0.02})
    with pytest.raises(SystemExit, match="'m1' failed"):
        jobruns.run_methods([(f"m{i}", Path("x")) for i in range(8)], 0, "test", parallel)
    started = [label for what, label in log if what == "start"]
    ended = [label for what, label in log if what == "end"]
    assert sorted(started) == sorted(ended)               # nothing left running
    assert started[:2] == ["m0", "m1"] and len(started) == 2      # m0 was under way when m1 failed


def test_parallel_below_one_is_refused():
    with pytest.raises(HpcfedError, match="--parallel 0: accepted"):
        jobruns.run_methods([], 0, "test", 0)
