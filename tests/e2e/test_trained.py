"""A finished run reopened as a trained supernet (hpcfed.search.trained): what tools/search.py and
tools/export.py build on."""
from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from hpcfed.errors import HpcfedError
from hpcfed.learning.evaluation import evaluate
from hpcfed.search.trained import open_run
from tests.launch import TINY, run_hpcfed


def test_a_finished_run_reopens_with_its_final_weights_and_scores_as_its_own_evaluation(tmp_path):
    out = tmp_path / "run.h5"
    proc = run_hpcfed([*TINY, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    run = open_run(out)
    with h5py.File(out, "r") as f:
        reported = f["eval/accuracy"][-1]
        digest = f.attrs["final_model_sha256"]
    assert hashlib.sha256(run.models[0].tobytes()).hexdigest() == digest
    data = run.data()
    network = run.network(run.space(data))
    accuracy = evaluate(network, run.reference_specs(), data.x_test, data.y_test, 7, run.calibration(data))
    np.testing.assert_array_equal(accuracy, reported)


def test_a_finished_run_of_an_older_hpcfed_stays_reusable_when_only_defaulted_fields_were_added(tmp_path):
    """hpcfed.experiments.jobruns.reusable reads a held job with today's defaults (a field added since takes its default)."""
    import yaml

    from hpcfed.assembly.job import load_job
    from hpcfed.experiments.jobruns import reusable

    out = tmp_path / "run.h5"
    assert run_hpcfed([*TINY, "--out", str(out)]).returncode == 0
    job = load_job(None, [a for a in TINY if a != "--set"])
    with h5py.File(out, "r+") as f:
        held = yaml.safe_load(f.attrs["config_yaml"])
        del held["devices"]["levels"], held["eval"]["calibration_samples"]   # as written before they existed
        f.attrs["config_yaml"] = yaml.safe_dump(held)
    assert reusable(out, job)
    with h5py.File(out, "r+") as f:
        held["train"]["lr"] = 0.5
        f.attrs["config_yaml"] = yaml.safe_dump(held)
    with pytest.raises(HpcfedError, match="train.lr differs"):
        reusable(out, job)
