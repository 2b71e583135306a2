"""slurm/superfed_256.sh on a private single-node SLURM cluster (see tests/slurm/cluster.py).

Skipped when SLURM is not installed (.ci/install_slurm.sh installs it), failed instead under
HPCFED_REQUIRE_SLURM=1. Run with:  python -m pytest -m slurm tests/slurm
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.slurm.cluster import slurm_cluster

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "slurm/superfed_256.sh"
TINY = "rounds=2 clients.total=16 clients.per_round=4"
JOB_TIMEOUT = 300  # seconds for one `sbatch --wait`


@pytest.fixture(scope="session")
def cluster():
    with slurm_cluster() as c:
        yield c


@pytest.fixture
def submit(cluster, tmp_path):
    """sbatch --wait the script from ``cwd`` (default the repo root); return (returncode, job log text, sbatch output)."""

    def _submit(*sbatch_opts: str, cwd: Path = REPO, **hpcfed_env: str):
        env = dict(cluster.env)
        bindir = os.path.dirname(sys.executable)  # the venv: python, mpirun
        env["PATH"] = bindir + os.pathsep + env["PATH"]
        env.update(
            HPCFED_PYTHON=sys.executable,
            OMPI_ALLOW_RUN_AS_ROOT="1",
            OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
            # Slurm grants more slots (CPUs=8) than the machine has cores: mpirun must not bind.
            PRTE_MCA_hwloc_default_binding_policy="none",
        )
        env.update(hpcfed_env)
        log = tmp_path / "job-%j.out"
        cmd = ["sbatch", "--wait", "--parsable", f"--output={log}", *sbatch_opts, str(REPO / SCRIPT)]
        try:
            res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                                 timeout=JOB_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"{' '.join(cmd)} did not end in {JOB_TIMEOUT} s\n{cluster.logs()}\n{exc.stdout}")
        m = re.search(r"^(\d+)", res.stdout, re.M)
        assert m, f"sbatch printed no job id: {res.stdout!r} {res.stderr!r}"
        job_log = tmp_path / f"job-{m.group(1)}.out"
        text = job_log.read_text(errors="replace") if job_log.exists() else "(no job log)"
        return res.returncode, text, res.stdout + res.stderr

    return _submit


def test_a_job_named_by_name_runs_from_a_submit_folder_outside_the_checkout(submit, tmp_path):
    """sbatch /path/to/slurm/superfed_256.sh from a scratch folder with HPCFED_JOB=superfed_256: the shipped
    job file is found (not one relative to the submit folder) and the results land in the submit folder."""
    h5py = pytest.importorskip("h5py")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # The checkout's hpcfed (an editable install of it does the same; PYTHONPATH keeps this worktree's).
    rc, log, out = submit("--nodes=1", "--ntasks-per-node=2", cwd=scratch, HPCFED_JOB="superfed_256",
                          HPCFED_SET=TINY, PYTHONPATH=str(REPO))
    assert rc == 0, f"{out}\n{log}"
    assert "job=superfed_256 " in log, log
    assert f"hpcfed: job file: {REPO / 'jobs' / 'superfed_256.yaml'} (shipped as 'superfed_256')" in log, log
    results = list((scratch / "runs").glob("superfed_256-*.h5"))
    assert len(results) == 1, log
    with h5py.File(results[0], "r") as f:
        assert f.attrs["status"] == "finished" and len(f["rounds/round"]) == 2, log


def test_dry_run(submit, tmp_path):
    rc, log, out = submit("--nodes=1", "--ntasks-per-node=2", HPCFED_DRY_RUN="1",
                          HPCFED_OUT=str(tmp_path / "dry.h5"))
    assert rc == 0, f"{out}\n{log}"
    assert re.search(r"^hpcfed: job \d+ nodes=1 .*tasks=2 .*mode=dry-run", log, re.M), log
    assert "hpcfed: dry run: validation passed" in log, log
    assert not (tmp_path / "dry.h5").exists()


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_tiny_run(submit, tmp_path, launcher):
    h5py = pytest.importorskip("h5py")
    out_file = tmp_path / f"{launcher}.h5"
    # mpirun: the venv through HPCFED_VENV and a bare `python` (srun: HPCFED_PYTHON=sys.executable)
    venv = {"HPCFED_VENV": sys.prefix, "HPCFED_PYTHON": "python"} if launcher == "mpirun" else {}
    rc, log, out = submit("--nodes=1", "--ntasks-per-node=3", HPCFED_LAUNCHER=launcher,
                          HPCFED_SET=TINY, HPCFED_OUT=str(out_file), **venv)
    assert rc == 0, f"{out}\n{log}"
    assert f"mode={launcher}" in log and "tasks=3" in log, log
    assert out_file.exists(), log
    with h5py.File(out_file, "r") as f:
        status = f.attrs["status"]
        status = status.decode() if isinstance(status, bytes) else str(status)
        assert status == "finished", log
        assert len(f["rounds/round"]) == 2
        assert f.attrs["world_size"] == 3


@pytest.mark.parametrize(
    "launcher,env",
    [
        ("srun", {"HPCFED_SET": "no_such_key=1"}),
        ("mpirun", {"HPCFED_SET": "no_such_key=1"}),
        ("srun", {"HPCFED_JOB": "jobs/no_such_job.yaml"}),
    ],
    ids=["srun-bad-key", "mpirun-bad-key", "srun-missing-job"],
)
def test_failure_fails_the_job(submit, tmp_path, launcher, env):
    rc, log, out = submit("--nodes=1", "--ntasks-per-node=2", HPCFED_LAUNCHER=launcher,
                          HPCFED_OUT=str(tmp_path / "fail.h5"), **env)
    assert rc != 0, f"job succeeded despite {env}\n{log}"
    assert "finished:" not in log, log


def test_bad_launcher_fails(submit, tmp_path):
    rc, log, _ = submit("--nodes=1", "--ntasks-per-node=1", HPCFED_LAUNCHER="aprun",
                        HPCFED_OUT=str(tmp_path / "x.h5"))
    assert rc == 2, log
    assert "HPCFED_LAUNCHER must be srun or mpirun" in log, log


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.parametrize("launcher", ["srun", "mpirun"])
def test_usr1_checkpoints_requeues_and_the_job_resumes_by_itself(cluster, tmp_path, launcher):
    """The time-limit warning (SIGUSR1 to the batch shell) leads to the same results as no interruption."""
    h5py = pytest.importorskip("h5py")
    overrides = f"{TINY} rounds=30 checkpoint.every=1000 model.stem=8 model.widths=[8,16] model.kernel_choices=[3]"
    env = dict(cluster.env)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    env.update(HPCFED_PYTHON=sys.executable, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PRTE_MCA_hwloc_default_binding_policy="none", HPCFED_LAUNCHER=launcher, HPCFED_SET=overrides,
               HPCFED_OUT=str(tmp_path / "requeue.h5"))
    log = tmp_path / "requeue.out"
    sub = subprocess.run(["sbatch", "--parsable", f"--output={log}", "--nodes=1", "--ntasks-per-node=3", SCRIPT],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip().split(";")[0]
    text = lambda: log.read_text(errors="replace") if log.exists() else ""  # noqa: E731
    _wait_for(lambda: "round    3/30" in text(), 180, "round 3 in the job log")
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=env, check=True, timeout=30)
    _wait_for(lambda: "requeued" in text(), 120, "the requeue")
    # Slurm holds a requeued job back for about two minutes (its begin time). Once the old step is
    # gone, let it start now: the test checks hpcfed's requeue, not the scheduler's patience.
    steps = lambda: subprocess.run(["squeue", "-h", "-s", "-j", job], env=env, capture_output=True,  # noqa: E731
                                   text=True, timeout=30).stdout.strip()
    _wait_for(lambda: not steps(), 60, "the interrupted job step to end")
    time.sleep(5)
    _wait_for(lambda: subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env,
                                     capture_output=True, timeout=30).returncode == 0, 60, "the start time update")
    _wait_for(lambda: f"hpcfed: job {job} finished" in text() or "failed with exit status" in text(), 300,
              f"the requeued job to end\n{text()}")
    squeue = subprocess.run(["squeue", "-h", "-j", job], env=env, capture_output=True, text=True, timeout=30)
    assert squeue.stdout.strip() == "", squeue.stdout
    assert "restart=1 resume=yes" in text(), text()
    with h5py.File(tmp_path / "requeue.h5", "r") as f:
        assert f.attrs["status"] == "finished", text()
        assert list(f["rounds/round"][()]) == list(range(30))
        requeued_sha = f.attrs["final_model_sha256"]
    reference = tmp_path / "reference.h5"
    args = [a for kv in overrides.split() for a in ("--set", kv)]
    proc = subprocess.run([sys.executable, "-m", "hpcfed.run", "jobs/superfed_256.yaml", *args, "--out", str(reference)],
                          cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(reference, "r") as f:
        assert f.attrs["final_model_sha256"] == requeued_sha


def test_a_launch_that_ends_with_0_but_trains_nothing_fails_the_job(submit, tmp_path):
    """The script checks the results file's status, not only the launcher's exit code."""
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\ncase "$*" in *hpcfed.run*) exit 0;; esac\nexec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    rc, log, _ = submit("--nodes=1", "--ntasks-per-node=2", HPCFED_PYTHON=str(fake), HPCFED_SET=TINY,
                        HPCFED_OUT=str(tmp_path / "none.h5"))
    assert rc == 1, log
    assert "has status 'unreadable'" in log and "finished:" not in log, log
