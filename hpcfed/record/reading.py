"""Reading a results file whole (hpcfed.record.results holds its schema and its writer).

:func:`read_results` gives the file as plain NumPy arrays and attributes, small enough for the analysis
tools: the row tables and eval/ as columns, post_search/ too, and every other group as a strategy's
report (its attributes and its tables of columns); the final weights (models/) are left in the file
(hpcfed.search.trained reads them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpcfed.record import live
from hpcfed.record.schema import TABLES

FLAT_GROUPS = (*TABLES, "eval", "architectures", "post_search")   # groups of columns
UNREAD = ("models",)   # the final weights: large, read by hpcfed.search.trained


def read_results(path: str | Path) -> dict[str, Any]:
    """The whole file as plain NumPy arrays and attributes (small enough for analysis tools), as one
    write left it, also while its run is writing it (hpcfed.record.live.read: one-line HpcfedError otherwise).
    A file that says "running" also gets ``writer_alive``: hpcfed.record.live.writer_holds."""
    results = live.read(path, _read_all)
    if results["attrs"].get("status") == "running":   # still written, or killed? (hpcfed.record.report.run_state)
        results["writer_alive"] = live.writer_holds(path)
    return results


def _read_all(f: h5py.File) -> dict[str, Any]:
    out: dict[str, Any] = {"attrs": {k: _text(v) for k, v in f.attrs.items()}}
    for group in (g for g in FLAT_GROUPS if g in f):
        out[group] = {k: _decode(f[group][k][()]) for k in f[group] if isinstance(f[group][k], h5py.Dataset)}
    for name in (g for g in f if g not in FLAT_GROUPS and g not in UNREAD and isinstance(f[g], h5py.Group)):
        group = f[name]   # a strategy's end-of-run report: attributes and tables of columns
        out[name] = {"attrs": {k: _text(v) for k, v in group.attrs.items()},
                     **{t: {k: _decode(group[t][k][()]) for k in group[t]} for t in group}}
    return out


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _decode(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "O":
        return np.array([_text(v) for v in values], dtype=object)
    return values
