"""Round-overhead benchmark: the share of a round that is not local training, and peak memory per

A launcher kept so that ``python tools/bench_overhead.py ...`` works in a checkout; the program is
hpcfed.commands.bench_overhead, installed as ``hpcfed bench-overhead``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench-overhead", *sys.argv[1:]]))
