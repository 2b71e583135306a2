"""Step benchmark: one training step in each precision and memory layout, hpcfed against a plain module.

A launcher kept so that ``python tools/bench_step.py ...`` works in a checkout; the program is
hpcfed.commands.bench_step, installed as ``hpcfed bench-step``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench-step", *sys.argv[1:]]))
