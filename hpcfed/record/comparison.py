"""Several runs side by side (tools/compare.py, tools/reproduce.py): one row per reported subnet of
each run, the comparison table, and when each subnet first reached a target accuracy."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from hpcfed.errors import HpcfedError
from hpcfed.record.report import strategy_class
from hpcfed.units import si

COMPARISON_COLUMNS: dict[str, str] = {
    "method": "the method's label in the job set",
    "strategy": "its strategy (strategy.name)",
    "subnet": "a reference subnet of the method (eval/subnet_names)",
    "subnet_macs": "forward MACs per sample of the subnet (eval/subnet_macs)",
    "subnet_params": "parameters of the subnet (eval/subnet_params)",
    "accuracy": "top-1 test accuracy of the subnet at the last evaluation, fraction",
    "rounds": "rounds completed",
    "client_macs": "client training MACs over all rounds (sum of rounds/macs)",
    "bytes_down": "bytes shipped to clients over all rounds (sum of rounds/bytes_down)",
    "bytes_up": "bytes shipped back by clients over all rounds (sum of rounds/bytes_up)",
    "virtual_time_s": "virtual time to finish, seconds (last rounds/virtual_time_s)",
    "wall_time_s": "wall-clock seconds of the run (last rounds/wall_time_s)",
    "time_to_target_s": "virtual time (rounds/virtual_time_s of the evaluated round) at which the subnet's test "
                        "accuracy first reached the target (tools/compare.py --target), seconds; NaN (empty in "
                        "CSV) when it never did, when no target was given, and for subnets whose accuracy the method "
                        "reads once, after the run (Strategy.reported_subnets)",
    "round_to_target": "rounds completed when the subnet's test accuracy first reached the target (eval/round + 1); "
                       "NaN (empty in CSV) when time_to_target_s is",
}


def parse_target(text: str) -> float:
    """A target accuracy given on a command line: a fraction in (0, 1]; anything else is an HpcfedError."""
    try:
        target = float(text)
    except ValueError:
        target = math.nan
    if not 0 < target <= 1:
        raise HpcfedError(f"--target {text!r}: accepted a test accuracy as a fraction in (0, 1], e.g. 0.9 for 90 %")
    return target


def eval_virtual_times(results: dict[str, Any]) -> np.ndarray:
    """(E,) virtual time of each evaluation: rounds/virtual_time_s of the round eval/round names (NaN if
    the file holds no row for it)."""
    rounds = results["rounds"]
    time_of = dict(zip(np.asarray(rounds["round"]).tolist(), np.asarray(rounds["virtual_time_s"], float).tolist()))
    return np.array([time_of.get(int(r), math.nan) for r in results["eval"]["round"]], dtype=np.float64)


def time_to_target(results: dict[str, Any], target: float) -> list[tuple[float, float]]:
    """When each reference subnet (in eval/subnet_names order) first reached test accuracy >= ``target``
    (a fraction): (virtual seconds, rounds completed) of that evaluation, or (NaN, NaN) if it never did.
    Evaluations happen every eval.every rounds, so this is known at that resolution."""
    if not 0 < target <= 1:
        raise HpcfedError(f"target accuracy {target!r}: accepted a fraction in (0, 1]")
    ev = results["eval"]
    times, acc = eval_virtual_times(results), np.asarray(ev["accuracy"], dtype=np.float64)
    out = []
    for j in range(len(ev["subnet_names"])):
        hits = np.flatnonzero(acc[:, j] >= target) if len(acc) else []
        out.append((float(times[hits[0]]), int(ev["round"][hits[0]]) + 1) if len(hits) else (math.nan, math.nan))
    return out


def comparison_rows(method: str, results: dict[str, Any], target: float | None = None) -> list[dict[str, Any]]:
    """One row per reported subnet of a run (``read_results``' dict): the keys of COMPARISON_COLUMNS, the
    run's totals repeated on each. The subnets are the evaluated references, or those the run's strategy
    reports after the run (Strategy.reported_subnets, e.g. a search's family). With ``target`` (a
    fraction), time_to_target_s and round_to_target say when each reference first reached it
    (``time_to_target``); without, they are NaN."""
    rounds, reported = results["rounds"], strategy_class(results).reported_subnets(results)
    ev = results["eval"] if reported is None else reported
    reached = [(math.nan, math.nan)] * len(ev["subnet_names"])
    if target is not None and reported is None:
        reached = time_to_target(results, target)
    done = len(rounds["round"])
    last = ev["accuracy"][-1] if len(ev["accuracy"]) else np.full(len(ev["subnet_names"]), np.nan)
    totals = {"rounds": done, "client_macs": float(rounds["macs"].sum()),
              "bytes_down": int(rounds["bytes_down"].sum()), "bytes_up": int(rounds["bytes_up"].sum()),
              "virtual_time_s": float(rounds["virtual_time_s"][-1]) if done else 0.0,
              "wall_time_s": float(rounds["wall_time_s"][-1]) if done else 0.0}
    return [{"method": method, "strategy": results["attrs"].get("strategy"), "subnet": name,
             "subnet_macs": int(macs), "subnet_params": int(params), "accuracy": float(a), **totals,
             "time_to_target_s": seconds, "round_to_target": round_}
            for name, macs, params, a, (seconds, round_)
            in zip(ev["subnet_names"], ev["subnet_macs"], ev["subnet_params"], last, reached)]


def comparison_table(rows: list[dict[str, Any]], target: float | None = None) -> str:
    """``comparison_rows`` of several methods as text: one line per subnet, totals on each method's first.
    With ``target``, a column says when each subnet first reached it: virtual time and rounds completed,
    or - when it did not (or, for subnets scored once after the run, is not known)."""
    reach = f"{f'to {100 * target:g} %':>18} " if target is not None else ""
    lines = [f"{'method':<16} {'subnet':<36} {'MACs/sample':>11} {'accuracy':>8} {reach}  {'client MACs':>11} "
             f"{'down':>9} {'up':>9} {'virtual':>9} {'wall':>8}"]
    previous = None
    for r in rows:
        totals = ""
        if r["method"] != previous:
            totals = (f"{si(r['client_macs'], 'MAC'):>11} {si(r['bytes_down'], 'B'):>9} {si(r['bytes_up'], 'B'):>9} "
                      f"{si(r['virtual_time_s'], 's'):>9} {r['wall_time_s']:>6.1f} s")
        if target is not None:
            seconds, round_ = r["time_to_target_s"], r["round_to_target"]
            reach = "-" if math.isnan(seconds) else f"{si(seconds, 's')}, round {round_}"
            reach = f"{reach:>18} "
        lines.append(f"{r['method'] if r['method'] != previous else '':<16} {r['subnet']:<36} "
                     f"{si(r['subnet_macs'], ''):>11} {r['accuracy']:>8.4f} {reach}  {totals}".rstrip())
        previous = r["method"]
    return "\n".join(lines)
