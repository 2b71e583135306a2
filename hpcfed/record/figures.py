"""Figures of results files, as PNG: test accuracy against virtual time for several runs on one
figure (tools/plot.py, tools/compare.py). Drawn on matplotlib's Agg canvas, without pyplot's state."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hpcfed.errors import HpcfedError
from hpcfed.record.comparison import eval_virtual_times, time_to_target
from hpcfed.units import si

SUBNET_CHOICES = ("all", "largest", "smallest")   # or the name of a reference subnet
X_CHOICES = {"virtual": "virtual time (s)", "round": "rounds completed"}
LINE_STYLES = ("-", "--", ":", "-.")


def pick_subnets(results: dict[str, Any], which: str) -> list[int]:
    """Indices into eval/subnet_names: ``all``, the ``largest`` or ``smallest`` by forward MACs (then
    parameters, then order), or the one of that name; none for a run without reference subnets (a search)."""
    ev = results["eval"]
    names = list(ev["subnet_names"])
    if not names:
        return []
    if which == "all":
        return list(range(len(names)))
    if which in ("largest", "smallest"):   # by MACs, then parameters; the later of equals is the larger
        order = np.lexsort((np.asarray(ev["subnet_params"]), np.asarray(ev["subnet_macs"])))
        return [int(order[-1] if which == "largest" else order[0])]
    if which in names:
        return [names.index(which)]
    raise HpcfedError(f"--subnet {which!r}: not a reference subnet of this run; accepted: "
                      f"{', '.join((*SUBNET_CHOICES, *names))}")


def time_to_accuracy_figure(runs: Sequence[tuple[str, dict[str, Any]]], path: str | Path, subnet: str = "largest",
                            target: float | None = None, x: str = "virtual", title: str | None = None) -> Path:
    """Write one figure of test accuracy (%) against virtual time (``x="virtual"``) or rounds completed
    (``x="round"``): for each (label, ``read_results`` dict), one line per subnet ``pick_subnets`` picks,
    a colour per run. With ``target`` (a fraction): a horizontal line there, and a star where each line
    first reaches it (``hpcfed.record.report.time_to_target``; the legend says when). Runs without evaluations
    or reference subnets draw nothing."""
    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (label, results) in enumerate(runs):
        ev = results["eval"]
        chosen = pick_subnets(results, subnet) if len(ev["round"]) else []
        xs = eval_virtual_times(results) if x == "virtual" else np.asarray(ev["round"]) + 1
        reached = time_to_target(results, target) if target is not None else None
        for k, j in enumerate(chosen):
            name = f"{label}: {ev['subnet_names'][j]}" if subnet == "all" else label
            acc = 100 * np.asarray(ev["accuracy"], dtype=np.float64)[:, j]
            if reached is not None:
                seconds, round_ = reached[j]
                if np.isnan(round_):
                    name += " (not reached)"
                else:
                    first = int(np.flatnonzero(np.asarray(ev["round"]) + 1 == round_)[0])   # that evaluation
                    ax.plot([xs[first]], [acc[first]], "*", color=f"C{i % 10}", markersize=13,
                            markeredgecolor="black", zorder=3)
                    name += f" (reached at {si(seconds, 's')}, round {round_})"
            ax.plot(xs, acc, marker="o", markersize=3, linestyle=LINE_STYLES[k % len(LINE_STYLES)],
                    color=f"C{i % 10}", label=name)
    if target is not None:
        ax.axhline(100 * target, color="gray", linestyle="--", linewidth=0.8, label=f"target {100 * target:g} %")
    ax.set(xlabel=X_CHOICES[x], ylabel="test accuracy (%)", title=title or f"test accuracy against {X_CHOICES[x]}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
