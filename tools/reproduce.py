"""Reproduce a paper's claim with hpcfed's own runs, over several seeds, beside the claim.

A launcher kept so that ``python tools/reproduce.py ...`` works in a checkout; the program is
hpcfed.commands.reproduce, installed as ``hpcfed reproduce``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["reproduce", *sys.argv[1:]]))
