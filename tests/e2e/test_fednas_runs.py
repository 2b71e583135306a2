"""FedNAS (hpcfed.strategies.fednas, hpcfed.strategies.fednas.candidates): candidates, groups, dropping, stop rules,
no test-set decisions, rank invariance, resume, bad input."""
from __future__ import annotations

import signal
import sys

import h5py
import numpy as np
import pytest

from hpcfed.record.reading import read_results
from tests.launch import ROOT, run_hpcfed
from tests.strategies.test_fednas import FEDNAS


def search_tables(path) -> dict:
    with h5py.File(path, "r") as f:
        out = {"sha": f.attrs["final_model_sha256"], "chosen": f.attrs["chosen_arch"]}
        for group in ("validation", "clients", "rounds"):
            out.update({f"{group}/{k}": f[group][k][()] for k in f[group] if k not in
                        ("rank", "wall_time_s", "round_wall_s", "train_wall_s", "eval_wall_s", "mpi_bytes", "slice_bytes")})
        for table in ("candidates", "scores", "decisions", "steps"):
            out.update({f"search/{table}/{k}": v[()] for k, v in f[f"search/{table}"].items()})
    return out


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fednas") / "serial.h5"
    proc = run_hpcfed([*FEDNAS, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert "search finished: target budget met" in proc.stdout and "step 0:" in proc.stdout
    return out


def test_a_search_run_records_every_candidate_and_a_dropped_one_never_trains_again(serial_run):
    results = read_results(serial_run)
    search, clients = results["search"], results["clients"]
    cand = search["candidates"]
    assert search["attrs"]["finished"] and search["attrs"]["steps"] >= 2 and len(cand["model"]) >= 10
    for model, dropped, status in zip(cand["model"], cand["dropped_round"], cand["status"]):
        rounds = clients["round"][clients["model"] == model]
        if status == "dropped":   # judged only after it trained, never trained after
            assert dropped >= 0 and len(rounds) and rounds.max() <= dropped
    assert (cand["cost"] <= cand["budget"]).any() and np.isfinite(search["family"]["test_accuracy"]).all()
    trained = {m: ((clients["model"] == m) & clients["made_deadline"]).sum() for m in cand["model"]}
    np.testing.assert_array_equal(cand["client_rounds"], [trained[m] for m in cand["model"]])
    assert search["attrs"]["search_client_rounds"] == cand["client_rounds"].sum()
    assert len(results["eval"]["subnet_names"]) == 0    # the test set is not read during the run
    assert results["attrs"]["chosen_model"] == search["family"]["model"][-1]
    # every decision is in the file with its evidence: each drop, each step's winner and losers
    decisions, steps = search["decisions"], search["steps"]
    for model, status, dropped in zip(cand["model"], cand["status"], cand["dropped_round"]):
        mine = decisions["action"][decisions["model"] == model]
        assert list(mine) == {"dropped": ["dropped"], "lost": ["lost"]}.get(status, list(mine)), model
        if status == "winner":
            assert list(mine) in (["won"], ["won, unresolved"])
    drops = decisions["action"] == "dropped"
    assert (decisions["gap_in_se"][drops] > search["attrs"]["z"]).all()
    assert (decisions["client_epochs"][drops] >= search["attrs"]["min_client_epochs"]).all()
    assert len(steps["step"]) == search["attrs"]["steps"] and np.isin(steps["winner"], cand["model"]).all()
    for winner, resolved in zip(steps["winner"], steps["resolved"]):   # resolved: ahead of every loser by z SE
        row = (decisions["model"] == winner) & np.char.startswith(decisions["action"].astype(str), "won")
        losers = (decisions["action"] == "lost") & (decisions["round"] == decisions["round"][row][0])
        assert resolved == (decisions["gap_in_se"][losers] > search["attrs"]["z"]).all()
    for resolved, reason in zip(steps["resolved"], steps["reason"]):   # (an unresolved step: tests/strategies)
        assert reason in ("one candidate left", "max_rounds") and (resolved or reason == "max_rounds")


def test_the_search_is_bit_identical_under_mpirun_and_after_a_kill_and_resume_mid_step(serial_run, tmp_path):
    expected = search_tables(serial_run)
    out = tmp_path / "mpi.h5"
    assert run_hpcfed([*FEDNAS, "--out", str(out)], ranks=3).returncode == 0
    got = search_tables(out)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    resumed = tmp_path / "resumed.h5"
    killed = run_hpcfed([*FEDNAS, "--out", str(resumed), "--set", "checkpoint.every=2", "--set", "faults.kill_rank=[0,5]"])
    assert killed.returncode == -signal.SIGKILL
    with h5py.File(resumed.with_name("resumed.h5.ckpt"), "r") as f:
        assert len(f["models"]) > 3    # the checkpoint was taken amid step 0 with candidates alive
    proc = run_hpcfed([*FEDNAS, "--out", str(resumed), "--set", "checkpoint.every=2", "--resume"], ranks=3)
    assert proc.returncode == 0, proc.stderr
    got = search_tables(resumed)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


SEALED = """
import dataclasses, sys
import numpy as np
import hpcfed.assembly.startup as startup
import hpcfed.run as run
from hpcfed.strategies.fednas import strategy as fednas, report
from tests.fakes import Sealed   # a test tensor whose shape alone may be read
load = startup.load_data
def sealed(job):
    data = load(job)
    return dataclasses.replace(data, test_inputs=Sealed(data.test_inputs.shape), y_test=Sealed(data.y_test.shape))
def unreported(self, test_accuracy):   # the report would read the test set: only after every decision
    assert self.state["phase"] == "done", self.state["phase"]
    return report.search_report(self, lambda members: np.full(len(members), np.nan))
startup.load_data = sealed
fednas.FedNAS.report = unreported
sys.exit(run.main(sys.argv[1:]))
"""


def test_the_search_decides_with_the_test_set_sealed(serial_run, tmp_path):
    import subprocess
    out = tmp_path / "sealed.h5"
    proc = subprocess.run([sys.executable, "-c", SEALED, *FEDNAS, "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected, got = search_tables(serial_run), search_tables(out)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
    assert np.isnan(read_results(out)["search"]["family"]["test_accuracy"]).all()   # the stub reported


@pytest.mark.parametrize("setting, message", [
    (["strategy.fednas.target_value=10"], "below the smallest subnet of the space"),
    (["strategy.fednas.target_value=1e12"], "is not below the starting model"),
    (["model.expand_choices=[1.0]", "model.kernel_choices=[3]", "model.depths=[1,1]"], "holds one architecture"),
    (["data.client_val_fraction=0.0"], "data.client_val_fraction"),
    (["strategy.fednas.keep=0"], "strategy.fednas.keep"),
    (["strategy.fednas.max_rounds=1", "strategy.fednas.eval_every=2"], "strategy.fednas.max_rounds"),
])
def test_bad_search_input_is_one_line_exit_2_and_writes_nothing(tmp_path, setting, message):
    out = tmp_path / "run.h5"
    proc = run_hpcfed([*FEDNAS, *(x for s in setting for x in ("--set", s)), "--out", str(out)])
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not out.exists() and not out.with_name("run.h5.ckpt").exists()


def test_the_chosen_architecture_exports_from_the_chosen_model(serial_run, tmp_path):
    import json
    import subprocess

    from hpcfed.supernet import Arch
    attrs = read_results(serial_run)["attrs"]
    name = Arch.from_json(attrs["chosen_arch"]).name
    proc = subprocess.run([sys.executable, "tools/export.py", str(serial_run), "--arch", name, "--out",
                           str(tmp_path / "chosen.pt2")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    described = json.loads((tmp_path / "chosen.json").read_text())
    assert described["model"] == attrs["chosen_model"] and described["macs_per_sample"] == attrs["chosen_macs"]


def test_plot_draws_the_search_and_writes_no_empty_figure(serial_run, tmp_path):
    import subprocess
    proc = subprocess.run([sys.executable, "tools/plot.py", str(serial_run), "--out-dir", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(tmp_path / "serial-search.png")]   # no test evaluations: no accuracy figures
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serial-search.png"]
