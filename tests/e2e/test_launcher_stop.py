"""Stopping a run through its launcher: SIGTERM to ``mpirun`` (not to rank 0) at 12 random moments.

Open MPI's ``mpirun`` passes the signal to every rank, SIGKILLs them all about 0.25 s later and no
longer forwards their output (hpcfed.runtime.interrupts). Whatever rank 0 manages in that time, every stop
must leave a checkpoint that resumes to the uninterrupted run, or, stopped before the run saved its
start, no results file or one that ``--resume`` refuses in one clear line; no stop may hang.
"""
from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

from hpcfed.experiments.launch import start_hpcfed
from tests.launch import TINY, run_hpcfed

ROUNDS = 6
JOB = [*TINY, "--set", f"rounds={ROUNDS}", "--set", "checkpoint.every=4", "--set", "eval.every=2"]
MOMENTS = 12


def final_sha(path) -> str:
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "finished"
        return f.attrs["final_model_sha256"]


def checkpoint_state(path) -> tuple[int, str]:
    """(completed rounds, SHA-256 of the weights) of a checkpoint."""
    with h5py.File(path, "r") as f:
        digest = hashlib.sha256()
        for name in sorted(f["models"]):
            digest.update(f["models"][name][()].tobytes())
        return int(f.attrs["round"]), digest.hexdigest()


def starting_seconds(out) -> float:
    """Run the job uninterrupted under mpirun; return the seconds until its banner (set-up done)."""
    started = time.monotonic()
    proc = start_hpcfed([*JOB, "--out", str(out)], ranks=3)
    banner = next(time.monotonic() - started for line in proc.stdout if line.startswith("hpcfed: job"))
    proc.stdout.read()
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    return banner


def stop_launcher(out, after_round: int | None, delay: float) -> subprocess.CompletedProcess:
    """SIGTERM to mpirun ``delay`` seconds after its start (``after_round`` None), after its banner
    (0) or after the progress line of round ``after_round``."""
    proc = start_hpcfed([*JOB, "--out", str(out)], ranks=3)
    seen = []
    if after_round is not None:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("hpcfed: job" if after_round == 0 else f"round {after_round:>4}/"):
                break
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"mpirun signalled {delay:.2f} s after round {after_round} did not end within 90 s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(seen) + stdout, stderr)


def test_sigterm_to_mpirun_at_random_moments_always_leaves_a_resumable_run_or_nothing(tmp_path):
    reference = tmp_path / "reference.h5"
    starting = starting_seconds(reference)
    expected = final_sha(reference)
    rng = np.random.default_rng(2026)   # a fifth of the moments while starting, the rest during rounds 0 to 5
    moments = [(None, rng.uniform(0.1, 1.0) * starting) for _ in range(MOMENTS // 5)]
    moments += [(int(rng.integers(0, ROUNDS)), rng.uniform(0.0, 0.3)) for _ in range(MOMENTS - MOMENTS // 5)]
    outcomes, stopped_at = [], {}   # stopped_at: checkpoint state -> a run that left it
    for i, (after_round, delay) in enumerate(moments):
        out = tmp_path / f"stop{i}.h5"
        proc = stop_launcher(out, after_round, delay)
        ckpt = out.with_name(out.name + ".ckpt")
        if proc.returncode == 0:
            assert final_sha(out) == expected
            outcomes.append("finished first")
        elif ckpt.is_file():
            state = checkpoint_state(ckpt)
            stopped_at.setdefault(state, out)
            outcomes.append(f"checkpoint after round {state[0]}")
        elif out.exists():   # SIGKILLed between creating the file and saving the start
            refused = run_hpcfed([*JOB, "--out", str(out), "--resume"])
            assert refused.returncode == 2
            lines = refused.stderr.strip().splitlines()
            assert len(lines) == 1 and "nothing to resume" in lines[0], refused.stderr
            outcomes.append("refused to resume")
        else:
            outcomes.append("nothing written")

    rounds = {}
    for (done, _), out in stopped_at.items():
        rounds.setdefault(done, []).append(out)
    assert all(len(outs) == 1 for outs in rounds.values()), "two checkpoints of one round differ in their weights"
    for done, (out,) in sorted(rounds.items()):
        resumed = tmp_path / f"resumed-after-{done}.h5"
        shutil.copy(out, resumed)
        shutil.copy(out.with_name(out.name + ".ckpt"), resumed.with_name(resumed.name + ".ckpt"))
        proc = run_hpcfed([*JOB, "--out", str(resumed), "--resume"], timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert final_sha(resumed) == expected, f"resumed after round {done}"
    print("stops:", "; ".join(f"{'start' if k is None else f'round {k}'} + {d:.2f} s: {o}"
                              for (k, d), o in zip(moments, outcomes)))
