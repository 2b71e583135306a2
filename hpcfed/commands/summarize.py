"""Print the per-subnet accuracy table and the cost ledger of a results file.

    python tools/summarize.py RUN.h5 [RUN2.h5 ...]

A running job's file can be read at any time (hpcfed.record.live): the summary shows the rows written so
far and says "running, round k of N".
"""
from __future__ import annotations

import argparse
import sys

from hpcfed.errors import HpcfedError
from hpcfed.record.reading import read_results
from hpcfed.record.report import summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="HDF5 results files written by hpcfed.run")
    args = parser.parse_args(argv)
    for i, path in enumerate(args.runs):
        try:
            text = summary(read_results(path))
        except HpcfedError as err:
            print(f"summarize: error: {err}", file=sys.stderr)
            return 2
        except KeyError as err:
            print(f"summarize: error: {path!r} is not an hpcfed results file (no {err} table)", file=sys.stderr)
            return 2
        print(("\n" if i else "") + f"== {path}\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
