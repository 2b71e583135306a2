"""FEMNIST (TFF's HDF5 layout) and CIFAR-100 (cifar-100-python) from small files the tests write in
exactly those formats: shapes, labels, class counts, the natural partition (one client per writer),
bad files (one-line errors) and a short run on each."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from hpcfed.assembly.job import load_job
from hpcfed.assembly.parts import build_space
from hpcfed.record.reading import read_results
from hpcfed.supernet import ElasticResNet
from tests.fakes import write_cifar100, write_fed_emnist
from tests.launch import TINY, run_hpcfed

SHORT = [*TINY, "--set", "rounds=2", "--set", "eval.every=2", "--set", "clients.per_round=2",
         "--set", "strategy.name=fedavg", "--set", "devices.memory_mb=[1000,1000]"]


def supernet_params(input_shape, classes: int) -> int:
    """Parameters of SHORT's supernet for inputs of ``input_shape`` and ``classes`` outputs."""
    job = load_job(None, [v for v in SHORT if v != "--set"])
    return ElasticResNet(build_space(job, input_shape, classes), torch.Generator()).num_params


def saved_params(out) -> int:
    """Length of the run's final weights (models/0): the model took its shape from the data."""
    with h5py.File(out, "r") as f:
        return len(f["models"]["0"])


def femnist_run(tmp_path) -> list[str]:
    """SHORT on five writers' FEMNIST files, one client per writer."""
    folder = write_fed_emnist(tmp_path / "fed_emnist", counts=(12, 9, 14, 8, 10), test_counts=(6, 6))
    return [*SHORT, "--set", "data.name=femnist", "--set", f"data.path={folder}", "--set", "data.partition=natural",
            "--set", "clients.total=5"]


def test_a_short_femnist_run_with_one_client_per_writer(tmp_path):
    out = tmp_path / "femnist.h5"
    proc = run_hpcfed([*femnist_run(tmp_path), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    r = read_results(out)
    assert r["attrs"]["status"] == "finished" and len(r["rounds"]["round"]) == 2
    assert set(r["clients"]["client"]) <= set(range(5)) and len(r["eval"]["accuracy"])
    assert "data femnist, 5 clients" in proc.stdout
    assert np.isfinite(r["rounds"]["train_loss"]).all()
    assert saved_params(out) == supernet_params((1, 28, 28), 62) != supernet_params((1, 28, 28), 10)


def test_a_femnist_run_under_mpirun_equals_the_serial_run(tmp_path):
    args = [*femnist_run(tmp_path), "--set", "clients.per_round=4"]
    digests = []
    for ranks in (0, 3):   # every rank reads the same HDF5 files
        out = tmp_path / f"ranks{ranks}.h5"
        proc = run_hpcfed([*args, "--out", str(out)], ranks=ranks)
        assert proc.returncode == 0, proc.stderr
        digests.append(read_results(out)["attrs"]["final_model_sha256"])
    assert digests[0] == digests[1] and digests[0]


def test_a_short_cifar100_run_on_coarse_labels(tmp_path):
    folder = write_cifar100(tmp_path / "cifar-100-python", train=80, test=20)
    out = tmp_path / "cifar100.h5"
    proc = run_hpcfed([*SHORT, "--set", "data.name=cifar100", "--set", f"data.path={folder}",
                       "--set", "data.labels=coarse", "--set", "data.partition=iid", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    r = read_results(out)
    assert r["attrs"]["status"] == "finished" and len(r["rounds"]["round"]) == 2
    assert np.isfinite(r["rounds"]["train_loss"]).all()
    assert saved_params(out) == supernet_params((3, 32, 32), 20) != supernet_params((3, 32, 32), 100)


def test_tiny_run_finishes_and_bad_value_exits_2(tmp_path):
    data = ["--set", "data.name=deformed_digits", "--set", "data.deformed_per_digit=1",
            "--set", "data.deformed_test=200", "--set", "data.client_val_fraction=0.2", "--set", "eval.val_every=3"]
    proc = run_hpcfed([*TINY, *data, "--out", str(tmp_path / "run.h5")], timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "data deformed_digits" in proc.stdout and "ended: all 3 rounds played" in proc.stdout
    proc = run_hpcfed([*TINY, *data, "--set", "data.image_size=24", "--out", str(tmp_path / "bad.h5")], timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "data.image_size" in lines[0], proc.stderr
    assert not (tmp_path / "bad.h5").exists()
