"""DISTREAL's offline design-space exploration: the Pareto table of dropout vectors for a job's model.

A launcher kept so that ``python tools/dse.py ...`` works in a checkout; the program is
hpcfed.commands.dse, installed as ``hpcfed dse``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["dse", *sys.argv[1:]]))
