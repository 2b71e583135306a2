"""DISTREAL dropout vectors: analytic R(d) against the measured time of one local training step.

A launcher kept so that ``python tools/bench_dropout.py ...`` works in a checkout; the program is
hpcfed.commands.bench_dropout, installed as ``hpcfed bench-dropout``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench-dropout", *sys.argv[1:]]))
