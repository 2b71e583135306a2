"""The post-training search (tools/search.py on hpcfed.search and hpcfed.search.post_training): budgets, the
references it must match, the test set it must not read, determinism, MPI invariance, bad input."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hpcfed.commands import search as search_command
from hpcfed.search import post_training as post_search
from hpcfed.search.trained import TrainedRun, open_run
from hpcfed.supernet import cost
from tests.fakes import Sealed
from tests.launch import MPI_ENV, ROOT, TINY, mpirun, run_hpcfed

SEARCH = ["--population", "8", "--generations", "2", "--seed", "3"]


def run_tool(args: list[str], ranks: int = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "tools/search.py", *args]
    if ranks:
        cmd = [mpirun(), "-n", str(ranks), *cmd]
    env = {**os.environ, **MPI_ENV, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def serial(trained, tmp_path_factory) -> list[dict]:
    path, budget = trained
    out = tmp_path_factory.mktemp("serial")
    proc = run_tool([str(path), "--macs", str(budget), *SEARCH, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert "generation 2/2" in proc.stdout and (out / "front.png").stat().st_size > 0
    return read_csv(out / "front.csv")


def test_the_search_runs_with_the_test_set_sealed_and_reads_it_only_to_report(trained, serial, tmp_path,
                                                                             monkeypatch, capsys):
    """The whole tool in this process with a data set whose test images and labels raise when touched
    (their shape stays readable: it sizes the network); the report step is swapped for a stub that
    checks the search is over, and the front comes out the same as the serial run's."""
    path, budget = trained
    work = tmp_path / "run.h5"
    work.write_bytes(path.read_bytes())
    data_of = TrainedRun.data

    def sealed_data(self):
        data = data_of(self)
        object.__setattr__(data, "test_inputs", Sealed(data.test_inputs.shape))   # x_test normalises these
        object.__setattr__(data, "y_test", Sealed(data.y_test.shape))
        return data

    reported = []

    def stub(network, archs, data, batch_size, calibration, precision):
        assert "generation 2/2" in capsys.readouterr().out   # the search is over
        reported.extend(archs)
        return {a: float("nan") for a in archs}

    monkeypatch.setattr(TrainedRun, "data", sealed_data)
    monkeypatch.setattr(post_search, "report_test_accuracy", stub)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    assert search_command.main([str(work), "--macs", str(budget), *SEARCH, "--out", str(tmp_path / "out")]) == 0
    rows = read_csv(tmp_path / "out" / "front.csv")
    key = lambda r: (r["role"], r["name"], r["macs"], r["params"], r["val_accuracy"])  # noqa: E731
    assert [key(r) for r in rows] == [key(r) for r in serial]
    assert {r["arch"] for r in rows} == {a.to_json() for a in reported}


def test_front_within_budget_at_least_the_best_reference_same_under_mpirun_and_recorded(trained, serial, tmp_path):
    path, budget = trained
    front = [r for r in serial if r["role"] == "front"]
    references = [r for r in serial if r["role"] == "reference"]
    assert front and references and all(int(r["macs"]) <= budget for r in front)
    assert max(float(r["val_accuracy"]) for r in front) >= max(float(r["val_accuracy"]) for r in references)
    assert all(0 <= float(r["test_accuracy"]) <= 1 for r in serial)
    proc = run_tool([str(path), "--macs", str(budget), *SEARCH, "--out", str(tmp_path)], ranks=3)
    assert proc.returncode == 0, proc.stderr
    assert "on 3 ranks" in proc.stdout
    assert read_csv(tmp_path / "front.csv") == serial
    with h5py.File(path, "r") as f:   # the MPI run's search replaced the serial one's
        group = f["post_search"]
        assert group.attrs["world_size"] == 3 and group.attrs["budget_macs"] == budget
        assert group.attrs["objective"] == "pareto" and "server validation split" in group.attrs["validation"]
        assert list(group["name"].asstr()[()]) == [r["name"] for r in front]
        np.testing.assert_array_equal(group["val_accuracy"][()], [float(r["val_accuracy"]) for r in front])
        assert list(group["references/name"].asstr()[()]) == [r["name"] for r in references]


