"""Tests of hpcfed.config.jobfiles: shipped jobs by name, a local file winning, --list-jobs, the installed copy."""
from __future__ import annotations

from pathlib import Path

import pytest

from hpcfed.assembly.job import load_job
from hpcfed.config import jobfiles
from hpcfed.errors import ConfigError
from hpcfed.experiments.jobruns import select_jobs
from hpcfed.experiments.jobset import load_jobset
from tests.launch import ROOT

JOBS = ROOT / "jobs"


def test_the_checkout_ships_every_job_file_under_jobs():
    assert jobfiles.shipped_dir() == JOBS
    names = jobfiles.shipped()
    assert {"default", "superfed_256", "compare_digits", "reproduce/superfed_cost"} <= set(names)
    assert sorted(names.values()) == sorted(JOBS.rglob("*.yaml"))


@pytest.mark.parametrize("name", sorted(jobfiles.shipped()))
def test_every_shipped_file_has_a_one_line_description_and_loads(name):
    path = jobfiles.shipped()[name]
    is_jobset, description = jobfiles.describe(path)
    assert path.read_text().startswith("# ") and description.endswith(".") and 20 <= len(description) <= 100, description
    if is_jobset:
        assert select_jobs(str(path), None, []) and load_jobset(str(path))
    else:
        assert load_job(str(path)).name


def test_a_local_file_wins_over_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert jobfiles.resolve("superfed_256") == JOBS / "superfed_256.yaml"
    assert jobfiles.resolve("superfed_256.yaml") == JOBS / "superfed_256.yaml"
    assert jobfiles.resolve("reproduce/efedsup", "job set") == JOBS / "reproduce" / "efedsup.yaml"
    (tmp_path / "superfed_256.yaml").write_text("rounds: 1\n")
    assert jobfiles.resolve("superfed_256") == Path("superfed_256.yaml")
    assert jobfiles.resolve("superfed_256.yaml") == Path("superfed_256.yaml")
    (tmp_path / "superfed_256").write_text("rounds: 2\n")
    assert jobfiles.resolve("superfed_256") == Path("superfed_256")          # the path as given comes first
    assert "it wins over the shipped 'superfed_256'" in jobfiles.source_note("superfed_256", Path("superfed_256"))
    assert jobfiles.source_note("x", JOBS / "default.yaml") == f"{JOBS / 'default.yaml'} (shipped as 'default')"


def test_an_unknown_name_is_one_line_naming_it_and_the_accepted_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        jobfiles.resolve("superfed_265")
    message = str(err.value)
    assert "\n" not in message and message.startswith("job 'superfed_265': no such file here")
    assert "default, deformed_digits, markov_digits, mobilenet_digits, superfed_256" in message
    assert "compare_digits" not in message                                   # a job set is no job
    with pytest.raises(ConfigError, match=r"job set 'cmp': .*: compare_digits, distreal, fednas, reproduce/efedsup"):
        jobfiles.resolve("cmp", "job set")
