"""The HDF5 results file: one schema, written by rank 0.

Rows are buffered and written at most every ``WRITE_EVERY_S`` seconds, before every checkpoint and
at the end, so a fast run does not pay HDF5's per-call cost each round; a checkpoint never counts
rows the file does not hold, so a resumed run always finds them. Each write opens the file, appends
and closes it (hpcfed.record.live): any process may read it at any time, through :func:`read_results` or
:func:`hpcfed.record.live.read`, which see the file as one write left it.

Layout (units and descriptions are attributes of every dataset)::

    /                 attrs: hpcfed_version, config_yaml, strategy, seed, world_size, normalization,
                             calibration (where evaluation's normalisation statistics come from),
                             status (running | finished | failed), final_model_sha256 (SHA-256 of every
                             model's float32 weights concatenated in model order; one model: its
                             weights), started, and when the run finishes: stop_reason (why it ended:
                             all rounds played, or the strategy's reason), rounds_played, peak_rss_mb
                             (per rank, MiB), write_seq (write sessions begun and ended: odd while one
                             is under way; hpcfed.record.live)
    rounds/<column>   one row per round: ROUND_COLUMNS
    clients/<column>  one row per sampled client per round: CLIENT_COLUMNS
    validation/<column>  one row per evaluate task (federated validation): VALIDATION_COLUMNS
    eval/round        (E,) rounds at which the reference subnets were evaluated (test set: reporting only)
    eval/accuracy     (E, S) top-1 test accuracy, fractions in [0, 1]
    eval/subnet_names, eval/subnet_macs, eval/subnet_params, eval/subnet_archs, eval/subnet_models
                      (S,) per reference subnet (subnet_models: the model it belongs to)
    architectures/json  (A,) JSON of every architecture that arch_id columns refer to
    <group>/          a strategy's end-of-run report (Strategy.report): its tables as <group>/<table>/<column>
                      and its attrs, plus root attrs of its own, documented in the strategy's module
    models/<id>       (P,) float32 final weights of every model the run held, written when it finishes
                      (the whole supernet: tools/search.py and tools/export.py read them, hpcfed.search.trained)
    post_search/      written by tools/search.py (hpcfed.search.post_training), replacing an older search's: (F,) the
                      front found under a budget: name, arch_json, macs, params, val_accuracy (what the
                      search decided on), test_accuracy (computed once afterwards, reporting only); the same
                      columns and reference_names in post_search/references/ for the reference subnets under
                      the budget; attrs: budget_macs, budget_params (0 = none), objective, seed, population,
                      generations, validation (the split candidates were scored on), evaluated, world_size,
                      wall_s, searched

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
from hpcfed.record import live
from hpcfed.errors import HpcfedError
from hpcfed.supernet import Arch

STR = h5py.string_dtype()

ROUND_COLUMNS: dict[str, tuple[Any, str, str]] = {
    "round": (np.int64, "", "round index, from 0"),
    "virtual_time_s": (np.float64, "s", "virtual clock at the end of the round"),
    "wall_time_s": (np.float64, "s", "wall-clock seconds since the run started"),
    "clients": (np.int64, "", "clients whose updates were aggregated"),
    "dropped": (np.int64, "", "sampled clients dropped (deadline, over-selection, no fitting subnet)"),
    "rejected": (np.int64, "", "updates rejected as non-finite"),
    "macs": (np.float64, "MAC", "client training multiply-accumulates this round"),
    "bytes_down": (np.int64, "B", "weights shipped to clients (simulated)"),
    "bytes_up": (np.int64, "B", "weights shipped back by clients (simulated)"),
    "mpi_bytes": (np.int64, "B", "bytes moved between MPI ranks"),
    "slice_bytes": (np.int64, "B", "bytes the slices need between ranks: 4 per element of each worker's union "
                                   "of its clients' slices, down and up (0 in one process)"),
    "train_loss": (np.float64, "", "sample-weighted mean local training loss"),
    "round_wall_s": (np.float64, "s", "wall-clock seconds of the round: from the previous round's row to this "
                                      "one (planning, transfer, training, reduction, aggregation, evaluation, "
                                      "the previous row's write and checkpoint)"),
    "train_wall_s": (np.float64, "s", "wall-clock seconds the slowest rank spent in local training"),
    "eval_wall_s": (np.float64, "s", "wall-clock seconds rank 0 spent evaluating reference subnets in this round "
                                     "(with workers: mostly the previous round's evaluation, run while they train)"),
}
CLIENT_COLUMNS: dict[str, tuple[Any, str, str]] = {
    "round": (np.int64, "", "round index"),
    "client": (np.int64, "", "client id"),
    "rank": (np.int64, "", "MPI rank that trained it (-1 = not trained)"),
    "model": (np.int64, "", "model it trained (-1 = no subnet fitted)"),
    "arch_id": (np.int64, "", "row of architectures/json (-1 = no subnet fitted)"),
    "samples": (np.int64, "", "training samples processed"),
    "macs": (np.float64, "MAC", "training multiply-accumulates spent"),
    "bytes_down": (np.int64, "B", "bytes received"),
    "bytes_up": (np.int64, "B", "bytes sent"),
    "sim_time_s": (np.float64, "s", "simulated round time of this client (inf = offline or no subnet)"),
    "made_deadline": (np.bool_, "", "its update was aggregated"),
    "loss": (np.float64, "", "mean local training loss (nan if not trained)"),
    "weight": (np.float64, "", "normalised aggregation weight"),
}

VALIDATION_COLUMNS: dict[str, tuple[Any, str, str]] = {
    "round": (np.int64, "", "round whose plan held the task: it scored the weights that entered that round"),
    "model": (np.int64, "", "model scored"),
    "client": (np.int64, "", "client whose validation split scored it (never the test set)"),
    "arch_id": (np.int64, "", "row of architectures/json: the subnet scored"),
    "correct": (np.int64, "", "correctly classified validation samples"),
    "total": (np.int64, "", "validation samples"),
    "loss_sum": (np.float64, "", "summed cross-entropy over the validation samples"),
}
TABLES = {"rounds": ROUND_COLUMNS, "clients": CLIENT_COLUMNS, "validation": VALIDATION_COLUMNS}

WRITE_EVERY_S = 2.0


ROW_TABLES = (*TABLES, "eval", "architectures")   # every table that grows by rows (a checkpoint counts them)


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
            _create_tables(f, subnets)
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
                _check_layout(f, path, subnet_count)
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


def _create_tables(f: h5py.File, subnets: list[tuple[str, Arch, int, int, int]]) -> None:
    for name, columns in TABLES.items():
        group = f.create_group(name)
        for col, (dtype, unit, doc) in columns.items():
            ds = group.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(4096,))
            ds.attrs.update({"units": unit, "description": doc})
    ev = f.create_group("eval")
    ev.create_dataset("round", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
    columns = len(subnets)   # none for a strategy that reads the test set only after the run
    acc = ev.create_dataset("accuracy", shape=(0, columns), maxshape=(None, columns or None),
                            dtype=np.float64, chunks=(256, max(columns, 1)))
    acc.attrs.update({"units": "fraction", "description": "top-1 test accuracy per reference subnet"})
    ev.create_dataset("subnet_names", data=[s[0] for s in subnets], dtype=STR)
    ev.create_dataset("subnet_archs", data=[s[1].to_json() for s in subnets], dtype=STR)
    ev.create_dataset("subnet_macs", data=[s[2] for s in subnets], dtype=np.int64).attrs["units"] = "MAC/sample"
    ev.create_dataset("subnet_params", data=[s[3] for s in subnets], dtype=np.int64)
    ev.create_dataset("subnet_models", data=[s[4] for s in subnets], dtype=np.int64)
    f.create_group("architectures").create_dataset(
        "json", shape=(0,), maxshape=(None,), dtype=STR, chunks=(256,))


def _check_layout(f: h5py.File, path, subnet_count: int) -> None:
    """Reject a file that is not an hpcfed results file of this job's shape (one line naming the part)."""
    expected = [f"{name}/{c}" for name, columns in TABLES.items() for c in columns] + \
        ["eval/round", "eval/accuracy", "architectures/json"]
    for name in expected:
        if name not in f or not isinstance(f[name], h5py.Dataset):
            raise HpcfedError(f"--resume: {str(path)!r} lacks dataset {name!r}; not an hpcfed results file")
    accuracy = f["eval/accuracy"]
    if accuracy.ndim != 2 or accuracy.shape[1] != subnet_count:
        raise HpcfedError(f"--resume: {str(path)!r} has eval/accuracy of shape {accuracy.shape}; "
                          f"this job evaluates {subnet_count} reference subnets")


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
