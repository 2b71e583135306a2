"""Search a trained supernet for its best subnets under a MACs budget (SuperFed's post-training search).

A launcher kept so that ``python tools/search.py ...`` works in a checkout; the program is
hpcfed.commands.search, installed as ``hpcfed search``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # this checkout's hpcfed

from hpcfed.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["search", *sys.argv[1:]]))
