"""Hostile input: every bad input gives exit status 2, one line on stderr, and changes no file.

Each case builds its files in a fresh folder, runs the real program, and checks that the folder
holds exactly the same bytes afterwards (nothing created, overwritten or truncated).
"""
from __future__ import annotations

import os
import pickle
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.fakes import write_batch, write_cifar10, write_cifar100, write_fed_emnist
from tests.launch import TINY, run_hpcfed

RESUMABLE = [*TINY, "--set", "rounds=4", "--set", "checkpoint.every=1"]


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> Path:
    """A run SIGKILLed in round 2, with a results file and a checkpoint to resume from."""
    out = tmp_path_factory.mktemp("interrupted") / "run.h5"
    proc = run_hpcfed([*RESUMABLE, "--out", str(out), "--set", "faults.kill_rank=[0,2]"])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return out


def copy_run(src: Path, folder: Path) -> Path:
    out = folder / "run.h5"
    out.write_bytes(src.read_bytes())
    (folder / "run.h5.ckpt").write_bytes(Path(str(src) + ".ckpt").read_bytes())
    return out


def job_file(folder: Path, text: str) -> list[str]:
    (folder / "job.yaml").write_text(text)
    return [str(folder / "job.yaml")]


def cifar(folder: Path, spoil=None) -> list[str]:
    path = write_cifar10(folder / "cifar-10-batches-py")
    if spoil:
        spoil(path)
    return ["--set", "data.name=cifar10", "--set", f"data.path={path}", "--set", "data.partition=iid"]


def cifar100(folder: Path, spoil=None) -> list[str]:
    path = write_cifar100(folder / "cifar-100-python")
    if spoil:
        spoil(path)
    return ["--set", "data.name=cifar100", "--set", f"data.path={path}", "--set", "data.partition=iid"]


def femnist(folder: Path, spoil=None) -> list[str]:
    path = write_fed_emnist(folder / "fed_emnist")
    if spoil:
        spoil(path)
    return ["--set", "data.name=femnist", "--set", f"data.path={path}", "--set", "data.partition=natural",
            "--set", "clients.total=5", "--set", "clients.per_round=2"]


def trace(folder: Path, text: str) -> list[str]:
    (folder / "trace.csv").write_text(text)
    return ["--set", "devices.availability=trace", "--set", f"devices.trace={folder / 'trace.csv'}"]