def test_objective_best_keeps_the_most_accurate_member(trained, serial, tmp_path):
    path, budget = trained
    work = tmp_path / "run.h5"
    work.write_bytes(path.read_bytes())
    proc = run_tool([str(work), "--macs", str(budget), *SEARCH, "--objective", "best", "--out", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    best = [r for r in read_csv(tmp_path / "front.csv") if r["role"] == "front"]
    assert best == [r for r in serial if r["role"] == "front"][-1:]
    with h5py.File(work, "r") as f:
        assert f["post_search"].attrs["objective"] == "best" and len(f["post_search/name"]) == 1


def test_a_front_member_exports_as_a_deployable_subnet(trained, serial, tmp_path):
    path, budget = trained
    work = tmp_path / "run.h5"
    work.write_bytes(path.read_bytes())
    assert run_tool([str(work), "--macs", str(budget), *SEARCH, "--out", str(tmp_path)]).returncode == 0
    front = [r for r in serial if r["role"] == "front"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "tools/export.py", str(work), "--front", str(len(front) - 1),
                           "--out", str(tmp_path / "best.pt2")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    described = json.loads((tmp_path / "best.json").read_text())
    assert described["name"] == front[-1]["name"] and described["macs_per_sample"] == int(front[-1]["macs"])


def test_bad_input_is_one_line_exit_2_and_writes_nothing(trained, tmp_path, monkeypatch, capsys):
    path, _ = trained
    run = tmp_path / "run.h5"
    run.write_bytes(path.read_bytes())
    (tmp_path / "text.h5").write_text("not hdf5")
    (tmp_path / "file").write_text("a file")
    with h5py.File(tmp_path / "running.h5", "w") as f:
        f.attrs["config_yaml"] = "rounds: 1\n"
        f.create_group("eval")
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    tool = search_command
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cases = {(str(tmp_path / "missing.h5"), "--macs", "1e9"): "does not exist",
             (str(tmp_path / "text.h5"), "--macs", "1e9"): "cannot be read as HDF5",
             (str(tmp_path / "running.h5"), "--macs", "1e9"): "holds no trained supernet",
             (str(run), "--macs", "10"): "below the smallest subnet's",
             (str(run), "--macs", "1e9", "--params", "10"): "below the smallest subnet's",
             (str(run), "--macs", "1e9", "--population", "0"): "--population 0",
             (str(run), "--macs", "1e9", "--generations", "-1"): "--generations -1",
             (str(run), "--macs", "1e9", "--objective", "fastest"): "accepted pareto | best",
             (str(run), "--macs", "1e9", "--out", str(tmp_path / "file")): "is a file",
             (str(run),): "required: --macs"}
    for argv, message in cases.items():
        assert tool.main([*argv, "--out", str(tmp_path / "out")] if "--out" not in argv else list(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith("search: error: ") and message in err and err.count("\n") == 1, (argv, err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, float]:
    """A tiny finished run with a server validation split, and a budget halfway up its references' MACs."""
    out = tmp_path_factory.mktemp("search") / "run.h5"
    proc = run_hpcfed([*TINY, "--set", "data.server_val_fraction=0.1", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    run = open_run(out)
    space = run.space(run.data())
    macs = sorted(cost(space, arch).macs for _, arch, _ in run.references)
    return out, (macs[0] + macs[-1]) / 2


def test_without_a_server_split_candidates_are_scored_on_client_splits_or_training_samples_outside_calibration(
        trained):
    run = open_run(trained[0])
    data = run.data()
    x, y, source = post_search.validation_set(run, data)
    assert torch.equal(x, data.x_val) and y is data.y_val and source.startswith("server validation split")
    with_clients = replace(run, job=replace(run.job, data=replace(run.job.data, server_val_fraction=0.0,
                                                                  client_val_fraction=0.2)))
    data = with_clients.data()
    x, y, source = post_search.validation_set(with_clients, data)
    pooled = {bytes(row.numpy()) for k in range(data.num_clients) for row in data.client_validation(k)[0]}
    assert len(y) == min(post_search.FALLBACK_SAMPLES, len(pooled)) and {bytes(r.numpy()) for r in x} <= pooled
    assert source.startswith("client validation splits")
    bare = replace(run, job=replace(run.job, data=replace(run.job.data, server_val_fraction=0.0)))
    data = bare.data()
    x, y, source = post_search.validation_set(bare, data)
    calibration = {bytes(r.numpy()) for r in bare.calibration(data)}
    assert 0 < len(y) <= post_search.FALLBACK_SAMPLES and not calibration & {bytes(r.numpy()) for r in x}
    assert "optimistic" in source and "server_val_fraction > 0" in source
