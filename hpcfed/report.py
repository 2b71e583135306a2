"""Human-readable summaries of a results file: the per-subnet table and the cost ledger."""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def _si(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return f"{value} {unit}"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def summary(results: dict[str, Any]) -> str:
    """The per-subnet accuracy table (last evaluation) and the run's cost ledger, as text."""
    attrs, ev, rounds = results["attrs"], results["eval"], results["rounds"]
    lines = [f"run: strategy {attrs.get('strategy')}, seed {attrs.get('seed')}, {attrs.get('world_size')} ranks, "
             f"norm {attrs.get('normalization')}, status {attrs.get('status')}"]
    acc = ev["accuracy"]
    last = acc[-1] if len(acc) else np.full(len(ev["subnet_names"]), np.nan)
    when = f"after round {int(ev['round'][-1]) + 1}" if len(acc) else "never evaluated"
    lines.append(f"reference subnets ({when}):")
    lines.append(f"  {'subnet':<40} {'MACs/sample':>12} {'params':>10} {'accuracy':>9}")
    for name, macs, params, a in zip(ev["subnet_names"], ev["subnet_macs"], ev["subnet_params"], last):
        lines.append(f"  {name:<40} {_si(float(macs), ''):>12} {int(params):>10} {a:>9.4f}")
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
    if "peak_rss_mb" in attrs:
        peaks = np.atleast_1d(attrs["peak_rss_mb"])
        lines.append(f"  peak memory per rank: {', '.join(f'{m:.0f}' for m in peaks)} MiB")
    if attrs.get("final_model_sha256"):
        lines.append(f"final_model_sha256 {attrs['final_model_sha256']}")
    return "\n".join(lines)
