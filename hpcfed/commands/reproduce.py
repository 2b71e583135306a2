"""Reproduce a paper's claim with hpcfed's own runs, over several seeds, beside the claim.

    python tools/reproduce.py superfed-cost --seeds 3            # SuperFed against iFedAvg, k = 4 and 9
    python tools/reproduce.py superfed-ablation --seeds 3        # MaxNet against its variants
    python tools/reproduce.py efedsup --seeds 3                  # E-FedSup against FedSup
    python tools/reproduce.py fednas-rank --seeds 3              # FedNAS's ranking against a long-trained reference
    python tools/reproduce.py CLAIM --quick                      # a tiny size, end to end (CI)
    python tools/reproduce.py CLAIM --seeds 3 --parallel 4       # four runs at once (one core each)
    python tools/reproduce.py --list

Each claim is a shipped job set (a base job and the methods compared, hpcfed/experiments/jobset.py; most under
jobs/reproduce/), run for every setting of the claim and seed 0..N-1 into
``--out``/<claim>/<full|quick>/<setting>/seed<s>/ (finished runs of the same job are reused,
hpcfed/experiments/jobruns.py; the FedNAS claims share ``--out``/fednas/, so fednas-cost,
fednas-rank and fednas-random run each search once); a claim's follow-up runs (architectures a
search found, trained alone: hpcfed/experiments/followups.py) go beside them.
The tool prints, per setting, the paper's claim beside the measured value (mean and standard
deviation over the seeds), and writes ``claim.csv`` (one row per setting and figure: mean, standard
deviation, the mean's 95 % interval (Student's t over the seeds), seeds, each seed's value, the paper's value) and ``claim.png`` (accuracy against MACs per
method, mean and spread over the seeds) in ``--out``/<claim>/full (or quick)/; every run's own
results file, job and log stay in its seed folder. ``--parallel N`` runs N of a claim's runs at once
(the results do not change). ``--quick`` shrinks every job (few rounds, a tiny model and
population) so CI can run a claim end to end in seconds; its numbers mean
nothing. The measured tables and the commands behind them are in docs/reproduction.md.
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
import numpy as np  # noqa: E402
from scipy.stats import t as student_t  # noqa: E402  (scikit-learn's dependency)

from hpcfed.config.jobfiles import shipped_path  # noqa: E402
from hpcfed.errors import HpcfedError  # noqa: E402
from hpcfed.experiments.claims import CLAIMS, QUICK, Claim  # noqa: E402
from hpcfed.experiments.jobruns import check_parallel, reusable, run_methods, select_jobs  # noqa: E402
from hpcfed.experiments.launch import mpirun  # noqa: E402
from hpcfed.record.comparison import comparison_rows  # noqa: E402
from hpcfed.record.figures import legend_outside, macs_axis, save, style  # noqa: E402
from hpcfed.record.reading import read_results  # noqa: E402


def setting_jobs(claim: Claim, setting: str, seed: int, extra: list[str], only: str | None,
                 quick: bool = False) -> dict:
    """The jobs of the claim's job set for one setting and seed (``only``: a comma-separated subset
    of its methods), by method label."""
    overrides, methods = claim.settings[setting]
    if only:
        methods = ",".join(m for m in only.split(",") if not methods or m in methods.split(",")) or "-"
    jobset = str(shipped_path(claim.jobset))
    jobs = select_jobs(jobset, methods, [*overrides, f"seed={seed}", *extra])
    for label, own in (claim.quick_methods.items() if quick else ()):   # --quick sizes of one method's options
        if label in jobs:
            jobs[label] = select_jobs(jobset, label, [*overrides, f"seed={seed}", *extra, *own])[label]
    return jobs


def run_jobs(planned: dict[Path, dict], ranks: int, parallel: int) -> dict[Path, dict[str, dict]]:
    """Run every job of ``planned`` (folder -> label -> job) into <folder>/<label>.h5, up to
    ``parallel`` at once, unless a finished run of it is there; each folder's results by label."""
    pending = []
    for out, jobs in planned.items():
        out.mkdir(parents=True, exist_ok=True)
        for label, job in jobs.items():
            if not reusable(out / f"{label}.h5", job):
                (out / f"{label}.yaml").write_text(job.to_yaml())
                pending.append((label, out))
    run_methods(pending, ranks, "reproduce", parallel)
    return {out: {label: read_results(out / f"{label}.h5") for label in jobs} for out, jobs in planned.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("claim", nargs="?", help=f"one of {', '.join(CLAIMS)}")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    parser.add_argument("--quick", action="store_true", help="a tiny size that runs in seconds (CI); numbers mean nothing")
    parser.add_argument("--ranks", type=int, default=0, help="MPI ranks per run (0 = one process)")
    parser.add_argument("--parallel", type=int, default=1, metavar="N",
                        help="runs at once (default 1); each takes train.threads cores per rank")
    parser.add_argument("--out", type=Path, default=Path("runs/reproduce"), help="folder of the runs (default runs/reproduce)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a job field of every run, e.g. --set rounds=10 (repeatable; after --quick's)")
    parser.add_argument("--settings", help="comma-separated settings of the claim to run (default: all)")
    parser.add_argument("--methods", help="comma-separated methods to run (default: all the setting has)")
    parser.add_argument("--list", action="store_true", help="list the claims and exit")
    args = parser.parse_args(argv)
    if args.list or not args.claim:
        for name, claim in CLAIMS.items():
            print(f"{name:<18} {claim.paper}")
        return 0
    if args.claim not in CLAIMS:
        print(f"reproduce: error: claim {args.claim!r}: accepted {', '.join(CLAIMS)}", file=sys.stderr)
        return 2
    claim = CLAIMS[args.claim]
    for flag, value, least in (("--seeds", args.seeds, 1), ("--ranks", args.ranks, 0)):
        if value < least:
            print(f"reproduce: error: {flag} {value}: accepted a whole number >= {least}", file=sys.stderr)
            return 2
    mode = "quick" if args.quick else "full"
    folder, runs = args.out / args.claim / mode, args.out / (claim.runs or args.claim) / mode
    try:
        check_parallel(args.parallel)
        if args.ranks:
            mpirun()
        extra = [*([*QUICK, *claim.quick] if args.quick else []), *args.overrides]
        settings = args.settings.split(",") if args.settings else list(claim.settings)
        unknown = [s for s in settings if s not in claim.settings]
        if unknown:
            raise HpcfedError(f"--settings: {unknown[0]!r} is not a setting of {args.claim}; "
                              f"accepted: {', '.join(claim.settings)}")
        folders = {(s, seed): runs / s / f"seed{seed}" for s in settings for seed in range(args.seeds)}
        planned = {out: setting_jobs(claim, s, seed, extra, args.methods, args.quick)
                   for (s, seed), out in folders.items()}
        results = run_jobs(planned, args.ranks, args.parallel)
        if claim.followups:   # runs made from what the methods found: needs their results first
            followups = {out: claim.followups(results[out], planned[out], args.quick) for out in planned}
            for out, found in run_jobs(followups, args.ranks, args.parallel).items():
                results[out].update(found)
        measured = {s: [results[folders[s, seed]] for seed in range(args.seeds)] for s in settings}
    except (HpcfedError, RuntimeError) as err:
        print(f"reproduce: error: {err}", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    report(args.claim, claim, measured, folder)
    return 0


def report(name: str, claim: Claim, measured: dict[str, list[dict]], folder: Path) -> None:
    """Print the claim beside the measured figures; write claim.csv and claim.png."""
    print(f"\n{name}: the paper: {claim.paper}")
    table = []
    for setting, by_seed in measured.items():
        figures = [claim.measure(rows_of(results), results) for results in by_seed]
        print(f"\n  setting {setting} ({len(by_seed)} seed{'s' if len(by_seed) > 1 else ''}):")
        print(f"    {'figure':<56} {'measured mean':>14} {'std':>8} {'95 % interval':>19}   paper")
        for key in figures[0]:
            values = np.array([f[key] for f in figures])
            low, high = interval(values)
            print(f"    {key:<56} {values.mean():>14.3f} {values.std():>8.3f} {f'[{low:.3f}, {high:.3f}]':>19}   "
                  f"{claim.claimed.get(key, '')}")
            table.append({"setting": setting, "figure": key, "mean": values.mean(), "std": values.std(),
                          "ci95_low": low, "ci95_high": high, "seeds": len(values),
                          "per_seed": " ".join(repr(float(v)) for v in values), "paper": claim.claimed.get(key, "")})
    with open(folder / "claim.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    figure = plot(name, measured, folder / "claim.png")
    print(f"\nresults: {folder / 'claim.csv'}" + (f", {figure}" if figure else ""))


def interval(values: np.ndarray) -> tuple[float, float]:
    """The 95 % confidence interval of the mean over seeds (Student's t; nan for one seed)."""
    if len(values) < 2:
        return math.nan, math.nan
    half = float(student_t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return float(values.mean()) - half, float(values.mean()) + half


def rows_of(results: dict[str, dict]) -> dict[str, list[dict]]:
    """Comparison rows (hpcfed.record.report.comparison_rows) by method."""
    return {label: comparison_rows(label, r) for label, r in results.items()}


def plot(name: str, measured: dict[str, list[dict]], path: Path) -> Path | None:
    """Accuracy against forward MACs per method, mean over seeds with the spread as error bars; the
    k FedAvg runs of iFedAvg (methods fedavg_ref<i>) form one line."""
    measured = {setting: [rows_of(results) for results in by_seed] for setting, by_seed in measured.items()}
    fig, axes = plt.subplots(1, len(measured), figsize=(5 * len(measured), 4), squeeze=False)
    for ax, (setting, by_seed) in zip(axes[0], measured.items()):
        lines: dict[str, list[str]] = {}
        for method in by_seed[0]:
            lines.setdefault("iFedAvg" if method.startswith("fedavg_ref") else method, []).append(method)
        for k, (label, methods) in enumerate(lines.items()):
            per_seed = [[(r["subnet"], r["subnet_macs"], 100 * r["accuracy"]) for m in methods for r in rows[m]]
                        for rows in by_seed]
            if all([p[:2] for p in seed] == [p[:2] for p in per_seed[0]] for seed in per_seed):
                acc = np.array([[p[2] for p in seed] for seed in per_seed])
                ax.errorbar([p[1] for p in per_seed[0]], acc.mean(axis=0), yerr=acc.std(axis=0), capsize=3,
                            label=label, color=f"C{k % 10}", **style(k))
            else:   # other subnets on each seed (a search's family): every seed's points
                ax.scatter([p[1] for seed in per_seed for p in seed], [p[2] for seed in per_seed for p in seed],
                           label=label, s=14, color=f"C{k % 10}", marker=style(k)["marker"])
        ax.set(xscale="log", xlabel="forward MACs per sample", ylabel="test accuracy (%)", title=f"{name}: {setting}")
        macs_axis(ax.xaxis)
        ax.grid(alpha=0.3)
        legend_outside(ax)
    fig.tight_layout()
    written = save(fig, path, "no run reported a subnet", dpi=110)
    plt.close(fig)
    return written


if __name__ == "__main__":
    sys.exit(main())
