"""Crash safety: kill, signal or break a run at several points, resume it, and get the same science.

A resumed run must equal an uninterrupted run of the same job in ``final_model_sha256`` and in
every logged row (only the wall-clock columns may differ, and the MPI traffic when the rank count does).
"""
from __future__ import annotations

import signal
import time

import h5py
import numpy as np
import pytest

from tests.launch import TINY, run_hpcfed

JOB = [*TINY, "--set", "rounds=6", "--set", "checkpoint.every=2", "--set", "eval.every=2"]
NOT_SCIENCE = {"rounds/wall_time_s", "rounds/round_wall_s", "rounds/train_wall_s", "rounds/eval_wall_s", "rounds/mpi_bytes",
               "rounds/slice_bytes"}
PLACEMENT = {"clients/rank"}     # which rank hosted a client: changes with the rank count, nothing else


def tables(path, ignore=frozenset()) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {"sha": f.attrs["final_model_sha256"], "status": f.attrs["status"],
               "stop_reason": f.attrs.get("stop_reason", ""), "rounds_played": f.attrs.get("rounds_played", -1)}
        for group in ("rounds", "clients", "validation", "eval", "architectures"):
            for name, ds in f[group].items():
                if f"{group}/{name}" not in NOT_SCIENCE | ignore:
                    out[f"{group}/{name}"] = ds[()]
    return out


