"""The paper claims hpcfed reproduces with its own runs (tools/reproduce.py, hpcfed.commands.reproduce):
for each, what the paper says, the shipped job set that tests it and its settings, and how the
figures are measured from the runs' results (one value per seed; the command reports mean and spread).

A claim's figures read only what the runs report: their test accuracies are reported numbers here,
never inputs to a decision of the runs themselves.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.stats import kendalltau  # scikit-learn's dependency

from hpcfed.experiments.followups import random_architectures, retrained, step_zero_references, test_accuracy_curve
from hpcfed.record.comparison import time_to_target
from hpcfed.strategies.fednas.report import step_ranking

QUICK = ["rounds=2", "clients.total=8", "clients.per_round=4", "train.local_epochs=1", "eval.every=2",
         "model.stem=8", "model.widths=[8,16]", "data.deformed_test=100", "data.deformed_per_digit=1"]


FEDNAS_QUICK = ["rounds=80", "strategy.fednas.warmup_rounds=1", "strategy.fednas.warmup_accuracy=0",
                "strategy.fednas.finetune_rounds=1", "strategy.fednas.fixed_rounds=1", "strategy.fednas.max_rounds=2",
                "strategy.fednas.min_client_epochs=1", "strategy.fednas.target=0.8", "strategy.fednas.shrink=0.15",
                "eval.val_clients=4", "data.client_val_fraction=0.3"]


@dataclass(frozen=True)
class Claim:
    paper: str                                   # what the paper claims, in one line
    jobset: str                                  # a shipped job set's name (hpcfed.config.jobfiles)
    settings: dict[str, tuple[list[str], str | None]]   # setting -> (overrides of every method, methods or None = all)
    measure: Callable[[dict[str, list[dict]], dict[str, dict]], dict[str, float]]   # (rows, results) -> figures
    claimed: dict[str, str] = field(default_factory=dict)           # figure -> the paper's value
    quick: list[str] = field(default_factory=list)                  # --quick overrides after QUICK's
    quick_methods: dict[str, list[str]] = field(default_factory=dict)   # --quick overrides of single methods
    followups: Callable[[dict, dict, bool], dict] | None = None   # (results, jobs, quick) -> label -> job run after
                                                                 # the methods (hpcfed.experiments.followups)
    runs: str = ""     # the runs' folder under --out (default: the claim's name); claims that share one reuse runs


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


RETRAIN = 30            # rounds of every architecture trained alone (>= 4x the straightforward search's 6 per candidate)
RANDOM_ARCHITECTURES = 3


def fednas_followups(kind: str) -> Callable[[dict, dict, bool], dict]:
    """The runs a FedNAS claim adds, ``RETRAIN`` rounds each (one with --quick)."""
    def followups(results: dict, jobs: dict, quick: bool) -> dict:
        rounds = 1 if quick else RETRAIN
        if kind == "retrain":
            return retrained(results, jobs, rounds)
        if kind == "reference":
            return step_zero_references(results, jobs, rounds)
        return random_architectures(results, jobs, rounds, RANDOM_ARCHITECTURES)
    return followups


def tau(order: list[str], reference: list[str]) -> float:
    """Kendall tau between two orders of the same items (best first)."""
    return float(kendalltau(range(len(order)), [reference.index(x) for x in order])[0]) if len(order) > 1 else math.nan


def rank_figures(rows: dict[str, list[dict]], results: dict[str, dict]) -> dict[str, float]:
    """Each search's ranking of its first step's candidates against the reference ranking: every
    candidate trained alone RETRAIN rounds on all clients, ordered by test accuracy (reported only)."""
    candidates = results["fednas"]["search"]["candidates"]
    arch_of = {f"reference_{int(m)}": a for m, a in zip(candidates["model"], candidates["arch_json"])}
    curves = {arch_of[label]: test_accuracy_curve(r) for label, r in results.items() if label in arch_of}
    reference = sorted(curves, key=lambda a: -curves[a][-1])
    halfway = sorted(curves, key=lambda a: -curves[a][len(curves[a]) // 2 - 1]) if len(reference[0]) else reference
    final = np.array([curves[a][-1] for a in reference])
    figures = {}
    for label in ("fednas", "straightforward"):
        order = [a for a in step_ranking(results[label]["search"]["candidates"], 0) if a in curves]
        figures[f"Kendall tau, {label} vs reference"] = tau(order, reference)
        figures[f"{label}'s pick, reference rank (1 = best)"] = float(reference.index(order[0]) + 1)
    figures["Kendall tau, reference at half its rounds vs at the end"] = tau(halfway, reference)
    figures["reference spread across candidates (points, std)"] = 100 * float(final.std())
    figures["reference test standard error (points)"] = 100 * float(np.sqrt(final * (1 - final)
                                                                            / results["fednas"]["attrs"]["test_samples"]).mean())
    figures["candidates"] = float(len(reference))
    return figures


def random_figures(rows: dict[str, list[dict]], results: dict[str, dict]) -> dict[str, float]:
    """FedNAS's choice against architectures drawn at random under the same budget, all trained alone alike."""
    chosen = 100 * float(test_accuracy_curve(results["fednas_retrain"])[-1])
    drawn = 100 * np.array([test_accuracy_curve(r)[-1] for label, r in results.items() if label.startswith("random_")])
    return {"FedNAS's choice retrained (%)": chosen, "random architectures retrained, mean (%)": float(drawn.mean()),
            "FedNAS - random mean (points)": chosen - float(drawn.mean()),
            "FedNAS - best random (points)": chosen - float(drawn.max()),
            "random architectures beaten (fraction)": float((chosen > drawn).mean())}


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
        quick=FEDNAS_QUICK, followups=fednas_followups("retrain"), runs="fednas"),
    "fednas-rank": Claim(
        "FedNAS's early-dropped, partially trained candidates are ranked as well as if each were trained on "
        "all clients", "fednas", {"deformed16": ([], None)}, rank_figures,
        {"Kendall tau, fednas vs reference": "> 0, near the straightforward search's",
         "Kendall tau, straightforward vs reference": "> 0"},
        quick=FEDNAS_QUICK, followups=fednas_followups("reference"), runs="fednas"),
    "fednas-random": Claim(
        "FedNAS finds a better architecture than a random choice under the same budget", "fednas",
        {"deformed16": ([], "fednas")}, random_figures, {"FedNAS - random mean (points)": "> 0"},
        quick=FEDNAS_QUICK, followups=fednas_followups("random"), runs="fednas"),
    "distreal-tta": Claim(
        "DISTREAL reaches a target accuracy significantly faster than the state of the art under heterogeneous, "
        "time-varying resources, with no loss of final accuracy", "distreal", {"markov": ([], None)},
        tta_figures, {"fastest baseline's time / DISTREAL's": "significantly > 1 (the issue asks >= 1.5x)",
                      "DISTREAL final - best baseline final (points)": "no loss (>= -1)"},
        quick=["clients.deadline_s=0.5"],
        quick_methods={"distreal": ["strategy.distreal.dse_population=4", "strategy.distreal.dse_generations=1",
                                    "strategy.distreal.dse_steps=5"]}),
}
