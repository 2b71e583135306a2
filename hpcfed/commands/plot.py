"""Plot a results file (accuracy vs MACs, accuracy vs virtual time), or several runs on one figure, as PNG.

    python tools/plot.py RUN.h5 [--out-dir DIR]     # writes RUN-acc_vs_macs.png, RUN-acc_vs_time.png
                                                    # (a search: RUN-search.png)
    python tools/plot.py RUN1.h5 RUN2.h5 [--out FIG.png] [--labels A,B] [--subnet largest] [--target 0.9]
                                                    # one figure: test accuracy against virtual time

One run, as in the first line: the run's last evaluation against forward MACs per sample, and every
reference subnet's accuracy against virtual time, beside the run (or in --out-dir); a FedNAS run,
which reads the test set only after its search, gets its search drawn instead (every candidate's
validation loss against the round, the family against MACs). A figure with nothing to draw is not
written; a line on stderr says why.

Several runs, or any of --out, --labels, --subnet, --target, --x: one figure (hpcfed.record.figures), one
line per run for its largest reference subnet (--subnet all|largest|smallest|NAME), labelled with
the file name without .h5 (--labels: comma-separated, one per run), against virtual time (--x
virtual) or rounds completed (--x round). --target ACC (a fraction in (0, 1]) draws a horizontal
line there and a star where each line first reaches it. Written to --out (default:
runs-acc_vs_time.png in --out-dir, or beside the first run).

A running job's file can be plotted at any time (hpcfed.record.live): the figures show the evaluations
written so far, their titles and a note on stderr say "running, round k of N".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)
import numpy as np

from hpcfed.errors import HpcfedError
from hpcfed.record.comparison import parse_target
from hpcfed.record.figures import X_CHOICES, legend_outside, macs_axis, pick_subnets, save, style, time_to_accuracy_figure
from hpcfed.record.reading import read_results
from hpcfed.record.report import run_state
from hpcfed.strategies import STRATEGIES, Strategy
from hpcfed.units import si


def plot(path: str, out_dir: str | None = None) -> list[Path]:
    """Write the run's figures beside ``path`` (or into ``out_dir``): its last evaluation against MACs and
    every reference subnet against virtual time, when it has test evaluations, and its method's own
    figure (a search's candidates); return their paths. A figure with nothing to draw is not written."""
    r = read_results(path)
    ev, rounds = r["eval"], r["rounds"]
    running = _running(path, r)
    method = STRATEGIES.get(str(r["attrs"].get("strategy")), Strategy)
    if not (len(ev["round"]) and len(ev["subnet_names"])) and "search" not in r:
        raise HpcfedError(f"{path!r} holds no evaluation yet" + (f" ({running})" if running else ""))
    stem = Path(path).stem
    folder = Path(out_dir) if out_dir else Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    label = f"{r['attrs'].get('strategy')} (seed {r['attrs'].get('seed')})" + (f", {running}" if running else "")
    written = []
    if len(ev["round"]) and len(ev["subnet_names"]):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        order = np.argsort(ev["subnet_macs"], kind="stable")
        ax.plot(np.asarray(ev["subnet_macs"])[order], ev["accuracy"][-1][order] * 100, "o-", label=label)
        ax.set(xscale="log", xlabel="forward MACs per sample", ylabel="test accuracy (%)",
               title=f"after round {int(ev['round'][-1]) + 1}")
        written.append(finish(fig, folder / f"{stem}-acc_vs_macs.png", "no reference subnet"))

        fig, ax = plt.subplots(figsize=(5, 3.5))
        times = rounds["virtual_time_s"][np.searchsorted(rounds["round"], ev["round"])]
        for j, name in enumerate(ev["subnet_names"]):
            ax.plot(times, ev["accuracy"][:, j] * 100, markersize=3, label=f"{name} ({si(ev['subnet_macs'][j], 'MAC')})",
                    **style(j))
        ax.set(xlabel="virtual time (s)", ylabel="test accuracy (%)", title=label)
        written.append(finish(fig, folder / f"{stem}-acc_vs_time.png", "no reference subnet"))
    fig = plt.figure(figsize=(11, 4))
    name = method.draw(r, fig)
    if name:
        fig.suptitle(label)
        written.append(finish(fig, folder / f"{stem}-{name}.png", f"the {name} holds nothing to draw yet"))
    plt.close(fig)
    return [p for p in written if p]


def finish(fig, path: Path, why_empty: str) -> Path | None:
    """Human units on MACs axes, legends outside, a grid; write it unless it is empty (hpcfed.record.figures.save)."""
    for ax in fig.axes:
        if "MACs" in ax.get_xlabel():
            macs_axis(ax.xaxis)
        ax.grid(alpha=0.3)
        legend_outside(ax)
    fig.tight_layout()
    written = save(fig, path, why_empty)
    plt.close(fig)
    return written


def plot_runs(runs: list[str], out: str | None = None, out_dir: str | None = None, labels: str | None = None,
              subnet: str = "largest", target: float | None = None, x: str = "virtual") -> Path:
    """Several runs' accuracy against virtual time on one figure (hpcfed.record.figures.time_to_accuracy_figure);
    return its path. Bad input (an unreadable run, one without evaluations, a --subnet it lacks, a
    wrong number of --labels) is an HpcfedError naming it."""
    names = labels.split(",") if labels is not None else [Path(run).stem for run in runs]
    if len(names) != len(runs):
        raise HpcfedError(f"--labels {labels!r}: {len(names)} labels for {len(runs)} runs; give one per run, "
                          f"comma-separated")
    loaded = []
    for run, name in zip(runs, names):
        results = read_results(run)
        _running(run, results)
        if not len(results["eval"]["round"]) or not len(results["eval"]["subnet_names"]):
            raise HpcfedError(f"{run!r} holds no evaluation of a reference subnet (not yet, or a search: "
                              f"see tools/summarize.py)")
        try:
            pick_subnets(results, subnet)
        except HpcfedError as err:
            raise HpcfedError(f"{run!r}: {err}") from None
        loaded.append((name, results))
    path = Path(out) if out else Path(out_dir or Path(runs[0]).parent) / "runs-acc_vs_time.png"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return time_to_accuracy_figure(loaded, path, subnet, target, x)
    except OSError as err:
        raise HpcfedError(f"{str(path)!r}: cannot write there ({err.strerror or err})") from None


def _running(path: str, results: dict) -> str:
    """"running, round k of N" for a run still being written (noted on stderr), else ""."""
    state = run_state(results)
    if not state.startswith("running"):
        return ""
    print(f"plot: {path}: {state}; the figures show what is written so far", file=sys.stderr)
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="run", help="HDF5 results file(s) written by hpcfed.run")
    parser.add_argument("--out-dir", help="folder for the PNG files (default: beside the (first) run)")
    parser.add_argument("--out", help="several runs: the figure's path (default: OUT_DIR/runs-acc_vs_time.png)")
    parser.add_argument("--labels", help="several runs: comma-separated legend labels, one per run "
                                         "(default: the file names)")
    parser.add_argument("--subnet", help="several runs: all, largest (default), smallest or a reference subnet's name")
    parser.add_argument("--target", metavar="ACC", help="several runs: target test accuracy, a fraction in (0, 1]")
    parser.add_argument("--x", choices=list(X_CHOICES), help="several runs: x axis, virtual time (default) or rounds")
    args = parser.parse_args(argv)
    several = len(args.runs) > 1 or any(v is not None for v in (args.out, args.labels, args.subnet, args.target,
                                                                  args.x))
    try:
        if several:
            target = parse_target(args.target) if args.target is not None else None
            pngs = [plot_runs(args.runs, args.out, args.out_dir, args.labels, args.subnet or "largest", target,
                              args.x or "virtual")]
        else:
            pngs = plot(args.runs[0], args.out_dir)
    except HpcfedError as err:
        print(f"plot: error: {err}", file=sys.stderr)
        return 2
    except (OSError, KeyError, ValueError) as err:
        print(f"plot: error: {args.runs[0]!r}: {err}", file=sys.stderr)
        return 2
    for png in pngs:
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
