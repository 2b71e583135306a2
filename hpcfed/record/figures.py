"""Figures of results files, as PNG: test accuracy against virtual time for several runs on one
figure (tools/plot.py, tools/compare.py), drawn on matplotlib's Agg canvas without pyplot's state;
and what every figure of the tools shares: MACs in human units (k, M, G), a legend outside the
data, a style per line that tells methods and subnets apart, and no file for a figure with nothing
drawn (:func:`save` says why instead)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from hpcfed.errors import HpcfedError
from hpcfed.record.comparison import eval_virtual_times, time_to_target
from hpcfed.units import si

SUBNET_CHOICES = ("all", "largest", "smallest")   # or the name of a reference subnet
X_CHOICES = {"virtual": "virtual time (s)", "round": "rounds completed"}
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
GUIDE = "guide"   # the gid of lines that guide the eye (a target), not data


def style(k: int) -> dict[str, str]:
    """The k-th line's style and marker: 28 combinations before one repeats."""
    return {"linestyle": LINE_STYLES[k % len(LINE_STYLES)], "marker": MARKERS[k % len(MARKERS)]}


def macs_axis(axis, unit: str = "", log: bool = True) -> None:
    """Tick labels in human units (``518 k``, ``4.2 M``) on a MACs (or bytes) axis, not offsets or
    powers of ten; a log axis gets ticks at 1, 2 and 5 of each decade."""
    if log:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda v, _: si(v, unit)))


def legend_outside(ax, fontsize: int = 7) -> None:
    """The legend to the right of the axes, where it covers no data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def drawn(fig) -> bool:
    """Whether ``fig`` shows data: a line with points (guides aside), markers, error bars or a bar."""
    for ax in fig.axes:
        if any(len(line.get_xdata()) and line.get_gid() != GUIDE for line in ax.lines):
            return True
        if any(len(c.get_offsets()) if isinstance(c, PathCollection) else len(c.get_paths()) for c in ax.collections):
            return True
        if any(p.get_height() != 0 for p in ax.patches if hasattr(p, "get_height")):
            return True
    return False


def save(fig, path: str | Path, why_empty: str, dpi: int = 120) -> Path | None:
    """Write ``fig`` to ``path`` when it shows data (legends outside included); else write nothing,
    remove a stale file of that name and say on stderr why (``why_empty``); the path or None."""
    path = Path(path)
    if not drawn(fig):
        path.unlink(missing_ok=True)
        print(f"{path.name}: not written: {why_empty}", file=sys.stderr)
        return None
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


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
                            target: float | None = None, x: str = "virtual", title: str | None = None) -> Path | None:
    """Write one figure of test accuracy (%) against virtual time (``x="virtual"``) or rounds completed
    (``x="round"``): for each (label, ``read_results`` dict), one line per subnet ``pick_subnets`` picks,
    a colour per run and a style per subnet. With ``target`` (a fraction): a horizontal line there, and a
    star where each line first reaches it (``hpcfed.record.report.time_to_target``; the legend says
    when). Runs without evaluations or reference subnets draw nothing; a figure with nothing drawn is
    not written (None, :func:`save`)."""
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
            ax.plot(xs, acc, markersize=3, color=f"C{i % 10}", label=name, **style(k))
    if target is not None:
        ax.axhline(100 * target, color="gray", linestyle="--", linewidth=0.8, label=f"target {100 * target:g} %",
                   gid=GUIDE)
    ax.set(xlabel=X_CHOICES[x], ylabel="test accuracy (%)", title=title or f"test accuracy against {X_CHOICES[x]}")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    return save(fig, path, "no run has a test evaluation of a reference subnet during the run (a search reads "
                           "the test set once, after it: see its summary)")
