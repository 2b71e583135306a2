"""The benchmarks in tools/ run end to end at a tiny size and print sane figures."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.launch import MPI_ENV, ROOT

SMALL_MODEL = ["--set", "model.stem=4", "--set", "model.widths=[4,8]", "--set", "model.depths=[1,1]"]


def run_tool(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **MPI_ENV})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_bench_overhead_reports_overhead_and_memory_per_population():
    out = run_tool("tools/bench_overhead.py", "--populations", "100,5000", "--per-round", "20", "--rounds", "2",
                   "--ranks", "2", *SMALL_MODEL)
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+20\s", line)]
    assert [r[0] for r in rows] == ["100", "5000"]
    for clients, per_round, round_s, train_s, overhead, eval_share, peaks, ratio in rows:
        assert 0 <= float(eval_share.rstrip("%")) <= float(overhead.rstrip("%"))
        assert 0 < float(train_s) <= float(round_s)
        assert 0 <= float(overhead.rstrip("%")) < 100
        assert len(peaks.split("/")) == 2 and all(float(m) > 10 for m in peaks.split("/"))   # MiB, 2 ranks
        assert float(ratio.rstrip("x")) > 0
    assert rows[0][-1] == "1.000x"


def test_bench_comm_reports_mpi_bytes_against_slice_needs():
    out = run_tool("tools/bench_comm.py", "--ranks", "2", "--rounds", "2", *SMALL_MODEL)
    rows = [line for line in out.splitlines() if re.search(r"\s2\s+[\d,]+\s+[\d,]+\s+[\d.]+$", line)]
    assert len(rows) == 3
    for line in rows:
        mpi, need, ratio = line.split()[-3:]
        mpi, need = int(mpi.replace(",", "")), int(need.replace(",", ""))
        assert need > 0 and mpi >= need and float(ratio) == pytest.approx(mpi / need, abs=0.01)
