"""Reproduce a paper's claim with hpcfed's own runs, over several seeds, beside the claim.

    python tools/reproduce.py superfed-cost --seeds 3            # SuperFed against iFedAvg, k = 4 and 9
    python tools/reproduce.py superfed-ablation --seeds 3        # MaxNet against its variants
    python tools/reproduce.py efedsup --seeds 3                  # E-FedSup against FedSup
    python tools/reproduce.py CLAIM --quick                      # a tiny size, end to end (CI)
    python tools/reproduce.py CLAIM --seeds 3 --parallel 4       # four runs at once (one core each)
    python tools/reproduce.py --list

Each claim is a shipped job set (a base job and the methods compared, hpcfed/experiments/jobset.py; most under
jobs/reproduce/), run for every setting of the claim and seed 0..N-1 into
``--out``/<claim>/<setting>/seed<s>/ (finished runs of the same job are reused, hpcfed/experiments/jobruns.py).
The tool prints, per setting, the paper's claim beside the measured value (mean and standard
deviation over the seeds), and writes ``claim.csv`` (one row per setting and figure: mean, standard
deviation, seeds, each seed's value, the paper's value) and ``claim.png`` (accuracy against MACs per
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hpcfed.errors import HpcfedError  # noqa: E402
from hpcfed.config.jobfiles import shipped_path  # noqa: E402
from hpcfed.experiments.jobruns import check_parallel, reusable, run_methods, select_jobs  # noqa: E402
from hpcfed.assembly.job import build_job  # noqa: E402
from hpcfed.experiments.launch import mpirun  # noqa: E402
from hpcfed.supernet import Arch  # noqa: E402
from hpcfed.record.comparison import comparison_rows, time_to_target  # noqa: E402
from hpcfed.record.reading import read_results  # noqa: E402
from hpcfed.strategies.fednas.report import step_ranking  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402  (scikit-learn's dependency)

QUICK = ["rounds=2", "clients.total=8", "clients.per_round=4", "train.local_epochs=1", "eval.every=2",
         "model.stem=8", "model.widths=[8,16]", "data.deformed_test=100", "data.deformed_per_digit=1"]


@dataclass(frozen=True)
class Claim:
    paper: str                                   # what the paper claims, in one line
    jobset: str                                  # a shipped job set's name (hpcfed.config.jobfiles)
    settings: dict[str, tuple[list[str], str | None]]   # setting -> (overrides of every method, methods or None = all)
    measure: Callable[[dict[str, list[dict]], dict[str, dict]], dict[str, float]]   # (rows, results) -> figures
    claimed: dict[str, str] = field(default_factory=dict)           # figure -> the paper's value
    quick: list[str] = field(default_factory=list)                  # --quick overrides after QUICK's
    quick_methods: dict[str, list[str]] = field(default_factory=dict)   # --quick overrides of single methods
    retrain: int = 0   # > 0: each search's chosen architecture is also trained alone by FedAvg for this many rounds


def cost_ratios(rows: dict[str, list[dict]], results: dict[str, dict]) -> dict[str, float]:
    """SuperFed against the k FedAvg runs of its reference subnets: accuracy gaps and cost ratios."""
    superfed = rows["superfed"]
    alone = [rows[m][0] for m in rows if m.startswith("fedavg_ref")]
    figures = {f"gap {r['subnet']}": 100 * (r["accuracy"] - a["accuracy"]) for r, a in zip(superfed, alone)}
    figures["min gap (points)"] = min(figures.values())
    figures["client MACs ratio"] = sum(a["client_macs"] for a in alone) / superfed[0]["client_macs"]
    figures["bytes ratio"] = (sum(a["bytes_down"] + a["bytes_up"] for a in alone)
                              / (superfed[0]["bytes_down"] + superfed[0]["bytes_up"]))
    return figures


def variant_accuracy(rows: dict[str, list[dict]], results: dict[str, dict]) -> dict[str, float]:
    """Mean accuracy over the reference subnets, per variant, and each variant against MaxNet."""
    mean = {m: 100 * float(np.mean([r["accuracy"] for r in rs])) for m, rs in rows.items()}
    figures = {f"{m} mean acc (%)": v for m, v in mean.items()}
    figures.update({f"{m} - maxnet (points)": v - mean["maxnet"] for m, v in mean.items() if m != "maxnet"})
    return figures


def fednas_figures(rows: dict[str, list[dict]], results: dict[str, dict]) -> dict[str, float]:
    """FedNAS against the straightforward search: client cost of the search phase three ways, the
    chosen architectures' test accuracy after the same final training (each search's own, and FedAvg
    of the architecture alone, ``Claim.retrain`` rounds from the initial weights), and how alike the first
    step's rankings are (Kendall tau over the candidates both scored; the first step's candidates
    are the same in both, later steps' only where both chose the same parents)."""
    fast, slow = results["fednas"]["search"], results["straightforward"]["search"]
    a, b = fast["attrs"], slow["attrs"]
    figures = {"search client MACs ratio": b["search_client_macs"] / a["search_client_macs"],
               "search client-rounds ratio": b["search_client_rounds"] / a["search_client_rounds"],
               "search bytes ratio": b["search_bytes"] / a["search_bytes"],
               "whole-run client MACs ratio": (float(results["straightforward"]["rounds"]["macs"].sum())
                                               / float(results["fednas"]["rounds"]["macs"].sum())),
               "chosen test accuracy, FedNAS - straightforward (points)":
                   100 * (results["fednas"]["attrs"]["chosen_test_accuracy"]
                          - results["straightforward"]["attrs"]["chosen_test_accuracy"]),
               "chosen retrained alone, FedNAS - straightforward (points)":
                   100 * (results["fednas_retrain"]["eval"]["accuracy"][-1][0]
                          - results["straightforward_retrain"]["eval"]["accuracy"][-1][0]),
               "same architecture chosen": float(results["fednas"]["attrs"]["chosen_arch"]
                                                 == results["straightforward"]["attrs"]["chosen_arch"])}
    first, second = step_ranking(fast["candidates"], 0), step_ranking(slow["candidates"], 0)
    both = [arch for arch in first if arch in second]
    figures["Kendall tau, step-0 rankings"] = (float(kendalltau(range(len(both)), [second.index(x) for x in both])[0])
                                               if len(both) > 1 else float("nan"))
    return figures


