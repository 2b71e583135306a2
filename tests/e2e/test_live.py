"""Live results: any process reads a running job's results file at any time (hpcfed.record.live), and the
job ends exactly as it does without readers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from hpcfed.commands import plot as plot_command
from hpcfed.commands import summarize as summarize_command
from hpcfed.errors import HpcfedError
from hpcfed.experiments.launch import MPI_ENV, mpirun
from hpcfed.record.reading import read_results
from tests.launch import ROOT, TINY, run_hpcfed
from tests.record.test_live import small_file

ROUNDS = 16


# a flush before every round's checkpoint: many write sessions for the readers to run into
JOB = [*TINY, "--set", f"rounds={ROUNDS}", "--set", "checkpoint.every=1", "--set", "eval.every=2"]


def start(args: list[str], ranks: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "hpcfed.run", *args]
    if ranks:
        cmd = [mpirun(), "-n", str(ranks), *cmd]
    return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **MPI_ENV, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_consistent(r: dict) -> None:
    """The file as one flush left it: every table complete up to its last round."""
    rounds = r["rounds"]["round"]
    k = len(rounds)
    assert rounds.tolist() == list(range(k))
    assert {len(v) for v in r["rounds"].values()} == {k}
    clients = r["clients"]["round"]
    assert {len(v) for v in r["clients"].values()} == {len(clients)}
    assert sorted(set(clients.tolist())) == list(range(k))
    assert len(r["eval"]["accuracy"]) == len(r["eval"]["round"]) and set(r["eval"]["round"]) <= set(rounds.tolist())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("reference") / "run.h5"
    proc = run_hpcfed([*JOB, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    return read_results(out)["attrs"]["final_model_sha256"]


@pytest.mark.parametrize("ranks", [0, 3], ids=["serial", "mpirun -n 3"])
def test_a_running_job_is_read_while_it_trains_and_ends_as_without_readers(tmp_path, capsys, reference, ranks):
    summarize, plot = summarize_command, plot_command
    out = tmp_path / "run.h5"
    proc = start([*JOB, "--out", str(out)], ranks)
    holder = None
    seen, told, plotted = [], set(), False
    try:
        while proc.poll() is None:
            if not out.exists():
                time.sleep(0.05)
                continue
            if holder is None and ranks == 0:   # another process keeps the file open throughout: the writer goes on
                holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
            results = read_results(out)
            assert_consistent(results)
            k = len(results["rounds"]["round"])
            seen.append((results["attrs"]["status"], k))
            if results["attrs"]["status"] == "running":
                assert summarize.main([str(out)]) == 0
                told |= {line for line in capsys.readouterr().out.splitlines()
                         if f"status running, round {k} of {ROUNDS}" in line}
                if len(results["eval"]["round"]) and not plotted:
                    assert plot.main([str(out), "--out-dir", str(tmp_path / "png")]) == 0
                    plotted = "running, round " in capsys.readouterr().err
    finally:
        if proc.poll() is None:
            proc.kill()
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    if holder is not None:
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=30) in (0, -signal.SIGTERM)
    running = [k for status, k in seen if status == "running"]
    assert len(running) >= 3 and any(0 < k < ROUNDS for k in running), seen
    assert running == sorted(running)                       # rows only ever grow
    assert told and plotted
    assert read_results(out)["attrs"]["final_model_sha256"] == reference


# a reader holding the file open (no HDF5 lock) for the whole run, rereading it now and then
HOLD = """
import sys, time, h5py
with h5py.File(sys.argv[1], "r", locking=False) as f:
    while True:
        try:
            f.attrs.get("status"); len(f["rounds/round"])
        except Exception:
            pass
        time.sleep(0.1)
"""


# rank 0's writer at full speed: one write session after every round of sys.argv[3] seconds (default: none)
WRITER = """
import sys, time
import numpy as np
from hpcfed.record import results
from hpcfed.record.results import ResultsWriter
from hpcfed.record.schema import CLIENT_COLUMNS, ROUND_COLUMNS
path, n, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
results.WRITE_EVERY_S = 0.0
w = ResultsWriter.create(path, {"config_yaml": f"rounds: {n}\\n"}, [])
for r in range(n):
    time.sleep(pause)
    w.append_round({k: r for k in ROUND_COLUMNS}, {k: np.full(8, r, dtype=d) for k, (d, _, _) in CLIENT_COLUMNS.items()})
    w.append_eval(r, np.zeros(0))
w.close("finished")
"""


def test_readers_never_see_half_a_write(tmp_path):
    """Without the write_seq check about a third of these reads mixed two writes; with it none does."""
    out = tmp_path / "fast.h5"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out), "300"], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    reads = 0
    while writer.poll() is None:
        if not out.exists():
            continue
        try:
            results = read_results(out)
        except HpcfedError as err:   # a writer that never pauses may outlast a reader's patience
            assert "kept changing" in str(err)
            continue
        reads += 1
        assert_consistent(results)
        k = len(results["rounds"]["round"])
        assert (results["clients"]["round"] == np.repeat(np.arange(k), 8)).all()
        assert (results["rounds"]["macs"] == np.arange(k)).all()
    assert writer.returncode == 0 and reads >= 5
    assert read_results(out)["attrs"]["status"] == "finished"


# a reader in a process of its own (whose HDF5 sees the environment it starts with), until the writer finishes
READER = """
import sys
from hpcfed.errors import HpcfedError
from hpcfed.record.reading import read_results
from tests.e2e.test_live import assert_consistent
print("ready", flush=True)
reads = 0
while True:
    try:
        results = read_results(sys.argv[1])
    except HpcfedError as err:
        assert "kept changing" in str(err) or "does not exist" in str(err), err
        continue
    assert_consistent(results)
    reads += 1
    if results["attrs"]["status"] == "finished":
        break
print(reads)
"""


def test_where_hdf5_file_locking_is_forced_the_writer_and_readers_wait_for_each_other(tmp_path):
    """HDF5_USE_FILE_LOCKING=TRUE overrides locking=False: every open takes HDF5's lock, so the writer
    takes no lock of its own (it would refuse its own sessions) and waits out the readers' opens."""
    out = tmp_path / "locked.h5"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HDF5_USE_FILE_LOCKING": "TRUE"}
    reader = subprocess.Popen([sys.executable, "-c", READER, str(out)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    writer = None
    try:   # the reader loops until the file says "finished": it must not outlive a failed writer
        assert reader.stdout.readline() == "ready\n"
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out), "100", "0.02"], cwd=ROOT, env=env)
        assert writer.wait(timeout=300) == 0
        stdout, stderr = reader.communicate(timeout=60)
        assert reader.returncode == 0 and int(stdout) >= 2, stderr
    finally:
        for proc in (reader, writer):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_a_foreign_program_holding_the_file_with_hdf5_locking_does_not_stop_readers(tmp_path, capsys):
    out = tmp_path / "run.h5"
    small_file(out)
    code = "import sys, h5py, time; f = h5py.File(sys.argv[1], 'r+'); print('open', flush=True); time.sleep(60)"
    foreign = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert foreign.stdout.readline() == "open\n"
        assert summarize_command.main([str(out)]) == 0
        assert "status running, round 1 of 5" in capsys.readouterr().out
    finally:
        foreign.kill()
        foreign.wait()
