"""Tests of hpcfed.config.jobfiles: shipped jobs by name, a local file winning, --list-jobs, the installed copy."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hpcfed.config import jobfiles
from tests.config.test_jobfiles import JOBS
from tests.launch import ROOT


def run(args: list[str], cwd: Path, pythonpath: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m hpcfed.run ARGS`` in ``cwd`` with hpcfed imported from ``pythonpath``."""
    return subprocess.run([sys.executable, "-m", "hpcfed.run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(pythonpath)})


def test_run_takes_a_shipped_job_by_name_from_any_folder_and_says_which_file(tmp_path):
    proc = run(["superfed_256", "--dry-run", "--set", "rounds=1", "--out", str(tmp_path / "a.h5")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"hpcfed: job file: {JOBS / 'superfed_256.yaml'} (shipped as 'superfed_256')"
    assert lines[1].startswith("hpcfed: dry run OK: job 'superfed_256'")
    (tmp_path / "superfed_256.yaml").write_text("name: mine\nrounds: 1\n")
    mine = run(["superfed_256", "--dry-run", "--out", str(tmp_path / "a.h5")], tmp_path)
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout.splitlines()[0] == (f"hpcfed: job file: {tmp_path / 'superfed_256.yaml'} "
                                           f"(a local file; it wins over the shipped 'superfed_256')")
    assert "job 'mine'" in mine.stdout


def test_run_names_an_unknown_job_and_a_job_set_in_one_line(tmp_path):
    for spec, expected in [("superfed_2566", "job 'superfed_2566': no such file here and no shipped job of that "
                                             "name (did you mean 'superfed_256'?); accepted: a file path or a shipped "
                                             "name: default, "),
                           ("compare_digits", "is a job set (base and methods, hpcfed/experiments/jobset.py); run its methods "
                                              "with tools/compare.py")]:
        proc = run([spec, "--dry-run"], tmp_path)
        assert proc.returncode == 2 and proc.stdout == "", proc.stdout
        assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr, proc.stderr


def test_list_jobs_names_every_shipped_file_with_its_description(tmp_path):
    proc = run(["--list-jobs"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name, path in jobfiles.shipped().items():
        assert f"  {name} " in proc.stdout and jobfiles.describe(path)[1] in proc.stdout
    jobs, sets = proc.stdout.split("job sets (python tools/compare.py NAME):")
    assert "superfed_256" in jobs and "compare_digits" not in jobs and "compare_digits" in sets


def test_a_regular_build_ships_the_jobs_inside_the_package(tmp_path):
    """setup.py's build_py copies jobs/ into hpcfed/jobs_shipped/, which an installed hpcfed reads first."""
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(tmp_path / "lib")], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    installed = tmp_path / "lib" / "hpcfed" / "jobs_shipped"
    assert sorted(p.relative_to(installed) for p in installed.rglob("*.yaml")) == \
        sorted(p.relative_to(JOBS) for p in JOBS.rglob("*.yaml"))
    (tmp_path / "work").mkdir()
    proc = run(["--list-jobs"], tmp_path / "work", pythonpath=tmp_path / "lib")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"shipped jobs in {installed} ") and "reproduce/efedsup" in proc.stdout
    dry = run(["superfed_256", "--dry-run", "--out", str(tmp_path / "a.h5")], tmp_path / "work", tmp_path / "lib")
    assert dry.returncode == 0 and f"{installed / 'superfed_256.yaml'} (shipped as 'superfed_256')" in dry.stdout
