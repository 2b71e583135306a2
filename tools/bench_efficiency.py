"""Efficiency benchmark: client samples per second of a FedAvg simulation vs a plain torch loop.

A launcher kept so that ``python tools/bench_efficiency.py ...`` works in a checkout; the program is
hpcfed.commands.bench_efficiency, installed as ``hpcfed bench-efficiency``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench-efficiency", *sys.argv[1:]]))
