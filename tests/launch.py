"""Helpers for tests that launch hpcfed as a real program, serially or under mpirun."""
from __future__ import annotations

import subprocess
from pathlib import Path

from hpcfed.experiments import launch
from hpcfed.experiments.launch import MPI_ENV, mpirun  # noqa: F401  (tests import them from here)

ROOT = launch.SOURCE_ROOT

# A job small enough for a test: 12 digits clients, 4 per round, 3 rounds.
TINY = ["--set", "rounds=3", "--set", "clients.total=12", "--set", "clients.per_round=4",
        "--set", "train.local_epochs=1", "--set", "eval.every=3", "--set", "model.widths=[8,16]",
        "--set", "model.stem=8"]


def run_hpcfed(args: list[str], ranks: int = 0, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m hpcfed.run ARGS``, serially (ranks=0) or under ``mpirun -n ranks``."""
    return launch.run_hpcfed(args, ranks, timeout, cwd)
