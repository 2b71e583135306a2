"""Writing the HDF5 results file: rank 0 creates it (or reopens it to resume) and appends rows.

Rows are buffered and written at most every ``WRITE_EVERY_S`` seconds, before every checkpoint and
at the end, so a fast run does not pay HDF5's per-call cost each round; a checkpoint never counts
rows the file does not hold, so a resumed run always finds them. Each write opens the file, appends
and closes it (hpcfed.record.live): any process may read it at any time, through
hpcfed.record.reading, which sees the file as one write left it. The layout is hpcfed.record.schema.

``status`` is ``failed`` after an error or SIGTERM (with an ``error`` attribute), ``interrupted``
after SIGUSR1; both are resumable from the last checkpoint with ``--resume``, which cuts every
table back to the checkpoint's rows and appends. A SIGKILLed run leaves ``running``.
With ``output.tensorboard``, each flush also hands the rows it wrote to a view (hpcfed.record.tensorboard).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpcfed import __version__
from hpcfed.errors import HpcfedError
from hpcfed.record import live
from hpcfed.record.schema import ROW_TABLES, STR, TABLES, check_layout, create_tables
from hpcfed.supernet import Arch

WRITE_EVERY_S = 2.0




class ResultsWriter:
    """Creates (or reopens) the results file and appends rows (buffered; see :meth:`flush`)."""

    def __init__(self, path: str | Path, held: int | None, stored: dict[str, int], arch_json: list[str]):
        self.path, self.held = Path(path), held   # held: the run's lock on the file (hpcfed.record.live.hold)
        self.stored = stored                      # rows of each table in the file
        # buffered rows per table; between flushes the file is closed, so a killed run leaves it
        # as of its last flush (HDF5 has no journal: a kill amid a write can damage it)
        self.pending: dict[str, list[dict[str, Any]]] = {name: [] for name in ROW_TABLES}
        self.written_at = time.monotonic()
        self.closed = False
        self.arch_ids: dict[Arch, int] = {Arch.from_json(j): i for i, j in enumerate(arch_json)}
        self.view = None   # an extra view of the rows each flush writes (hpcfed.record.tensorboard), if any

    @classmethod
    def create(cls, path: str | Path, attrs: dict[str, Any], subnets: list[tuple[str, Arch, int, int, int]]):
        """A new file with every table empty."""
        def fill(f: h5py.File) -> None:
            f.attrs.update({"hpcfed_version": __version__, "status": "running", **attrs})
            create_tables(f, subnets)
        held = live.create(path, fill)
        return cls(path, held, {name: 0 for name in ROW_TABLES}, [])

    @classmethod
    def resume(cls, path: str | Path, rows: dict[str, int], subnet_count: int):
        """Reopen a run's file, cut every table back to ``rows`` (a checkpoint's) and mark it running."""
        held = live.hold(path, "--resume: results file")
        cuts = {f"{name}/{col}": rows[name] for name, columns in TABLES.items() for col in columns}
        cuts.update({"eval/round": rows["eval"], "eval/accuracy": rows["eval"],
                     "architectures/json": rows["architectures"]})
        try:
            with h5py.File(path, "r", locking=False) as f:   # checked before anything changes
                check_layout(f, path, subnet_count)
                for name, count in cuts.items():
                    _check_rows(f[name], count, path)
            with live.writing(path, held) as f:
                for name, count in cuts.items():
                    f[name].resize((count, *f[name].shape[1:]))
                f.attrs["status"] = "running"
                if "error" in f.attrs:
                    del f.attrs["error"]
                arch_json = list(f["architectures/json"].asstr()[()])
        except OSError as err:
            live.release(held)
            raise HpcfedError(f"--resume: results file {str(path)!r} cannot be opened ({err})") from None
        except BaseException:
            live.release(held)
            raise
        return cls(path, held, {name: rows[name] for name in ROW_TABLES}, arch_json)

    def rows(self) -> dict[str, int]:
        """Row count of each table, buffered rows included (what a checkpoint records)."""
        buffered = {name: sum(len(next(iter(part.values()))) for part in parts) for name, parts in self.pending.items()}
        return {name: self.stored[name] + buffered[name] for name in self.pending}

    def arch_id(self, arch: Arch) -> int:
        """Row of ``arch`` in architectures/json, added on first use."""
        if arch not in self.arch_ids:
            self.arch_ids[arch] = len(self.arch_ids)
            self.pending["architectures"].append({"json": np.array([arch.to_json()], dtype=object)})
        return self.arch_ids[arch]

    def append_round(self, row: dict[str, Any], clients: dict[str, np.ndarray]) -> None:
        self.pending["rounds"].append({k: np.asarray([v]) for k, v in row.items()})
        self.pending["clients"].append(clients)
        self._write_if_due()

    def append_validation(self, rows: dict[str, np.ndarray]) -> None:
        self.pending["validation"].append(rows)
        self._write_if_due()

    def append_eval(self, round_index: int, accuracy: np.ndarray) -> None:
        self.pending["eval"].append({"round": np.asarray([round_index]), "accuracy": np.asarray(accuracy)[None]})
        self._write_if_due()

    def _write_if_due(self) -> None:
        if time.monotonic() - self.written_at >= WRITE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Write every buffered row, in one write session (none if nothing is buffered); then show
        the same rows in the view, if any."""
        written = {name: list(parts) for name, parts in self.pending.items()}
        if any(self.pending.values()):
            with live.writing(self.path, self.held) as f:
                for name, parts in self.pending.items():
                    if parts:
                        rows = {k: np.concatenate([part[k] for part in parts]) for k in parts[0]}
                        _append(f[name], rows)
                        self.stored[name] += len(next(iter(rows.values())))
                        parts.clear()
        self.written_at = time.monotonic()
        if self.view is not None:
            self.view.write(written)

    def columns(self, table: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Columns of a table as the file holds them (after writing what is buffered)."""
        self.flush()
        with live.writing(self.path, self.held) as f:
            return {name: f[table][name][()] for name in names}

    def save_models(self, models: dict) -> None:
        """Write every model's final float32 weights as ``models/<id>`` (replacing older ones)."""
        with live.writing(self.path, self.held) as f:
            if "models" in f:
                del f["models"]
            group = f.create_group("models")
            group.attrs["description"] = "final float32 weights of every model (the whole supernet vector)"
            for model_id, weights in sorted(models.items()):
                group.create_dataset(str(model_id), data=np.asarray(weights, dtype=np.float32))

    def save_report(self, report: dict) -> None:
        """Write a strategy's end-of-run report (hpcfed.strategies.base.Strategy.report): its tables as
        ``<group>/<table>/<column>``, its attrs on the group and its root attrs on the file."""
        with live.writing(self.path, self.held) as f:
            _write_report(f, report)

    def close(self, status: str, **attrs: Any) -> None:
        """Write what is buffered, then ``status`` and ``attrs``, and give the file up."""
        if self.closed:
            return
        self.closed = True
        try:
            self.flush()
            with live.writing(self.path, self.held) as f:
                f.attrs.update({"status": status, **attrs})
        finally:
            live.release(self.held)


def _write_report(f: h5py.File, report: dict) -> None:
    name = report["group"]
    if name in f:
        del f[name]
    group = f.create_group(name)
    group.attrs.update(report["attrs"])
    for table, columns in report["tables"].items():
        sub = group.create_group(table)
        for column, values in columns.items():
            values = list(values)
            if values and isinstance(values[0], str):
                sub.create_dataset(column, data=values, dtype=STR)
            else:
                sub.create_dataset(column, data=np.asarray(values, dtype=np.float64 if not values else None))
    f.attrs.update(report["root"])


def _check_rows(ds: h5py.Dataset, rows: int, path) -> None:
    if len(ds) < rows:
        raise HpcfedError(f"--resume: {str(path)!r} has {len(ds)} rows in {ds.name}, fewer than the "
                          f"checkpoint's {rows}; the results file does not belong to this checkpoint")


def _append(group: h5py.Group, columns: dict[str, Any]) -> None:
    """Append rows to every dataset of ``group`` (1-D columns, or the 2-D eval accuracy)."""
    lengths = {len(v) for v in columns.values()}
    expected = {k for k in group.keys() if isinstance(group[k], h5py.Dataset) and group[k].maxshape[0] is None}
    if len(lengths) != 1 or set(columns) != expected:
        raise ValueError(f"rows for {group.name} must give every column once: {sorted(expected)}")
    n = lengths.pop()
    for name, values in columns.items():
        ds = group[name]
        ds.resize((len(ds) + n, *ds.shape[1:]))
        ds[len(ds) - n:] = values
