"""Run every method of a job set on its one setting and compare them: accuracy of each reference

A launcher kept so that ``python tools/compare.py ...`` works in a checkout; the program is
hpcfed.commands.compare, installed as ``hpcfed compare``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