class Shell:
    """Pickles to os.system("touch MARKER"): loading it must not run it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def file_as_folder(folder: Path) -> list[str]:
    """--out below a plain file: its folder cannot be made (a missing folder itself is made, as runs/ is)."""
    (folder / "plain").write_text("")
    return ["--out", str(folder / "plain" / "dir" / "run.h5")]


def malicious(folder: Path) -> None:
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": Shell(folder.parent / "pwned"), b"labels": [0]}, handle, protocol=2)


def wrong_shape_results(folder: Path, run: Path) -> list[str]:
    out = copy_run(run, folder)
    with h5py.File(out, "r+") as f:
        del f["eval/accuracy"]
        f.create_dataset("eval/accuracy", data=np.zeros((1, 2, 3)))
    return ["--out", str(out), "--resume"]


def corrupt_checkpoint(folder: Path, run: Path) -> list[str]:
    out = copy_run(run, folder)
    (folder / "run.h5.ckpt").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    return ["--out", str(out), "--resume"]


# (id, builder(folder, interrupted run) -> extra arguments, text the error line must contain)
CASES = [
    ("unknown key", lambda d, r: ["--set", "roundz=3"], "roundz"),
    ("unknown nested key", lambda d, r: ["--set", "train.lrate=0.1"], "train.lrate"),
    ("negative rounds", lambda d, r: ["--set", "rounds=-1"], "rounds = -1"),
    ("wrong type", lambda d, r: ["--set", "rounds=ten"], "rounds = 'ten'"),
    ("bool for an integer", lambda d, r: ["--set", "clients.total=true"], "clients.total"),
    ("more per round than clients", lambda d, r: ["--set", "clients.per_round=40"], "clients.per_round = 40"),
    ("unknown strategy", lambda d, r: ["--set", "strategy.name=fedbest"], "fedbest"),
    ("old flat strategy option", lambda d, r: ["--set", "strategy.beta0=0.5"],
     "write strategy: {name: superfed, superfed: {beta0: 0.5}}"),
    ("options of another method", lambda d, r: job_file(d, "strategy: {name: superfed, fedsup: {distill: false}}\n"),
     "strategy.fedsup: options of fedsup, but the chosen method (strategy.name) is superfed"),
    ("even kernel", lambda d, r: ["--set", "model.kernel_choices=[4]"], "model.kernel_choices"),
    ("expand above 1", lambda d, r: ["--set", "model.expand_choices=[0.5,1.5]"], "model.expand_choices"),
    ("stages disagree", lambda d, r: ["--set", "model.depths=[2]"], "model.depths"),
    ("GPU asked for where there is none", lambda d, r: ["--set", "train.device=cuda"], "train.device = 'cuda'"),
    ("bad --set syntax", lambda d, r: ["--set", "rounds"], "key.sub=value"),
    ("bad option", lambda d, r: ["--frobnicate"], "--frobnicate"),
    ("missing job file", lambda d, r: [str(d / "nope.yaml")], "nope.yaml"),
    ("malformed YAML", lambda d, r: job_file(d, "rounds: [1, 2\nseed: 0\n"), "not valid YAML"),
    ("YAML that is not a mapping", lambda d, r: job_file(d, "- rounds\n- 3\n"), "mapping"),
    ("federated validation without validation splits", lambda d, r: ["--set", "eval.val_every=2"],
     "data.client_val_fraction"),
    ("a validation share of 1.5", lambda d, r: ["--set", "data.client_val_fraction=1.5"], "data.client_val_fraction"),
    ("natural partition of digits", lambda d, r: ["--set", "data.partition=natural"], "natural"),
    ("trace mode without a trace", lambda d, r: ["--set", "devices.availability=trace"], "devices.trace"),
    ("trace with a bad header", lambda d, r: trace(d, "client,when,avail\n0,0,1\n"), "line 1"),
    ("trace availability 1.5", lambda d, r: trace(d, "client,start_s,availability\n0,0,1.5\n"), "line 2"),
    ("trace client out of range", lambda d, r: trace(d, "client,start_s,availability\n99,0,1\n"), "client 99"),
    ("missing data folder", lambda d, r: ["--set", "data.name=cifar10", "--set", f"data.path={d / 'none'}"],
     str(Path("none"))),
    ("truncated CIFAR batch", lambda d, r: cifar(d, lambda p: (p / "data_batch_3").write_bytes(
        (p / "data_batch_3").read_bytes()[:5000])), "data_batch_3"),
    ("CIFAR batch of the wrong shape", lambda d, r: cifar(d, lambda p: write_batch(
        p / "data_batch_2", 20, seed=2, data=np.zeros((20, 3000), dtype=np.uint8))), "data_batch_2"),
    ("CIFAR pickle that runs code", lambda d, r: cifar(d, malicious), "data_batch_1"),
    ("CIFAR-100 folder without meta", lambda d, r: cifar100(d, lambda p: (p / "meta").unlink()), "lacks meta"),
    ("truncated FEMNIST file", lambda d, r: femnist(d, lambda p: (p / "fed_emnist_train.h5").write_bytes(
        (p / "fed_emnist_train.h5").read_bytes()[:3000])), "fed_emnist_train.h5"),
    ("more FEMNIST clients than writers", lambda d, r: [*femnist(d), "--set", "clients.total=50"], "5 writers"),
    ("output folder under a file", lambda d, r: file_as_folder(d), "is a file, so folder"),
    ("output is a folder", lambda d, r: ["--out", str(d)], "is a directory"),
    ("existing results file", lambda d, r: ["--out", str(copy_run(r, d))], "--overwrite"),
    ("resume without results", lambda d, r: ["--out", str(d / "none.h5"), "--resume"], "does not exist"),
    ("resume and overwrite", lambda d, r: ["--out", str(copy_run(r, d)), "--resume", "--overwrite"], "contradict"),
    ("resume another job", lambda d, r: ["--out", str(copy_run(r, d)), "--resume", "--set", "seed=7"],
     "seed was 0, the job now says 7"),
    ("corrupt checkpoint", corrupt_checkpoint, "not a readable hpcfed checkpoint"),
    ("results file of the wrong shape", wrong_shape_results, "eval/accuracy of shape (1, 2, 3)"),
]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("what,build,named", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_status_2_and_changes_nothing(tmp_path, interrupted_run, what, build, named):
    if what.startswith("GPU") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    args = build(tmp_path, interrupted_run)
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "new.h5")]
    before = snapshot(tmp_path)
    proc = run_hpcfed([*RESUMABLE, *args], timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcfed: error: ") and named in lines[0], proc.stderr
    assert snapshot(tmp_path) == before
    assert not (tmp_path / "pwned").exists()


def test_there_are_at_least_twenty_distinct_bad_inputs():
    assert len({c[0] for c in CASES}) >= 20


def test_bad_input_under_mpirun_ends_every_rank(tmp_path):
    out = tmp_path / "bad.h5"
    proc = run_hpcfed([*TINY, "--out", str(out), "--set", "rounds=-1"], ranks=3, timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.count("hpcfed: error: rounds = -1") == 1
    assert not out.exists()


@pytest.mark.parametrize("overrides, named", [
    (["devices.levels=[1.0,0.0]"], "devices.levels"),
    (["devices.levels=[1.5,0.5]"], "devices.levels"),
    (["devices.levels=[]"], "devices.levels"),
    (["devices.stay_prob=1.2"], "devices.stay_prob"),
    (["devices.stay_prob=-0.1"], "devices.stay_prob"),
    (["devices.step_s=0"], "devices.step_s"),
    (["devices.availability=markov2"], "devices.availability"),
])
def test_bad_markov_settings_stop_with_one_line(overrides, named, tmp_path):
    args = [*TINY, "--set", "devices.availability=markov", "--out", str(tmp_path / "run.h5"), "--dry-run"]
    for item in overrides:
        args += ["--set", item]
    proc = run_hpcfed(args, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("hpcfed: error: ") and named in lines[0], proc.stderr
    assert not any(tmp_path.iterdir())
