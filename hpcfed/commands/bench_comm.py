"""Communication benchmark: MPI bytes per round per rank against the bytes the round's slices need.

Runs jobs under ``mpirun`` and reads two columns of their results files: ``rounds/mpi_bytes``
(everything hpcfed moved between ranks: the pickled round plan, the slice values shipped down and
the fused reduction buffer) and ``rounds/slice_bytes`` (what the slices themselves need: 4 bytes
per float32 element of each worker's union of its clients' slices, once down and once up). The
ratio is the price of the transport; a ratio of 1 would move nothing but slice values.

    python tools/bench_comm.py                        # SuperFed default job and FedAvg, 3 and 5 ranks
    python tools/bench_comm.py --ranks 3 --rounds 5 --set train.batch_clients=4
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hpcfed.experiments.launch import run_settings

JOBS = {
    "superfed (default job)": [],
    "fedavg, largest subnet": ["strategy.name=fedavg", "strategy.fedavg.arch=largest", "devices.memory_mb=[1000,1000]"],
    "heterofl": ["strategy.name=heterofl"],
}


def measure(settings: list[str], ranks: int, rounds: int) -> dict:
    """Mean MPI bytes and slice bytes per round per worker of one run, and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        sets = [*settings, f"rounds={rounds}", f"eval.every={rounds}"]
        rounds_table = run_settings(sets, ranks, Path(tmp) / "comm.h5", "bench_comm")[0]["rounds"]
    workers = ranks - 1
    mpi, need = rounds_table["mpi_bytes"].sum() / rounds, rounds_table["slice_bytes"].sum() / rounds
    return {"mpi_per_rank": mpi / workers, "need_per_rank": need / workers, "ratio": mpi / need}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", default="3,5", help="comma-separated MPI rank counts (>= 2)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra job settings")
    args = parser.parse_args(argv)
    ranks = [int(v) for v in args.ranks.split(",")]
    if min(ranks) < 2:
        parser.error("--ranks: every count must be >= 2 (rank 0 serves, the others train)")
    print(f"{'job':<24} {'ranks':>5} {'MPI B/round/worker':>19} {'slices need':>12} {'ratio':>6}")
    for name, settings in JOBS.items():
        for n in ranks:
            m = measure([*settings, *args.overrides], n, args.rounds)
            print(f"{name:<24} {n:>5} {m['mpi_per_rank']:>19,.0f} {m['need_per_rank']:>12,.0f} {m['ratio']:>6.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