TTA_TARGET = 0.6   # the test accuracy distreal-tta times (virtual seconds until the largest subnet reaches it)


def tta_figures(rows: dict[str, list[dict]], results: dict[str, dict]) -> dict[str, float]:
    """Each method's virtual time to TTA_TARGET and final accuracy; DISTREAL's speed-up over the
    fastest baseline (a method that never reaches the target counts as infinitely slow)."""
    figures, times, final = {}, {}, {}
    for label, r in results.items():
        seconds, _ = time_to_target(r, TTA_TARGET)[-1]
        times[label] = seconds if seconds == seconds else math.inf
        final[label] = 100 * float(r["eval"]["accuracy"][-1][-1])
        figures[f"{label} time to {TTA_TARGET:.0%} (virtual s)"] = seconds
        figures[f"{label} final accuracy (%)"] = final[label]
    baselines = [m for m in results if m != "distreal"]
    best = min(baselines, key=lambda m: times[m])
    figures["fastest baseline's time / DISTREAL's"] = (times[best] / times["distreal"]
                                                      if math.isfinite(times["distreal"]) else 0.0)
    figures["DISTREAL final - best baseline final (points)"] = final["distreal"] - max(final[m] for m in baselines)
    return figures


def efedsup_figures(rows: dict[str, list[dict]], results: dict[str, dict]) -> dict[str, float]:
    fedsup, efedsup = rows["fedsup"], rows["efedsup"]
    figures = {f"gap {e['subnet']}": 100 * (e["accuracy"] - f["accuracy"]) for f, e in zip(fedsup, efedsup)}
    figures["largest subnet gap (points)"] = 100 * (efedsup[-1]["accuracy"] - fedsup[-1]["accuracy"])
    figures["bytes down ratio"] = fedsup[0]["bytes_down"] / efedsup[0]["bytes_down"]
    figures["bytes up ratio"] = fedsup[0]["bytes_up"] / efedsup[0]["bytes_up"]
    figures["client MACs ratio"] = fedsup[0]["client_macs"] / efedsup[0]["client_macs"]
    return figures


