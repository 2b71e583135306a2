"""Communication benchmark: MPI bytes per round per rank against the bytes the round's slices need.

A launcher kept so that ``python tools/bench_comm.py ...`` works in a checkout; the program is
hpcfed.commands.bench_comm, installed as ``hpcfed bench-comm``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench-comm", *sys.argv[1:]]))
