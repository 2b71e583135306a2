"""End-to-end runs of the real program: schema of the results, rank-count invariance, bad input."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from hpcfed.assembly.job import default_job, load_job
from hpcfed.assembly.parts import build_space, load_data
from hpcfed.learning.training import batch_lengths, min_batch
from hpcfed.record.reading import read_results
from hpcfed.record.schema import CLIENT_COLUMNS, ROUND_COLUMNS
from hpcfed.strategies import make_strategy
from hpcfed.supernet import Arch, SubnetSpec, cost
from tests.fakes import slot_of
from tests.launch import ROOT, TINY, run_hpcfed


def test_tiny_job_writes_the_documented_results_file(tmp_path):
    out = tmp_path / "run.h5"
    proc = run_hpcfed([*TINY, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stdout.splitlines() if line.startswith("round ")][-1].startswith("round    3/3")
    assert "cost ledger" in proc.stdout and "reference subnets" in proc.stdout
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "finished"
        job = load_job(None, [a for a in TINY if a != "--set"])
        assert yaml.safe_load(f.attrs["config_yaml"]) == yaml.safe_load(job.to_yaml())
        assert len(f.attrs["final_model_sha256"]) == 64
        assert f.attrs["normalization"] == "bn"
        assert set(f["rounds"]) == set(ROUND_COLUMNS) and set(f["clients"]) == set(CLIENT_COLUMNS)
        assert list(f["rounds/round"][()]) == [0, 1, 2]
        assert np.all(np.diff(f["rounds/virtual_time_s"][()]) > 0)
        assert f["rounds/macs"][()].min() > 0 and f["rounds/bytes_down"][()].min() > 0
        assert np.isfinite(f["rounds/train_loss"][()]).all()
        made = f["clients/made_deadline"][()]
        assert made.sum() == f["rounds/clients"][()].sum()
        assert np.all(f["clients/arch_id"][()][made] < len(f["architectures/json"]))
        acc = f["eval/accuracy"][()]
        assert acc.shape == (1, len(f["eval/subnet_names"])) and np.all((0 <= acc) & (acc <= 1))
        assert np.all(np.diff(f["eval/subnet_macs"][()]) >= 0)


def test_tools_summarize_and_plot_a_run(tmp_path):
    out = tmp_path / "run.h5"
    assert run_hpcfed([*TINY, "--out", str(out)]).returncode == 0
    summary = subprocess.run([sys.executable, "tools/summarize.py", str(out)], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert summary.returncode == 0 and "cost ledger" in summary.stdout, summary.stderr
    with h5py.File(out, "r") as f:
        for name, acc in zip(f["eval/subnet_names"].asstr()[()], f["eval/accuracy"][-1]):
            assert f"{acc:.4f}" in [line.split()[-1] for line in summary.stdout.splitlines() if name in line]
    plot = subprocess.run([sys.executable, "tools/plot.py", str(out), "--out-dir", str(tmp_path / "png")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert plot.returncode == 0, plot.stderr
    for png in plot.stdout.split():
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([sys.executable, "tools/summarize.py", str(tmp_path / "missing.h5")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_same_job_gives_bit_identical_results_serially_and_under_2_3_and_5_ranks(tmp_path):
    results = {}
    for ranks in (0, 2, 3, 5):
        out = tmp_path / f"n{ranks}.h5"
        proc = run_hpcfed([*TINY, "--out", str(out)], ranks=ranks)
        assert proc.returncode == 0, proc.stderr
        with h5py.File(out, "r") as f:
            results[ranks] = (f.attrs["final_model_sha256"], f["eval/accuracy"][()], f["rounds/train_loss"][()])
    for ranks in (2, 3, 5):
        assert results[ranks][0] == results[0][0]
        np.testing.assert_array_equal(results[ranks][1], results[0][1])
        np.testing.assert_array_equal(results[ranks][2], results[0][2])


def test_mobilenet_job_runs_and_gives_the_same_results_under_2_ranks(tmp_path):
    results = {}
    for ranks in (0, 2):
        out = tmp_path / f"mobilenet{ranks}.h5"
        proc = run_hpcfed(["jobs/mobilenet_digits.yaml", *TINY, "--out", str(out)], ranks=ranks)
        assert proc.returncode == 0, proc.stderr
        with h5py.File(out, "r") as f:
            assert f.attrs["status"] == "finished" and f.attrs["normalization"] == "rms"
            assert yaml.safe_load(f.attrs["config_yaml"])["model"]["space"] == "mobilenet"
            assert list(f["eval/subnet_names"].asstr()[()])[-1] == "d2,2-e1,1,1,1-k7,7,7,7-w1"
            assert np.isfinite(f["rounds/train_loss"][()]).all()
            results[ranks] = (f.attrs["final_model_sha256"], f["eval/accuracy"][()])
    assert results[2][0] == results[0][0]
    np.testing.assert_array_equal(results[2][1], results[0][1])


def test_dry_run_checks_everything_and_writes_nothing(tmp_path):
    out = tmp_path / "dry.h5"
    proc = run_hpcfed([*TINY, "--out", str(out), "--dry-run"])
    assert proc.returncode == 0, proc.stderr
    assert "dry run OK" in proc.stdout and not out.exists()


def test_default_job_file_matches_the_built_in_default():
    assert load_job("jobs/default.yaml") == default_job()


def test_a_process_without_launcher_starts_mpi_alone_and_leaves_the_environment_as_it_was():
    """hpcfed.runtime.comm picks Open MPI's self transport for a singleton, then takes the choice back so
    that processes it launches (mpirun, tools) do not inherit it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMPI_MCA_btl", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK")}
    code = ("import os; from hpcfed.runtime.comm import Comm; c = Comm(); "
            "print(c.size, os.environ.get('OMPI_MCA_btl', 'unset'))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "unset"]


def test_a_virtual_time_budget_ends_the_run_after_the_round_that_reaches_it(tmp_path):
    import h5py

    from tests.launch import TINY, run_hpcfed
    out = tmp_path / "run.h5"
    proc = run_hpcfed([*TINY, "--set", "rounds=30", "--set", "virtual_time_s=0.5", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        clock = f["rounds/virtual_time_s"][()]
        assert clock[-1] >= 0.5 > clock[-2] and len(clock) < 30
        assert f.attrs["stop_reason"].startswith("virtual time budget of 0.5 s reached")
        assert f["eval/round"][-1] == len(clock) - 1      # the last round played is evaluated


def test_a_run_reports_the_same_accuracies_with_any_eval_batch_size(tmp_path):
    results = []
    for size in (1, 16, 500):
        out = tmp_path / f"eval{size}.h5"
        proc = run_hpcfed([*TINY, "--set", f"eval.batch_size={size}", "--out", str(out)])
        assert proc.returncode == 0, proc.stderr
        with h5py.File(out, "r") as f:
            results.append((f["eval/accuracy"][()], f.attrs["final_model_sha256"], f.attrs["calibration"]))
    assert all(np.array_equal(results[0][0], r[0]) and results[0][1] == r[1] for r in results[1:])
    assert "500 training samples" in results[0][2]


# --- end to end: the cost ledger counts the schedule ------------------------------------------------
@pytest.mark.parametrize("strategy", ["fedsup", "efedsup", "fjord"])
def test_a_run_logs_the_schedules_macs_and_the_slices_bytes(tmp_path, strategy):
    from hpcfed.run import main  # noqa: PLC0415 (the entry point installs signal handlers)
    out = tmp_path / f"{strategy}.h5"
    args = ["--set", f"strategy.name={strategy}", "--set", "rounds=2", "--set", "clients.total=8",
            "--set", "clients.per_round=4", "--set", "train.local_epochs=1", "--set", "model.stem=8",
            "--set", "model.widths=[8,16]", "--set", "model.width_choices=[0.5,1.0]",
            "--set", "devices.memory_mb=[0.2,1]", "--set", "eval.every=2", "--out", str(out)]
    assert main(args) == 0
    res = read_results(out)
    job = load_job(None, [a for a in args[:-2] if a != "--set"])
    space = build_space(job, (1, 8, 8), 10)
    strat = make_strategy(job, space)
    per_client = load_data(job).samples_per_client()
    archs = [Arch.from_json(j) for j in res["architectures"]["json"]]
    c = res["clients"]
    trained = np.flatnonzero(c["made_deadline"])
    assert len(trained) >= 4
    sizes = set()
    for i in trained:
        arch = archs[c["arch_id"][i]]
        sizes.add(arch)
        assert c["bytes_down"][i] == c["bytes_up"][i] == 4 * cost(space, arch).params
        n = int(per_client[c["client"][i]])
        schedule = strat.schedule(int(c["round"][i]), slot_of(int(c["client"][i]), n), SubnetSpec(arch))
        lengths = batch_lengths(n, job.train, min_batch(space.norm))
        assert c["samples"][i] == sum(lengths)
        want = sum(n * sum(cost(space, s.arch).train_macs(1) for s in step) for n, step in zip(lengths, schedule))
        assert c["macs"][i] == pytest.approx(want, rel=1e-12)
        assert c["macs"][i] > cost(space, arch).train_macs(int(c["samples"][i])) or strategy == "fjord"
    if strategy == "fedsup":
        assert sizes == {space.largest()}
    else:
        assert len(sizes) > 1      # the memory range spreads the clients over tiers


def test_out_creates_its_folder_and_a_dry_run_creates_nothing(tmp_path):
    dry = tmp_path / "dry" / "a.h5"
    proc = run_hpcfed([*TINY, "--out", str(dry), "--dry-run"])
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "dry").exists()
    out = tmp_path / "new" / "deeper" / "a.h5"
    proc = run_hpcfed([*TINY, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "finished"
    blocked = tmp_path / "file"
    blocked.write_text("")
    proc = run_hpcfed([*TINY, "--out", str(blocked / "a.h5")])
    assert proc.returncode == 2 and "is a file, so folder" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
