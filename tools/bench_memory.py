"""Memory benchmark: peak resident memory per rank of a short run on CIFAR-10 at its real size.

A launcher kept so that ``python tools/bench_memory.py ...`` works in a checkout; the program is
hpcfed.commands.bench_memory, installed as ``hpcfed bench-memory``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench-memory", *sys.argv[1:]]))
