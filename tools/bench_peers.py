"""Side-by-side benchmark: the same FedAvg task in hpcfed, pfl-research and Flower, on the same cores.

A launcher kept so that ``python tools/bench_peers.py ...`` works in a checkout; the program is
hpcfed.commands.bench_peers, installed as ``hpcfed bench-peers``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench-peers", *sys.argv[1:]]))
