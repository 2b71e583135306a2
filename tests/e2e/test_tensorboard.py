"""The TensorBoard view (output.tensorboard): every round and evaluation exactly once, equal to the
results file, after a plain run and after a run killed and resumed; a missing package is one line."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpcfed.record.tensorboard import COLUMNS, VIRTUAL, subnet_labels
from tests.launch import MPI_ENV, ROOT, TINY, run_hpcfed

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard is not installed (pip install 'hpcfed[tensorboard]')")


# eval after rounds 1, 3, 5; checkpoints after rounds 1, 3, 5
JOB = [*TINY, "--set", "rounds=6", "--set", "checkpoint.every=2", "--set", "eval.every=2"]


def board(folder: Path) -> list[str]:
    return ["--set", f"output.tensorboard={folder}"]


def read_events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every (step, value) of every tag in the raw event files of ``folder``, in file order."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    out = defaultdict(list)
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                out[value.tag].append((event.step, tensor_util.make_ndarray(value.tensor).item()))
    return dict(out)


def assert_mirrors(events: dict, results: Path, rounds: int, evaluated: list[int]) -> None:
    """``events`` holds every round's row and every evaluation of ``results`` once, with its values."""
    with h5py.File(results, "r") as f:
        table = {c: f["rounds"][c][()] for c in f["rounds"]}
        eval_round, accuracy = f["eval/round"][()], f["eval/accuracy"][()]
        labels = subnet_labels(f["eval/subnet_names"].asstr()[()].tolist(), f["eval/subnet_models"][()].tolist())
    assert table["round"].tolist() == list(range(rounds)) and eval_round.tolist() == evaluated
    virtual_ms = [round(table["virtual_time_s"][r] * 1000) for r in eval_round]
    expected = {f"round/{c}": (table["round"].tolist(), table[c]) for c in COLUMNS}
    for j, label in enumerate(labels):
        expected[f"eval/{label}"] = (eval_round.tolist(), accuracy[:, j])
        expected[f"{VIRTUAL}/{label}"] = (virtual_ms, accuracy[:, j])
    assert len(labels) >= 2 and set(events) == set(expected)
    for tag, (steps, values) in expected.items():
        assert [s for s, _ in events[tag]] == steps, tag          # every step, each once, in order
        np.testing.assert_array_equal([v for _, v in events[tag]], values, err_msg=tag)   # float64, exact


@needs_tensorboard
def test_a_run_mirrors_every_round_and_evaluation_once(tmp_path):
    out, tb = tmp_path / "run.h5", tmp_path / "tb"
    proc = run_hpcfed([*JOB, *board(tb), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert f"TensorBoard {tb / 'run'}" in proc.stdout
    files = list((tb / "run").iterdir())
    assert len(files) == 1 and files[0].name.startswith("events.out.tfevents.")
    assert_mirrors(read_events(tb / "run"), out, 6, [1, 3, 5])
    # another run of the same name into the same folder is refused, like an existing --out, and changes nothing
    before = files[0].read_bytes()
    other = tmp_path / "other"
    other.mkdir()
    refused = run_hpcfed([*JOB, *board(tb), "--out", str(other / "run.h5")])
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"hpcfed: error: output.tensorboard: {str(tb / 'run')!r} already holds "
                                      "TensorBoard events; pass --resume to continue that run or --overwrite to "
                                      "replace them, or choose another folder")
    assert list((tb / "run").iterdir()) == files and files[0].read_bytes() == before
    assert not (other / "run.h5").exists()


@needs_tensorboard
def test_a_killed_and_resumed_run_holds_every_step_once(tmp_path):
    """SIGKILL halfway through the checkpoint after round 3: the results file and the events already
    hold rounds 0-3 and round 3's evaluation, the checkpoint on disk is round 1's. The resume (under
    mpirun -n 3: rank 0 alone writes events) cuts the file back to rounds 0-1 and plays 2-5 again."""
    out, tb = tmp_path / "run.h5", tmp_path / "tb"
    killed = run_hpcfed([*JOB, *board(tb), "--out", str(out), "--set", "faults.kill_in_checkpoint=3"])
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = read_events(tb / "run")
    assert [s for s, _ in before["round/train_loss"]] == [0, 1, 2, 3]   # without the rewrite 2 and 3 would repeat
    resumed = run_hpcfed([*JOB, *board(tb), "--out", str(out), "--resume"], ranks=3, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert len(list((tb / "run").iterdir())) == 1
    assert_mirrors(read_events(tb / "run"), out, 6, [1, 3, 5])


def test_without_the_package_the_job_stops_with_one_line_and_no_output(tmp_path):
    out = tmp_path / "run.h5"
    hide = ("import sys; sys.modules['tensorboard'] = sys.modules['torch.utils.tensorboard'] = None; "
            "from hpcfed.run import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", hide, *JOB, "--set", "output.tensorboard=tb", "--out", str(out)],
                          cwd=tmp_path, env={**os.environ, **MPI_ENV, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("hpcfed: error: output.tensorboard = 'tb': needs the tensorboard package, which "
                                   "is not installed; pip install tensorboard (or pip install 'hpcfed[tensorboard]'), "
                                   "or leave the key out")
    assert list(tmp_path.iterdir()) == []