CLAIMS: dict[str, Claim] = {
    "superfed-cost": Claim(
        "SuperFed's k subnets match or beat k FedAvg runs at 9.43x lower client computation and "
        "communication for k = 9 (CIFAR-10)", "reproduce/superfed_cost",
        {"k4": (["eval.subnets=4"], ",".join(["superfed", *(f"fedavg_ref{i}" for i in range(4))])),
         "k9": (["eval.subnets=9"], None)}, cost_ratios,
        {"min gap (points)": ">= 0 (no loss)", "client MACs ratio": "9.43x (k = 9)", "bytes ratio": "9.43x (k = 9)"}),
    "superfed-ablation": Claim(
        "plain overlap averaging is about 4 points below MaxNet; a fixed beta or beta0 = 0.5 loses 1.5-3 points",
        "reproduce/superfed_ablation",
        {f"alpha{a}-{norm}": ([f"data.alpha={a}", f"model.norm={norm}"], None) for a in (100, 0.1) for norm in ("none", "bn")},
        variant_accuracy,
        {"uniform - maxnet (points)": "about -4", "fixed_beta - maxnet (points)": "-1.5 to -3",
         "beta0_05 - maxnet (points)": "-1.5 to -3"}),
    "efedsup": Claim(
        "E-FedSup ships each client only a sub-model that fits it (fewer bytes) at comparable accuracy",
        "reproduce/efedsup", {"dirichlet0.5": ([], None)}, efedsup_figures,
        {"bytes down ratio": "> 1 (fewer bytes)", "largest subnet gap (points)": "comparable (no public numbers)"}),
    "fednas-cost": Claim(
        "FedNAS reduces the client cost of a straightforward federated NAS by up to two orders of magnitude "
        "at comparable accuracy", "fednas", {"deformed16": ([], None)}, fednas_figures,
        {"search client MACs ratio": "up to 100x (unit not public)", "search client-rounds ratio": "up to 100x",
         "chosen test accuracy, FedNAS - straightforward (points)": "comparable",
         "chosen retrained alone, FedNAS - straightforward (points)": "comparable"},
        retrain=40, quick=["rounds=80", "strategy.fednas.warmup_rounds=1", "strategy.fednas.finetune_rounds=1",
               "strategy.fednas.fixed_rounds=1", "strategy.fednas.max_rounds=2", "strategy.fednas.target=0.8",
               "strategy.fednas.shrink=0.15", "eval.val_clients=4", "data.client_val_fraction=0.3"]),
    "distreal-tta": Claim(
        "DISTREAL reaches a target accuracy significantly faster than the state of the art under heterogeneous, "
        "time-varying resources, with no loss of final accuracy", "distreal", {"markov": ([], None)},
        tta_figures, {"fastest baseline's time / DISTREAL's": "significantly > 1 (the issue asks >= 1.5x)",
                      "DISTREAL final - best baseline final (points)": "no loss (>= -1)"},
        quick=["clients.deadline_s=0.5"],
        quick_methods={"distreal": ["strategy.distreal.dse_population=4", "strategy.distreal.dse_generations=1",
                                    "strategy.distreal.dse_steps=5"]}),
}


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


