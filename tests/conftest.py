"""Fixtures shared by the test modules, and the tiers of the suite.

tests/ mirrors the package: unit tests sit in the folder of the layer they test (config/, data/,
supernet/, population/, learning/, round/, strategies/, record/, engine/, search/, experiments/);
tests that start real runs of hpcfed (a program, a tool, or a run in this process) sit in e2e/ and
claims/ and carry the ``e2e`` marker, which this file gives them; mpi/ and slurm/ carry their own.
``tests/run.sh --fast`` runs the unit tier (``-m "not e2e and not mpi and not slurm"``).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
RUN_FOLDERS = ("e2e", "claims")   # folders of tests that start real runs


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(item.fspath).resolve().relative_to(TESTS).parts[0] in RUN_FOLDERS:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one intra-op thread is fastest and avoids OpenMP spin-waits on busy 2-core hosts."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
