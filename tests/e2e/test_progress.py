"""The progress line tells the truth (hpcfed.engine.server.Server.report_progress): it names the
reference subnets whose test accuracy it shows and the round they were evaluated after, and its ETA
follows how the run will end: all its rounds, a virtual-time budget, or a search's own end (unknown
until the search is over)."""
from __future__ import annotations

import re

import numpy as np

from tests.launch import TINY, run_hpcfed
from tests.strategies.test_fednas import FEDNAS

LINE = re.compile(r"^round +(\d+)/(\d+) \|.* \| +([\d.]+) s, ETA (<= )?([\d.]+ s|unknown)")


def progress(stdout: str) -> list[tuple[int, float, float | None]]:
    """(rounds played, elapsed seconds, ETA seconds or None = unknown) of each progress line."""
    rows = []
    for line in stdout.splitlines():
        m = LINE.match(line)
        if m:
            eta = None if m.group(5) == "unknown" else float(m.group(5).split()[0])
            rows.append((int(m.group(1)), float(m.group(3)), eta))
    return rows


def assert_eta_within_20_percent(rows, first: int, last: int):
    """The ETAs printed after rounds ``first``..``last`` against the time the run then really took to
    its last round: their median relative error (one round's wall time is noisy on a shared machine)."""
    errors = [abs(eta - (rows[-1][1] - elapsed)) / (rows[-1][1] - elapsed)
              for played, elapsed, eta in rows if first <= played <= last]
    assert errors and float(np.median(errors)) <= 0.2, (errors, rows)


TWELVE = [*TINY, "--set", "rounds=12", "--set", "eval.every=4"]


def test_the_line_names_the_evaluated_subnets_and_a_fixed_rounds_eta_holds():
    proc = run_hpcfed(TWELVE)
    assert proc.returncode == 0, proc.stderr
    names = re.search(r"in this order: (.*)", proc.stdout).group(1).split(", ")
    assert len(names) == 4 and names[-1].startswith("d2,2-e1,1,1,1")
    after_four = [line for line in proc.stdout.splitlines() if line.startswith("round    5/12")][0]
    assert re.search(r"test acc after round 4: (\d\.\d{3} ){3}\d\.\d{3} \|", after_four), after_four
    rows = progress(proc.stdout)
    assert [r[0] for r in rows] == list(range(1, 13)) and rows[-1][2] == 0.0
    assert_eta_within_20_percent(rows, 3, 8)


def test_a_virtual_time_budget_sets_the_eta():
    # a deadline makes every round last as long in virtual time, so the budget's round count is knowable
    proc = run_hpcfed([*TINY, "--set", "rounds=400", "--set", "clients.deadline_s=0.3", "--set", "virtual_time_s=6",
                       "--set", "eval.every=400"])
    assert proc.returncode == 0, proc.stderr
    rows = progress(proc.stdout)
    assert 15 <= len(rows) < 60 and "virtual time budget of 6 s reached" in proc.stdout
    assert_eta_within_20_percent(rows, len(rows) // 2, 3 * len(rows) // 4)


def test_a_search_says_its_eta_is_unknown_until_its_final_training():
    proc = run_hpcfed([*FEDNAS, "--set", "rounds=100", "--set", "strategy.fednas.finetune_rounds=30"])
    assert proc.returncode == 0, proc.stderr
    rows = progress(proc.stdout)
    known = [r for r in rows if r[2] is not None]
    # unknown while it searches; known from the round that ended the search (30 final rounds to go) on
    assert rows[0][2] is None and len(known) == 31 and all(r[2] is None for r in rows[:-31])
    assert_eta_within_20_percent(rows, known[20][0], known[25][0])   # the ETA's window: final training only
