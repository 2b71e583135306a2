"""Export a trained subnet of a finished run as a standalone program that plain torch loads.

    python tools/export.py RUN.h5 --arch largest --out subnet.pt2
    python tools/export.py RUN.h5 --arch d1,1-e.5,.5-k3,3-w1 --out small.pt2 --model 0
    python tools/export.py RUN.h5 --front 0 --out front0.pt2        # after tools/search.py RUN.h5

Writes OUT (a torch.export program: ``torch.export.load(OUT).module()(x)`` gives the logits of a
batch, without hpcfed) and OUT's .json beside it (architecture, MACs, parameters, input shape,
normalisation and its calibration, run file and model). The logits equal hpcfed's evaluation of
the subnet within 1e-5 (checked before writing). Bad input: one line, exit 2, nothing written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hpcfed.errors import HpcfedError
from hpcfed.search.export import export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a finished run's results file (python -m hpcfed.run --out RUN.h5)")
    parser.add_argument("--arch", metavar="NAME",
                        help="a reference subnet of the run (eval/subnet_names), largest, smallest, or any "
                             "architecture of its space by name, e.g. d2,1-e.25,.5,1-k3,3,5-w1")
    parser.add_argument("--front", type=int, metavar="I",
                        help="member I (from 0) of the search front that tools/search.py recorded in RUN.h5")
    parser.add_argument("--out", type=Path, required=True, help="the program file to write (.pt2)")
    parser.add_argument("--model", type=int, metavar="ID",
                        help="model of a multi-model run (default: the model owning the subnet if it is a "
                             "reference, else the model of the largest reference)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT and its .json")
    args = parser.parse_args(argv)
    try:
        meta = export(args.run, args.out, args.arch, args.front, args.model, args.overwrite)
    except HpcfedError as err:
        print(f"export: error: {err}", file=sys.stderr)
        return 2
    print(f"export: {meta['name']} of model {meta['model']} ({meta['macs_per_sample']} MACs per sample, "
          f"{meta['params']} parameters, logits within {meta['check']['max_abs_logit_difference']:.2g} of "
          f"hpcfed's on {meta['check']['test_samples']} test images) -> {args.out}, {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
