"""Export a trained subnet of a finished run as a standalone program that plain torch loads.

A launcher kept so that ``python tools/export.py ...`` works in a checkout; the program is
hpcfed.commands.export, installed as ``hpcfed export``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