def retrain_jobs(results: dict[str, dict], jobs: dict, rounds: int) -> dict:
    """For each search run, FedAvg of its chosen architecture alone for ``rounds`` rounds on the same
    clients and seed (label <method>_retrain): the architectures compared, not the searches' weights."""
    retrain = {}
    for label, r in results.items():
        if "chosen_arch" not in r["attrs"]:
            continue
        mapping = yaml.safe_load(jobs[label].to_yaml())
        mapping["strategy"] = {"name": "fedavg", "fedavg": {"arch": Arch.from_json(r["attrs"]["chosen_arch"]).name}}
        mapping.update(rounds=rounds, name=f"{mapping['name']}_retrain")
        mapping["eval"]["every"] = rounds
        retrain[f"{label}_retrain"] = build_job(mapping)
    return retrain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    folder = args.out / args.claim / ("quick" if args.quick else "full")
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
        folders = {(s, seed): folder / s / f"seed{seed}" for s in settings for seed in range(args.seeds)}
        planned = {out: setting_jobs(claim, s, seed, extra, args.methods, args.quick)
                   for (s, seed), out in folders.items()}
        results = run_jobs(planned, args.ranks, args.parallel)
        if claim.retrain:   # each search's choice trained alone: needs the searches' results first
            retrain = {out: retrain_jobs(results[out], planned[out], 1 if args.quick else claim.retrain)
                       for out in planned}
            for out, found in run_jobs(retrain, args.ranks, args.parallel).items():
                results[out].update(found)
        measured = {s: [results[folders[s, seed]] for seed in range(args.seeds)] for s in settings}
    except (HpcfedError, RuntimeError) as err:
        print(f"reproduce: error: {err}", file=sys.stderr)
        return 2
    report(args.claim, claim, measured, folder)
    return 0


def report(name: str, claim: Claim, measured: dict[str, list[dict]], folder: Path) -> None:
    """Print the claim beside the measured figures; write claim.csv and claim.png."""
    print(f"\n{name}: the paper: {claim.paper}")
    table = []
    for setting, by_seed in measured.items():
        figures = [claim.measure(rows_of(results), results) for results in by_seed]
        print(f"\n  setting {setting} ({len(by_seed)} seed{'s' if len(by_seed) > 1 else ''}):")
        print(f"    {'figure':<56} {'measured mean':>14} {'std':>8}   paper")
        for key in figures[0]:
            values = np.array([f[key] for f in figures])
            print(f"    {key:<56} {values.mean():>14.3f} {values.std():>8.3f}   {claim.claimed.get(key, '')}")
            table.append({"setting": setting, "figure": key, "mean": values.mean(), "std": values.std(),
                          "seeds": len(values), "per_seed": " ".join(repr(float(v)) for v in values),
                          "paper": claim.claimed.get(key, "")})
    with open(folder / "claim.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    plot(name, measured, folder / "claim.png")
    print(f"\nresults: {folder / 'claim.csv'}, {folder / 'claim.png'}")


def rows_of(results: dict[str, dict]) -> dict[str, list[dict]]:
    """Comparison rows (hpcfed.record.report.comparison_rows) by method."""
    return {label: comparison_rows(label, r) for label, r in results.items()}


def plot(name: str, measured: dict[str, list[dict]], path: Path) -> None:
    """Accuracy against forward MACs per method, mean over seeds with the spread as error bars; the
    k FedAvg runs of iFedAvg (methods fedavg_ref<i>) form one line."""
    measured = {setting: [rows_of(results) for results in by_seed] for setting, by_seed in measured.items()}
    fig, axes = plt.subplots(1, len(measured), figsize=(5 * len(measured), 4), squeeze=False)
    for ax, (setting, by_seed) in zip(axes[0], measured.items()):
        lines: dict[str, list[str]] = {}
        for method in by_seed[0]:
            lines.setdefault("iFedAvg" if method.startswith("fedavg_ref") else method, []).append(method)
        for label, methods in lines.items():
            per_seed = [[(r["subnet"], r["subnet_macs"], 100 * r["accuracy"]) for m in methods for r in rows[m]]
                        for rows in by_seed]
            if all([p[:2] for p in seed] == [p[:2] for p in per_seed[0]] for seed in per_seed):
                acc = np.array([[p[2] for p in seed] for seed in per_seed])
                ax.errorbar([p[1] for p in per_seed[0]], acc.mean(axis=0), yerr=acc.std(axis=0), marker="o",
                            capsize=3, label=label)
            else:   # other subnets on each seed (a search's family): every seed's points
                ax.scatter([p[1] for seed in per_seed for p in seed], [p[2] for seed in per_seed for p in seed],
                           label=label, s=14)
        ax.set(xscale="log", xlabel="forward MACs per sample", ylabel="test accuracy (%)", title=f"{name}: {setting}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
