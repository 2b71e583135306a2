"""Print the per-subnet accuracy table and the cost ledger of a results file.

A launcher kept so that ``python tools/summarize.py ...`` works in a checkout; the program is
hpcfed.commands.summarize, installed as ``hpcfed summarize``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["summarize", *sys.argv[1:]]))
