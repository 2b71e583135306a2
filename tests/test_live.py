"""Live results: any process reads a running job's results file at any time (hpcfed.record.live), and the
job ends exactly as it does without readers."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from hpcfed.runtime import interrupts
from hpcfed.record import live
from hpcfed.errors import HpcfedError
from hpcfed.experiments.launch import MPI_ENV, mpirun
from hpcfed.record.results import CLIENT_COLUMNS, ROUND_COLUMNS, ResultsWriter
from hpcfed.record.reading import read_results
from tests.launch import ROOT, TINY, run_hpcfed

ROUNDS = 16
# a flush before every round's checkpoint: many write sessions for the readers to run into
JOB = [*TINY, "--set", f"rounds={ROUNDS}", "--set", "checkpoint.every=1", "--set", "eval.every=2"]


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_tool", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
    summarize, plot = load_tool("summarize"), load_tool("plot")
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
from hpcfed.record.results import ResultsWriter, ROUND_COLUMNS, CLIENT_COLUMNS
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
from tests.test_live import assert_consistent
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
    assert reader.stdout.readline() == "ready\n"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(out), "100", "0.02"], cwd=ROOT, env=env)
    stdout, stderr = reader.communicate(timeout=300)
    assert writer.wait(timeout=300) == 0
    assert reader.returncode == 0 and int(stdout) >= 2, stderr


def small_file(path, **attrs) -> None:
    writer = ResultsWriter.create(path, {"config_yaml": "rounds: 5\n", "strategy": "superfed", **attrs}, [])
    writer.append_round({k: 0 for k in ROUND_COLUMNS}, {k: np.zeros(2, dtype=d) for k, (d, _, _) in CLIENT_COLUMNS.items()})
    writer.close("running")


def test_a_file_left_mid_write_is_read_as_it_stands(tmp_path):
    """A writer killed inside a write session leaves write_seq odd: readers wait STABLE_S, then read it."""
    out = tmp_path / "killed.h5"
    small_file(out)
    with h5py.File(out, "r+") as f:
        f.attrs[live.SEQ] += 1
    start_s = time.monotonic()
    results = read_results(out)
    assert live.STABLE_S <= time.monotonic() - start_s < live.RETRY_S
    assert len(results["rounds"]["round"]) == 1


def test_a_second_writer_is_refused_while_a_run_holds_the_file(tmp_path):
    out = tmp_path / "run.h5"
    small_file(out)
    held = live.hold(out, "--out")
    try:
        with pytest.raises(HpcfedError, match="is in use by another process"):
            ResultsWriter.resume(out, {"rounds": 1, "clients": 2, "validation": 0, "eval": 0, "architectures": 0}, 0)
        with pytest.raises(HpcfedError, match="is in use by another process"):
            small_file(out)
        assert len(read_results(out)["rounds"]["round"]) == 1   # readers take no lock
    finally:
        live.release(held)
    small_file(out)


def test_a_foreign_program_holding_the_file_with_hdf5_locking_does_not_stop_readers(tmp_path, capsys):
    out = tmp_path / "run.h5"
    small_file(out)
    code = "import sys, h5py, time; f = h5py.File(sys.argv[1], 'r+'); print('open', flush=True); time.sleep(60)"
    foreign = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert foreign.stdout.readline() == "open\n"
        assert load_tool("summarize").main([str(out)]) == 0
        assert "status running, round 1 of 5" in capsys.readouterr().out
    finally:
        foreign.kill()
        foreign.wait()


def test_files_that_are_not_results_get_one_line_with_the_real_reason(tmp_path, capsys):
    (tmp_path / "text.h5").write_text("not hdf5")
    (tmp_path / "empty.h5").write_bytes(b"")
    (tmp_path / "folder.h5").mkdir()
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=[1, 2, 3])
    cases = {"missing.h5": "does not exist", "folder.h5": "is a folder, not a results file",
             "text.h5": "is not an hpcfed results file: it cannot be read as HDF5 (no HDF5 signature)",
             "empty.h5": "(no HDF5 signature; the file is empty)",
             "other.h5": "is not an hpcfed results file: an HDF5 file without hpcfed's attributes"}
    if os.geteuid() != 0:   # root reads anything
        small_file(tmp_path / "private.h5")
        (tmp_path / "private.h5").chmod(0)
        cases["private.h5"] = "cannot be read (Permission denied)"
    summarize, plot = load_tool("summarize"), load_tool("plot")
    for name, message in cases.items():
        path = str(tmp_path / name)
        for tool, prefix in ((summarize, "summarize: error: "), (plot, "plot: error: ")):
            assert tool.main([path, "--out-dir", str(tmp_path)] if tool is plot else [path]) == 2
            err = capsys.readouterr().err
            assert err.startswith(prefix + repr(path)) and message in err and err.count("\n") == 1, (name, err)


def test_signals_wait_for_a_write_session_to_end():
    caught = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: caught.append(signum))
    try:
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.05)
            assert caught == []
        assert caught == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_file_that_says_running_is_told_apart_from_a_killed_run_by_its_writers_lock(tmp_path, capsys):
    out = tmp_path / "run.h5"
    small_file(out)   # status running, one round, and no process writing it: as a SIGKILLed run leaves it
    assert load_tool("summarize").main([str(out)]) == 0
    assert "status killed after round 1 of 5" in capsys.readouterr().out and "--resume" in load_state(out)
    held = live.hold(out, "test")
    try:
        assert load_state(out) == "running, round 1 of 5"
    finally:
        live.release(held)


def load_state(path) -> str:
    from hpcfed.record.report import run_state
    return run_state(read_results(path))
