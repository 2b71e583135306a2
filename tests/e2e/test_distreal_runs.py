"""DISTREAL (hpcfed.strategies.distreal, hpcfed.strategies.distreal.dse): the per-batch choice, the server's prediction,
the design-space exploration, rank invariance and resume, bad input."""
from __future__ import annotations

import json
import signal

import h5py
import numpy as np

from tests.launch import run_hpcfed
from tests.strategies.test_distreal import JOB


def test_the_ledger_counts_what_each_client_trained_and_the_run_is_rank_invariant_and_resumable(tmp_path):
    serial, mpi, resumed = tmp_path / "serial.h5", tmp_path / "mpi.h5", tmp_path / "resumed.h5"
    assert run_hpcfed([*JOB, "--out", str(serial)]).returncode == 0
    with h5py.File(serial, "r") as f:
        macs, made = f["clients/macs"][()], f["clients/made_deadline"][()]
        full = f["eval/subnet_macs"][0] * 3
        samples = f["clients/samples"][()]
        table = f["dropout_table/entries/R"][()]
        sha = f.attrs["final_model_sha256"]
    assert len(table) >= 2 and table[-1] == 1.0
    ratio = macs[made] / (full * samples[made])   # each client's MACs over the full network's
    assert (ratio < 0.999).any() and (ratio <= 1 + 1e-9).all()    # the deadline made some clients drop filters
    assert run_hpcfed([*JOB, "--out", str(mpi)], ranks=3).returncode == 0
    killed = run_hpcfed([*JOB, "--out", str(resumed), "--set", "checkpoint.every=1", "--set", "faults.kill_rank=[0,2]"])
    assert killed.returncode == -signal.SIGKILL
    assert run_hpcfed([*JOB, "--out", str(resumed), "--set", "checkpoint.every=1", "--resume"], ranks=3).returncode == 0
    for other in (mpi, resumed):
        with h5py.File(other, "r") as f:
            assert f.attrs["final_model_sha256"] == sha
            np.testing.assert_array_equal(f["clients/macs"][()], macs)


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"format": 1, "groups": [], "choices": [0.0], "entries": []}))
    trace = tmp_path / "trace.csv"
    trace.write_text("client,start_s,availability\n0,0,-0.5\n")
    for extra, said in [
        (["strategy.distreal.rates=[0,0.5,1.0]"], "strategy.distreal.rates"),
        ([f"strategy.distreal.table={empty}"], "the table is empty"),
        (["devices.availability=trace", f"devices.trace={trace}"], "trace"),
        (["clients.deadline_s=0.00001"], "no device meets it even with the cheapest dropout vector"),
        (["clients.deadline_s=0"], "clients.deadline_s"),
    ]:
        out = tmp_path / "run.h5"
        proc = run_hpcfed([*JOB, *(x for e in extra for x in ("--set", e)), "--out", str(out)])
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and said in lines[0], (extra, proc.stderr)
        assert not out.exists()
