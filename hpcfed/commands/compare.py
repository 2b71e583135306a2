"""Run every method of a job set on its one setting and compare them: accuracy of each reference
subnet, client MACs, bytes down and up, virtual and wall time; printed, written as CSV and PNG.

    python tools/compare.py jobs/compare_digits.yaml                  # every method, into runs/compare_digits/
    python tools/compare.py compare_digits                            # the same job set, by its shipped name
    python tools/compare.py JOBSET --methods superfed,heterofl --out DIR --ranks 3 --set rounds=20
    python tools/compare.py JOBSET --target 0.9                       # also: when each subnet first reached 90 %

JOBSET is a job-set file or the name of a shipped job set (``python -m hpcfed.run --list-jobs``; a
local file wins, hpcfed.config.jobfiles).

For each method (in the job set's order), DIR/<method>.yaml is its resolved job (rerun one with
``python -m hpcfed.run DIR/<method>.yaml``), DIR/<method>.h5 its results and DIR/<method>.log its
output; a finished run of the same job found there is reused, unless --overwrite. ``--parallel N``
runs N methods at once (the results do not change). A failed run stops the tool (exit 1) once the
runs under way have ended; bad input stops it before anything runs (exit 2). Then it writes
DIR/compare.csv (one row per method and reference subnet; columns: COMPARISON_COLUMNS in
hpcfed/record/report.py), DIR/compare.png (accuracy vs forward MACs per method; totals per method) and
DIR/time_to_accuracy.png (the largest reference subnet's accuracy vs virtual time per method).

--target ACC (a test accuracy as a fraction in (0, 1]) fills the columns time_to_target_s and
round_to_target (when each reference subnet's accuracy first reached ACC; empty when it never did
or without --target), adds them to the printed table and draws ACC on DIR/time_to_accuracy.png.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)

from hpcfed.config.jobfiles import resolve, source_note
from hpcfed.errors import HpcfedError
from hpcfed.experiments.jobruns import check_parallel, reusable, run_methods, select_jobs
from hpcfed.experiments.launch import mpirun
from hpcfed.record.comparison import COMPARISON_COLUMNS, comparison_rows, comparison_table, parse_target
from hpcfed.record.figures import legend_outside, macs_axis, save, style, time_to_accuracy_figure
from hpcfed.record.reading import read_results
from hpcfed.strategies import STRATEGIES, Strategy

TOTALS = {"client_macs": "client training MACs", "bytes_down": "bytes down", "bytes_up": "bytes up",
          "virtual_time_s": "virtual time to finish (s)"}


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COMPARISON_COLUMNS))
        writer.writeheader()
        writer.writerows({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
                         for row in rows)   # NaN (not reached, not measured) is an empty cell


def plot(rows: list[dict], path: Path, title: str) -> Path | None:
    """Accuracy vs forward MACs per method (left); each total per method as bars (right)."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    first = {m: next(r for r in rows if r["method"] == m) for m in methods}
    fig = plt.figure(figsize=(12, 5))
    grid = fig.add_gridspec(2, 4)
    ax = fig.add_subplot(grid[:, :2])
    for k, m in enumerate(methods):   # each method's subnets by MACs, its own style; a search's family: points
        mine = sorted((r for r in rows if r["method"] == m), key=lambda r: r["subnet_macs"])
        family = STRATEGIES[mine[0]["strategy"]].reported_subnets.__func__ is not Strategy.reported_subnets.__func__
        ax.plot([r["subnet_macs"] for r in mine], [100 * r["accuracy"] for r in mine], label=m, color=f"C{k % 10}",
                **{**style(k), **({"linestyle": "none", "markersize": 8} if family else {})})
    ax.set(xscale="log", xlabel="forward MACs per sample", ylabel="test accuracy (%)", title=title)
    macs_axis(ax.xaxis)
    ax.grid(alpha=0.3)
    legend_outside(ax, 8)
    for i, (key, label) in enumerate(TOTALS.items()):
        bars = fig.add_subplot(grid[i // 2, 2 + i % 2])
        bars.bar(range(len(methods)), [first[m][key] for m in methods], color=[f"C{j}" for j in range(len(methods))])
        bars.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
        bars.set_title(label, fontsize=9)
        bars.tick_params(axis="y", labelsize=7)
        bars.set_ylim(bottom=0)   # bars from zero: their lengths compare
        macs_axis(bars.yaxis, log=False)
    fig.tight_layout()
    written = save(fig, path, "no method reported a subnet")
    plt.close(fig)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("jobset", help="job-set file (format in hpcfed/experiments/jobset.py) or shipped job-set name, "
                                       "e.g. jobs/compare_digits.yaml or compare_digits")
    parser.add_argument("--out", type=Path, help="folder for the jobs, runs, CSV and PNG (default: runs/<job set name>)")
    parser.add_argument("--ranks", type=int, default=0, help="MPI ranks per run (0 = one process, no mpirun)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a job field for every method, after the method's own (repeatable)")
    parser.add_argument("--parallel", type=int, default=1, metavar="N",
                        help="methods run at once (default 1); each takes train.threads cores per rank")
    parser.add_argument("--methods", help="comma-separated labels to run (default: every method of the job set)")
    parser.add_argument("--overwrite", action="store_true", help="rerun methods whose results already exist")
    parser.add_argument("--target", metavar="ACC", help="target test accuracy, a fraction in (0, 1]: report when each "
                                                        "reference subnet first reached it (virtual time, round)")
    args = parser.parse_args(argv)
    out = args.out or Path("runs") / Path(args.jobset).stem
    try:
        target = parse_target(args.target) if args.target is not None else None
        if args.ranks < 0:
            raise HpcfedError(f"--ranks {args.ranks}: accepted 0 (one process) or a number of ranks >= 1")
        check_parallel(args.parallel)
        jobset = resolve(args.jobset, "job set")
        jobs = select_jobs(str(jobset), args.methods, args.overrides)
        if out.exists() and not out.is_dir():
            raise HpcfedError(f"--out {str(out)!r} is a file; give a folder")
        reuse = {m: not args.overwrite and reusable(out / f"{m}.h5", job) for m, job in jobs.items()}
        if args.ranks and not all(reuse.values()):
            mpirun()
        out.mkdir(parents=True, exist_ok=True)
        for label, job in jobs.items():
            (out / f"{label}.yaml").write_text(job.to_yaml())
    except (HpcfedError, RuntimeError) as err:
        print(f"compare: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"compare: error: --out {str(out)!r}: cannot write there ({err.strerror}: {err.filename})", file=sys.stderr)
        return 2
    print(f"compare: job set: {source_note(args.jobset, jobset)}", flush=True)
    for label in (m for m in jobs if reuse[m]):
        print(f"compare: {label}: reusing the finished run in {out / f'{label}.h5'}", flush=True)
    pending = [m for m in jobs if not reuse[m]]
    if pending:
        print(f"compare: running {len(pending)} of {len(jobs)} methods, {min(args.parallel, len(pending))} at a time: "
              + ", ".join(f"{m} ({jobs[m].strategy.name})" for m in pending) + " ...", flush=True)
        run_methods([(m, out) for m in pending], args.ranks, "compare", args.parallel)
    results = {label: read_results(out / f"{label}.h5") for label in jobs}
    rows = [row for label, r in results.items() for row in comparison_rows(label, r, target)]
    print(comparison_table(rows, target))
    write_csv(rows, out / "compare.csv")
    figures = [plot(rows, out / "compare.png", Path(args.jobset).stem),
               time_to_accuracy_figure(list(results.items()), out / "time_to_accuracy.png", "largest", target,
                                       title=f"{Path(args.jobset).stem}: largest reference subnet of each method")]
    print(f"results: {', '.join(str(p) for p in [out / 'compare.csv', *figures] if p)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
