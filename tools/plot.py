"""Plot a results file (accuracy vs MACs, accuracy vs virtual time), or several runs on one figure, as PNG.

A launcher kept so that ``python tools/plot.py ...`` works in a checkout; the program is
hpcfed.commands.plot, installed as ``hpcfed plot``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["plot", *sys.argv[1:]]))
