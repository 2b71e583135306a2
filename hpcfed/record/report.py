"""Human-readable summaries of results files: the per-subnet table and the cost ledger of one run,
the comparison table of several (tools/compare.py), and time to a target accuracy."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import yaml

from hpcfed.errors import HpcfedError


def _si(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return f"{value} {unit}"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def run_state(results: dict[str, Any]) -> str:
    """The run's ``status``; for one still running, "running, round k of N" (k rounds written so far);
    for one that says running but whose writer is gone (``writer_alive`` False), that it was killed."""
    status = str(results["attrs"].get("status"))
    if status != "running":
        return status
    try:
        total = yaml.safe_load(results["attrs"]["config_yaml"])["rounds"]
    except (KeyError, TypeError, yaml.YAMLError):
        total = "?"
    done = len(results["rounds"]["round"])
    alive = results.get("writer_alive")
    if alive is False:
        return (f"killed after round {done} of {total} (the file says running, but no process on this machine "
                "writes it); continue it with --resume")
    return f"running, round {done} of {total}" + (" (or killed: this file system cannot tell)" if alive is None else "")


def summary(results: dict[str, Any]) -> str:
    """The per-subnet accuracy table (last evaluation) and the run's cost ledger, as text."""
    attrs, ev, rounds = results["attrs"], results["eval"], results["rounds"]
    lines = [f"run: strategy {attrs.get('strategy')}, seed {attrs.get('seed')}, {attrs.get('world_size')} ranks, "
             f"norm {attrs.get('normalization')}, status {run_state(results)}"]
    acc = ev["accuracy"]
    last = acc[-1] if len(acc) else np.full(len(ev["subnet_names"]), np.nan)
    when = f"after round {int(ev['round'][-1]) + 1}" if len(acc) else "never evaluated"
    if len(ev["subnet_names"]):
        lines.append(f"reference subnets ({when}):")
        lines.append(f"  {'subnet':<40} {'MACs/sample':>12} {'params':>10} {'accuracy':>9}")
    models = ev.get("subnet_models", np.zeros(len(ev["subnet_names"]), dtype=np.int64))
    several = len(set(models.tolist())) > 1
    for name, macs, params, a, model in zip(ev["subnet_names"], ev["subnet_macs"], ev["subnet_params"], last, models):
        label = f"model {int(model)}: {name}" if several else name
        lines.append(f"  {label:<40} {_si(float(macs), ''):>12} {int(params):>10} {a:>9.4f}")
    if "search" in results:
        lines.extend(search_summary(results["search"]))
    n = len(rounds["round"])
    if n:
        lines.append("cost ledger:")
        round_s, train_s = rounds["round_wall_s"].sum(), rounds["train_wall_s"].sum()
        lines.append(f"  rounds {n}, virtual time {_si(float(rounds['virtual_time_s'][-1]), 's')}, "
                     f"wall time {float(rounds['wall_time_s'][-1]):.1f} s, of which local training on the slowest "
                     f"rank {train_s / max(round_s, 1e-12):.1%}")
        lines.append(f"  client training {_si(float(rounds['macs'].sum()), 'MAC')}, "
                     f"down {_si(float(rounds['bytes_down'].sum()), 'B')}, up {_si(float(rounds['bytes_up'].sum()), 'B')}, "
                     f"MPI {_si(float(rounds['mpi_bytes'].sum()), 'B')}")
        lines.append(f"  clients aggregated {int(rounds['clients'].sum())}, dropped {int(rounds['dropped'].sum())}, "
                     f"rejected {int(rounds['rejected'].sum())}")
    if attrs.get("stop_reason"):
        lines.append(f"  ended: {attrs['stop_reason']} ({attrs.get('rounds_played')} rounds)")
    if "peak_rss_mb" in attrs:
        peaks = np.atleast_1d(attrs["peak_rss_mb"])
        lines.append(f"  peak memory per rank: {', '.join(f'{m:.0f}' for m in peaks)} MiB")
    if attrs.get("final_model_sha256"):
        lines.append(f"final_model_sha256 {attrs['final_model_sha256']}")
    return "\n".join(lines)


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
                        "CSV) when it never did, when no target was given, and for a search's rows (its family's "
                        "accuracy is read once, after the run)",
    "round_to_target": "rounds completed when the subnet's test accuracy first reached the target (eval/round + 1); "
                       "NaN (empty in CSV) when time_to_target_s is",
}


def search_summary(search: dict[str, Any]) -> list[str]:
    """A search's family (hpcfed.strategies.fednas.report) and its client cost, as lines of text."""
    a, family = search["attrs"], search["family"]
    lines = [f"search ({a['mode']}, {a['steps']} steps, {'finished' if a['finished'] else 'not finished'}; "
             f"test accuracy read once, after the run):",
             f"  {'model':<6} {'role':<24} {'architecture':<36} {'MACs/sample':>12} {'accuracy':>9}"]
    for model, role, name, macs, acc in zip(family["model"], family["role"], family["arch_name"],
                                            family["macs_per_sample"], family["test_accuracy"]):
        lines.append(f"  {int(model):<6} {role:<24} {name:<36} {_si(float(macs), ''):>12} {acc:>9.4f}")
    lines.append(f"  search cost: {len(search['candidates']['model'])} candidates, {int(a['search_client_rounds'])} "
                 f"client-rounds, {_si(float(a['search_client_macs']), 'MAC')}, {_si(float(a['search_bytes']), 'B')}")
    return lines


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
    """One row per reference subnet of a run (``read_results``' dict): the keys of COMPARISON_COLUMNS,
    the run's totals repeated on each. A search's rows are its family (step winners and the chosen
    architecture after its final training, hpcfed.strategies.fednas.report). With ``target`` (a
    fraction), time_to_target_s and round_to_target say when each subnet first reached it
    (``time_to_target``); without, they are NaN."""
    ev, rounds = results["eval"], results["rounds"]
    if "search" in results:
        family = results["search"]["family"]
        ev = {"subnet_names": [f"{role}: {name}" for role, name in zip(family["role"], family["arch_name"])],
              "subnet_macs": family["macs_per_sample"], "subnet_params": family["params"],
              "accuracy": np.asarray(family["test_accuracy"])[None]}
    reached = [(math.nan, math.nan)] * len(ev["subnet_names"])
    if target is not None and "search" not in results:
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
    or - when it did not (or, for a search's family, is not known)."""
    reach = f"{f'to {100 * target:g} %':>18} " if target is not None else ""
    lines = [f"{'method':<16} {'subnet':<36} {'MACs/sample':>11} {'accuracy':>8} {reach}  {'client MACs':>11} "
             f"{'down':>9} {'up':>9} {'virtual':>9} {'wall':>8}"]
    previous = None
    for r in rows:
        totals = ""
        if r["method"] != previous:
            totals = (f"{_si(r['client_macs'], 'MAC'):>11} {_si(r['bytes_down'], 'B'):>9} {_si(r['bytes_up'], 'B'):>9} "
                      f"{_si(r['virtual_time_s'], 's'):>9} {r['wall_time_s']:>6.1f} s")
        if target is not None:
            seconds, round_ = r["time_to_target_s"], r["round_to_target"]
            reach = "-" if math.isnan(seconds) else f"{_si(seconds, 's')}, round {round_}"
            reach = f"{reach:>18} "
        lines.append(f"{r['method'] if r['method'] != previous else '':<16} {r['subnet']:<36} "
                     f"{_si(r['subnet_macs'], ''):>11} {r['accuracy']:>8.4f} {reach}  {totals}".rstrip())
        previous = r["method"]
    return "\n".join(lines)
