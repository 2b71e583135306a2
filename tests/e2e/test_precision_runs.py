"""A bf16 run (train.precision: bf16) keeps hpcfed's invariances: bit-identical on 1, 2 and 3 ranks and
after a kill and ``--resume``, because weights, reduction, merge and checkpoints stay fp32."""
from __future__ import annotations

import h5py

from tests.e2e.test_resume import PLACEMENT, assert_same_science, tables
from tests.launch import TINY, run_hpcfed

JOB = [*TINY, "--set", "rounds=4", "--set", "checkpoint.every=2", "--set", "eval.every=2",
       "--set", "train.precision=bf16"]


def test_a_bf16_run_is_bit_identical_on_1_2_and_3_ranks_and_after_a_kill_and_resume(tmp_path):
    runs = {}
    for ranks in (0, 2, 3):
        out = tmp_path / f"n{ranks}.h5"
        proc = run_hpcfed([*JOB, "--out", str(out)], ranks=ranks)
        assert proc.returncode == 0, proc.stderr
        runs[ranks] = tables(out, PLACEMENT)
    assert_same_science(runs[2], runs[0])
    assert_same_science(runs[3], runs[0])

    killed = tmp_path / "killed.h5"
    proc = run_hpcfed([*JOB, "--out", str(killed), "--set", "faults.kill_rank=[0,3]"], ranks=2)
    assert proc.returncode != 0
    assert run_hpcfed([*JOB, "--out", str(killed), "--resume"]).returncode == 0
    assert_same_science(tables(killed, PLACEMENT), runs[0])

    fp32 = tmp_path / "fp32.h5"
    assert run_hpcfed([*JOB, "--out", str(fp32), "--set", "train.precision=fp32"]).returncode == 0
    with h5py.File(fp32, "r") as f:
        assert f.attrs["final_model_sha256"] != runs[0]["sha"]      # the precision acts
        assert (abs(f["eval/accuracy"][-1] - runs[0]["eval/accuracy"][-1]) < 0.1).all()
