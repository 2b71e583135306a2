"""Plot accuracy vs MACs (last evaluation) and accuracy vs virtual time of a results file, as PNG.

    python tools/plot.py RUN.h5 [--out-dir DIR]     # writes RUN-acc_vs_macs.png, RUN-acc_vs_time.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hpcfed.results import read_results  # noqa: E402


def plot(path: str, out_dir: str | None = None) -> list[Path]:
    """Write the two figures beside ``path`` (or into ``out_dir``); return their paths."""
    r = read_results(path)
    ev, rounds = r["eval"], r["rounds"]
    if not len(ev["round"]):
        raise ValueError(f"{path!r} holds no evaluation yet")
    stem = Path(path).stem
    folder = Path(out_dir) if out_dir else Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    label = f"{r['attrs'].get('strategy')} (seed {r['attrs'].get('seed')})"

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ev["subnet_macs"] / 1e6, ev["accuracy"][-1] * 100, "o-", label=label)
    ax.set(xlabel="forward MACs per sample (millions)", ylabel="test accuracy (%)",
           title=f"after round {int(ev['round'][-1]) + 1}")
    ax.grid(alpha=0.3)
    ax.legend()
    macs_png = folder / f"{stem}-acc_vs_macs.png"
    fig.tight_layout()
    fig.savefig(macs_png, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    times = rounds["virtual_time_s"][np.searchsorted(rounds["round"], ev["round"])]
    for j, name in enumerate(ev["subnet_names"]):
        ax.plot(times, ev["accuracy"][:, j] * 100, "o-", markersize=3, label=f"{name} ({ev['subnet_macs'][j] / 1e6:.2g} M)")
    ax.set(xlabel="virtual time (s)", ylabel="test accuracy (%)", title=label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    time_png = folder / f"{stem}-acc_vs_time.png"
    fig.tight_layout()
    fig.savefig(time_png, dpi=120)
    plt.close(fig)
    return [macs_png, time_png]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="HDF5 results file written by hpcfed.run")
    parser.add_argument("--out-dir", help="folder for the PNG files (default: beside the run)")
    args = parser.parse_args(argv)
    try:
        for png in plot(args.run, args.out_dir):
            print(png)
    except (OSError, KeyError, ValueError) as err:
        print(f"plot: error: {args.run!r}: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