def assert_same_science(a, b):
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "base.h5"
    proc = run_hpcfed([*JOB, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    return tables(out)


def status_of(path) -> tuple[str, str]:
    with h5py.File(path, "r") as f:
        return f.attrs["status"], f.attrs.get("error", "")


INTERRUPTIONS = [
    ("rank 0 SIGKILLed mid-round", ["faults.kill_rank=[0,3]"], -signal.SIGKILL, "running"),
    ("SIGKILL while writing a checkpoint", ["faults.kill_in_checkpoint=3"], -signal.SIGKILL, "running"),
    ("SIGTERM mid-round", ["faults.signal_at=[4,15]"], 75, "failed"),
    ("SIGUSR1 mid-round (requeue)", ["faults.signal_at=[1,10]"], 75, "interrupted"),
    ("SIGTERM in the first round", ["faults.signal_at=[0,15]"], 75, "failed"),
    ("Ctrl-C (SIGINT) mid-round", ["faults.signal_at=[2,2]"], 75, "failed"),
]


@pytest.mark.parametrize("what,fault,code,status", INTERRUPTIONS, ids=[i[0] for i in INTERRUPTIONS])
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, uninterrupted, what, fault, code, status):
    out = tmp_path / "run.h5"
    proc = run_hpcfed([*JOB, "--out", str(out), *[a for f in fault for a in ("--set", f)]])
    assert proc.returncode == code, proc.stderr
    assert status_of(out)[0] == status
    if code == 75:
        assert "continue with --resume" in proc.stderr and "continue with --resume" in status_of(out)[1]
    resumed = run_hpcfed([*JOB, "--out", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert_same_science(tables(out), uninterrupted)


def test_two_interruptions_and_two_resumptions(tmp_path, uninterrupted):
    out = tmp_path / "run.h5"
    assert run_hpcfed([*JOB, "--out", str(out), "--set", "faults.kill_rank=[0,2]"]).returncode == -signal.SIGKILL
    again = run_hpcfed([*JOB, "--out", str(out), "--resume", "--set", "faults.signal_at=[5,15]"])
    assert again.returncode == 75, again.stderr
    assert run_hpcfed([*JOB, "--out", str(out), "--resume"]).returncode == 0
    assert_same_science(tables(out), uninterrupted)


def test_resuming_a_finished_run_changes_nothing(tmp_path, uninterrupted):
    out = tmp_path / "run.h5"
    assert run_hpcfed([*JOB, "--out", str(out), "--set", "checkpoint.every=3"]).returncode == 0
    assert run_hpcfed([*JOB, "--out", str(out), "--set", "checkpoint.every=3", "--resume"]).returncode == 0
    assert_same_science(tables(out), uninterrupted)


def test_a_sigkilled_worker_ends_the_job_quickly_and_the_run_resumes_on_other_ranks(tmp_path, uninterrupted):
    out = tmp_path / "run.h5"
    start = time.monotonic()
    proc = run_hpcfed([*JOB, "--out", str(out), "--set", "faults.kill_rank=[2,3]"], ranks=3, timeout=120)
    assert time.monotonic() - start < 30 + 15   # 15 s: eight-rank start-up on two cores
    assert proc.returncode != 0
    assert status_of(out)[0] == "failed"
    assert run_hpcfed([*JOB, "--out", str(out), "--resume"], ranks=2).returncode == 0
    expected = {k: v for k, v in uninterrupted.items() if k not in PLACEMENT}
    assert_same_science(tables(out, ignore=PLACEMENT), expected)


@pytest.mark.parametrize("stop", [["faults.signal_at=[4,15]"], ["faults.kill_rank=[0,4]"]], ids=["SIGTERM", "SIGKILL"])
def test_a_stop_while_rank_0_evaluates_the_previous_round_resumes_to_the_same_rows(tmp_path, stop):
    """With workers, rank 0 evaluates round r while they train round r + 1 (eval.every=1 and no
    checkpoint after round r = 3); a stop in round r + 1 must leave round r's evaluation in the resumed
    file exactly once, as in an uninterrupted run in one process."""
    job = [*JOB, "--set", "eval.every=1", "--set", "checkpoint.every=3"]
    reference = tmp_path / "reference.h5"
    assert run_hpcfed([*job, "--out", str(reference)]).returncode == 0
    out = tmp_path / "run.h5"
    assert run_hpcfed([*job, "--out", str(out), *[a for f in stop for a in ("--set", f)]], ranks=3,
                      timeout=120).returncode != 0
    resumed = run_hpcfed([*job, "--out", str(out), "--resume"], ranks=3, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    expected = {k: v for k, v in tables(reference).items() if k not in PLACEMENT}
    assert_same_science(tables(out, ignore=PLACEMENT), expected)
    assert tables(out)["eval/round"].tolist() == list(range(6))


def test_a_raising_rank_ends_the_job_with_its_rank_and_cause(tmp_path):
    out = tmp_path / "run.h5"
    start = time.monotonic()
    proc = run_hpcfed([*JOB, "--out", str(out), "--set", "faults.raise_at=[[5,2],[7,2]]"], ranks=3, timeout=120)
    assert time.monotonic() - start < 30 + 15
    assert proc.returncode != 0
    status, error = status_of(out)
    assert status == "failed" and "InjectedFault" in error and error.startswith("rank ")
    assert "injected failure of client" in proc.stderr


def test_faulty_updates_are_rejected_counted_and_kept_out(tmp_path):
    out = tmp_path / "run.h5"
    proc = run_hpcfed([*JOB, "--out", str(out), "--set", "clients.overselect=0",
                       "--set", "faults.nan_at=[[0,1],[1,1],[2,1],[3,1],[4,1],[5,1],[6,1],[7,1],[8,1],[9,1],[10,1],[11,1]]",
                       "--set", "faults.blowup_at=[[0,3],[1,3],[2,3],[3,3],[4,3],[5,3],[6,3],[7,3],[8,3],[9,3],[10,3],[11,3]]"])
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        rejected = f["rounds/rejected"][()]
        assert rejected[1] == 4 and rejected[3] == 4 and rejected[[0, 2, 4, 5]].sum() == 0
        assert f["rounds/clients"][()][1] == 0
        made = f["clients/made_deadline"][()][f["clients/round"][()] == 1]
        assert not made.any()
        assert np.isfinite(f["eval/accuracy"][()]).all()
        after_round_1 = f["eval/accuracy"][0]
        trained = {(int(c), int(r)) for c, r, rank in zip(f["clients/client"][()], f["clients/round"][()],
                                                          f["clients/rank"][()]) if rank >= 0}
        unfired = f.attrs["faults_not_fired"].splitlines()
    # the faults of clients that did not train in their round are named, in the file and in the summary
    idle = [(c, r) for r in (1, 3) for c in range(12) if (c, r) not in trained]
    assert idle and [line.split(" did not fire")[0] for line in unfired] == (
        [f"faults.nan_at [{c}, {r}]" for c, r in idle if r == 1] + [f"faults.blowup_at [{c}, {r}]" for c, r in idle if r == 3])
    assert all(f"warning: {line}" in proc.stdout for line in unfired)
    # Every update of round 1 was rejected, so the weights after round 1 are those after round 0.
    first = tmp_path / "first.h5"
    assert run_hpcfed([*JOB, "--out", str(first), "--set", "clients.overselect=0", "--set", "rounds=1"]).returncode == 0
    with h5py.File(first, "r") as f:
        np.testing.assert_array_equal(f["eval/accuracy"][0], after_round_1)


def test_resume_refuses_a_checkpoint_of_another_job_and_changes_nothing(tmp_path):
    out = tmp_path / "run.h5"
    assert run_hpcfed([*JOB, "--out", str(out), "--set", "faults.kill_rank=[0,3]"]).returncode == -signal.SIGKILL
    before = out.read_bytes(), (tmp_path / "run.h5.ckpt").read_bytes()
    proc = run_hpcfed([*JOB, "--out", str(out), "--resume", "--set", "train.lr=0.5"])
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"hpcfed: error: --resume: checkpoint {str(out) + '.ckpt'!r} belongs to another "
                                   "job: train.lr was 0.1, the job now says 0.5")
    assert (out.read_bytes(), (tmp_path / "run.h5.ckpt").read_bytes()) == before


# two models (ifedavg), federated validation every round and an early stop after three validations
# without an improvement of 0.5 (the tiny models never gain that much): the run ends after round 3 of 8
SEARCHING = [*TINY, "--set", "rounds=8", "--set", "checkpoint.every=2", "--set", "eval.every=2",
             "--set", "strategy.name=ifedavg", "--set", "data.client_val_fraction=0.25", "--set", "eval.val_every=1",
             "--set", "eval.patience=3", "--set", "eval.min_delta=0.5"]


def test_an_early_stopped_two_model_run_resumes_to_the_same_rows_on_other_ranks(tmp_path):
    base, out = tmp_path / "base.h5", tmp_path / "run.h5"
    assert run_hpcfed([*SEARCHING, "--out", str(base)]).returncode == 0
    expected = tables(base)
    assert "early stop after round 3" in expected["stop_reason"] and expected["rounds_played"] == 4
    assert list(expected["rounds/round"]) == [0, 1, 2, 3] and list(expected["eval/round"]) == [1, 3]
    assert set(expected["clients/model"][expected["clients/made_deadline"]]) == {0, 1}
    assert sorted(set(expected["validation/round"])) == [0, 1, 2, 3]
    assert (expected["validation/correct"] <= expected["validation/total"]).all()
    interrupted = run_hpcfed([*SEARCHING, "--out", str(out), "--set", "faults.signal_at=[3,10]"], ranks=3)
    assert interrupted.returncode == 75, interrupted.stderr
    assert run_hpcfed([*SEARCHING, "--out", str(out), "--resume"], ranks=3).returncode == 0
    placement = {"clients/rank"}
    assert_same_science(tables(out, ignore=placement), {k: v for k, v in expected.items() if k not in placement})


def test_the_results_file_alone_resumes_and_a_finished_run_is_not_replayed(tmp_path, uninterrupted):
    out = tmp_path / "run.h5"
    proc = run_hpcfed([*JOB, "--out", str(out), "--set", "faults.signal_at=[4,15]"])
    assert proc.returncode == 75
    assert f"continue with --resume: python -m hpcfed.run --resume --out {out}" in proc.stderr
    wrong = run_hpcfed(["--out", str(out), "--resume", "--dry-run", "--set", "rounds=7"])   # checked without training
    assert wrong.returncode == 2 and "belongs to another job: rounds was 6, the job now says 7" in wrong.stderr
    dry = run_hpcfed(["--out", str(out), "--resume", "--dry-run"])
    assert dry.returncode == 0 and f"resuming {out} from round 5 of 6" in dry.stdout, dry.stderr
    resumed = run_hpcfed(["--out", str(out), "--resume"])       # no job, no --set: the file's own job, faults dropped
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {out} from round 5 of 6" in resumed.stdout
    assert_same_science(tables(out), uninterrupted)
    before = out.stat().st_mtime_ns
    again = run_hpcfed(["--out", str(out), "--resume"])
    assert again.returncode == 0 and f"{out} is a finished run; nothing to resume" in again.stdout
    assert out.stat().st_mtime_ns == before
