"""The human-readable summary of one results file: its state, the per-subnet table, the lines its
strategy adds about its own results group, and the cost ledger (tools/summarize.py, the end of a run)."""
from __future__ import annotations

from typing import Any

import numpy as np
import yaml

from hpcfed.strategies import STRATEGIES, Strategy
from hpcfed.units import si


def strategy_class(results: dict[str, Any]) -> type[Strategy]:
    """The class of the strategy that wrote ``results`` (the base strategy for one this hpcfed lacks)."""
    return STRATEGIES.get(str(results["attrs"].get("strategy")), Strategy)


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
        lines.append(f"  {label:<40} {si(float(macs), ''):>12} {int(params):>10} {a:>9.4f}")
    lines.extend(strategy_class(results).summary_lines(results))
    n = len(rounds["round"])
    if n:
        lines.append("cost ledger:")
        round_s, train_s = rounds["round_wall_s"].sum(), rounds["train_wall_s"].sum()
        lines.append(f"  rounds {n}, virtual time {si(float(rounds['virtual_time_s'][-1]), 's')}, "
                     f"wall time {float(rounds['wall_time_s'][-1]):.1f} s, of which local training on the slowest "
                     f"rank {train_s / max(round_s, 1e-12):.1%}")
        lines.append(f"  client training {si(float(rounds['macs'].sum()), 'MAC')}, "
                     f"down {si(float(rounds['bytes_down'].sum()), 'B')}, up {si(float(rounds['bytes_up'].sum()), 'B')}, "
                     f"MPI {si(float(rounds['mpi_bytes'].sum()), 'B')}")
        lines.append(f"  clients aggregated {int(rounds['clients'].sum())}, dropped {int(rounds['dropped'].sum())}, "
                     f"rejected {int(rounds['rejected'].sum())}")
    if attrs.get("stop_reason"):
        lines.append(f"  ended: {attrs['stop_reason']} ({attrs.get('rounds_played')} rounds)")
    if attrs.get("faults_not_fired"):
        lines += [f"  warning: {line}" for line in str(attrs["faults_not_fired"]).splitlines()]
    if "peak_rss_mb" in attrs:
        peaks = np.atleast_1d(attrs["peak_rss_mb"])
        lines.append(f"  peak memory per rank: {', '.join(f'{m:.0f}' for m in peaks)} MiB")
    if attrs.get("final_model_sha256"):
        lines.append(f"final_model_sha256 {attrs['final_model_sha256']}")
    return "\n".join(lines)
