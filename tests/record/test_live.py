"""Live results: any process reads a running job's results file at any time (hpcfed.record.live), and the
job ends exactly as it does without readers."""
from __future__ import annotations

import os
import signal
import time

import h5py
import numpy as np
import pytest

from hpcfed.commands import plot as plot_command
from hpcfed.commands import summarize as summarize_command
from hpcfed.errors import HpcfedError
from hpcfed.record import live
from hpcfed.record.reading import read_results
from hpcfed.record.results import ResultsWriter
from hpcfed.record.schema import CLIENT_COLUMNS, ROUND_COLUMNS
from hpcfed.runtime import interrupts


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
    summarize, plot = summarize_command, plot_command
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
    assert summarize_command.main([str(out)]) == 0
    assert "status killed after round 1 of 5" in capsys.readouterr().out and "--resume" in load_state(out)
    held = live.hold(out, "test")
    try:
        assert load_state(out) == "running, round 1 of 5"
    finally:
        live.release(held)


def load_state(path) -> str:
    from hpcfed.record.report import run_state
    return run_state(read_results(path))
