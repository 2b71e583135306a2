"""tools/reproduce.py: every claim runs end to end at its --quick size (numbers meaningless, shape checked)."""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys

import pytest

from tests.e2e.test_tools import assert_progress_before_the_first_run_ends
from tests.launch import ROOT

TOOL = [sys.executable, str(ROOT / "tools" / "reproduce.py")]


@pytest.mark.parametrize("claim, figures", [
    ("superfed-cost", {"client MACs ratio", "bytes ratio", "min gap (points)"}),
    ("superfed-ablation", {"uniform - maxnet (points)", "fixed_beta - maxnet (points)", "beta0_05 - maxnet (points)"}),
    ("efedsup", {"bytes down ratio", "bytes up ratio", "largest subnet gap (points)"}),
    ("fednas-cost", {"search client MACs ratio", "search client-rounds ratio", "Kendall tau, step-0 rankings",
                     "chosen test accuracy, FedNAS - straightforward (points)",
                     "chosen retrained alone, FedNAS - straightforward (points)"}),
    ("fednas-rank", {"Kendall tau, fednas vs reference", "Kendall tau, straightforward vs reference",
                     "reference test standard error (points)", "candidates"}),
    ("fednas-random", {"FedNAS - random mean (points)", "random architectures beaten (fraction)"}),
    ("distreal-tta", {"fastest baseline's time / DISTREAL's", "DISTREAL final - best baseline final (points)",
                      "distreal final accuracy (%)", "fedavg_wait time to 60% (virtual s)"}),
])
def test_a_claim_runs_quick_and_reports_each_setting_beside_the_paper(tmp_path, claim, figures):
    # two runs at a time (tests/experiments/test_jobruns.py checks the rest of --parallel with fake runs); the
    # ablation's four settings differ only in two job values: one of them keeps CI a minute shorter
    only = ["--parallel", "2", *(["--settings", "alpha100-none"] if claim == "superfed-ablation" else [])]
    proc = subprocess.run([*TOOL, claim, "--quick", *only, "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=900, cwd=ROOT, env={**os.environ, "HPCFED_WATCH_EVERY": "0.5"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_progress_before_the_first_run_ends(proc.stdout, "reproduce")
    assert "the paper:" in proc.stdout
    with open(tmp_path / claim / "quick" / "claim.csv") as f:
        rows = list(csv.DictReader(f))
    assert figures <= {r["figure"] for r in rows}
    assert all(r["seeds"] == "1" and (float(r["std"]) == 0.0 or math.isnan(float(r["mean"]))) for r in rows)
    assert all(math.isnan(float(r["ci95_low"])) for r in rows)    # one seed: no interval
    assert all(float(r["per_seed"]) == float(r["mean"]) or math.isnan(float(r["mean"])) for r in rows)
    assert (tmp_path / claim / "quick" / "claim.png").stat().st_size > 0
    if claim == "superfed-cost":   # k FedAvg runs cost more than one SuperFed run of the same clients
        ratio = {r["setting"]: float(r["mean"]) for r in rows if r["figure"] == "client MACs ratio"}
        assert set(ratio) == {"k4", "k9"} and 1 < ratio["k4"] < ratio["k9"]
    if claim == "fednas-cost":     # training every candidate on every client costs more than FedNAS's search
        assert {r["figure"]: float(r["mean"]) for r in rows}["search client MACs ratio"] > 1
    if claim.startswith("fednas"):   # the FedNAS claims share their runs; follow-ups go beside them
        seed = tmp_path / "fednas" / "quick" / "deformed16" / "seed0"
        extra = {"fednas-cost": "fednas_retrain", "fednas-rank": "reference_1", "fednas-random": "random_2"}[claim]
        assert (seed / "fednas.h5").exists() and (seed / f"{extra}.h5").exists()
    again = subprocess.run([*TOOL, claim, "--quick", *only, "--out", str(tmp_path)], capture_output=True, text=True,
                           timeout=300, cwd=ROOT)
    assert again.returncode == 0 and "done in" not in again.stdout     # finished runs are reused


@pytest.mark.parametrize("args, named", [
    (["nosuchclaim"], "accepted superfed-cost"),
    (["efedsup", "--seeds", "0"], "--seeds 0"),
    (["efedsup", "--parallel", "0"], "--parallel 0"),
])
def test_bad_claims_are_one_line_errors(args, named):
    proc = subprocess.run([*TOOL, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and named in proc.stderr


def test_list_names_every_claim():
    proc = subprocess.run([*TOOL, "--list"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0
    assert all(c in proc.stdout for c in ("superfed-cost", "superfed-ablation", "efedsup", "fednas-cost", "distreal-tta"))
