"""An optional TensorBoard view of a run (job key ``output.tensorboard: DIR``), written by rank 0.

The HDF5 results file stays the record; this is a view of it, written right after each flush of the
results rows (hpcfed.record.results.ResultsWriter.flush), so it never shows a row the file does not hold.
A run's events go to ``DIR/<results file stem>/``, so ``tensorboard --logdir DIR`` lists the runs by
name. Tags, every value stored as float64 (as the file holds it)::

    round/<column>               every column of rounds/ but ``round``; step = round
    eval/<subnet>                test accuracy of each reference subnet (eval/accuracy); step = round
    eval_by_virtual_ms/<subnet>  the same evaluations; step = virtual time at the end of that round, in ms

``<subnet>`` is the subnet's name (``model<m>/<name>`` when the run holds several models). Every
event's wall time is the run's ``started`` plus its round's ``wall_time_s``, so TensorBoard's
"relative" axis is the run's wall time, a resumed run's history included.

Exactly once: a run first deletes the event files in its folder (a fresh run only with
``--overwrite``, as for ``--out``); a resumed run then rewrites the history from the results file,
which ``--resume`` has cut back to the checkpoint's rows, and goes on appending. So the raw event files
hold every (tag, step) once, for any reader (``purge_step`` would leave the stale events in the old
files and rely on the reader to drop them).
"""
from __future__ import annotations

import atexit
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpcfed.errors import HpcfedError
from hpcfed.record import live
from hpcfed.record.schema import ROUND_COLUMNS

EVENTS = "events.out.tfevents."       # the name every TensorBoard event file starts with
COLUMNS = [c for c in ROUND_COLUMNS if c != "round"]
VIRTUAL = "eval_by_virtual_ms"


def check_installed(folder: str) -> None:
    """One line naming the fix when ``output.tensorboard`` is set and the package is missing."""
    if not folder:
        return
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise HpcfedError(f"output.tensorboard = {folder!r}: needs the tensorboard package, which is not installed; "
                          "pip install tensorboard (or pip install 'hpcfed[tensorboard]'), or leave the key out"
                          ) from None


def run_folder(folder: str, results: Path) -> Path | None:
    """This run's event folder: ``folder/<results file stem>`` (relative to the current folder, as --out)."""
    return Path(folder) / results.stem if folder else None


def event_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(EVENTS + "*")) if folder.is_dir() else []


def check_folder(folder: Path, overwrite: bool, resume: bool) -> None:
    """Refuse a folder that is a file, or that holds events and is neither resumed nor overwritten."""
    if folder.exists() and not folder.is_dir():
        raise HpcfedError(f"output.tensorboard: {str(folder)!r} is a file; the run's events need a folder there")
    if event_files(folder) and not (overwrite or resume):
        raise HpcfedError(f"output.tensorboard: {str(folder)!r} already holds TensorBoard events; pass --resume to "
                          "continue that run or --overwrite to replace them, or choose another folder")


class TensorBoardView:
    """Writes the rows of each results flush as scalars (:meth:`write`); see the module docstring."""

    def __init__(self, folder: Path, results: Path):
        from torch.utils.tensorboard import SummaryWriter

        def history_of(f: h5py.File) -> tuple:   # as the writer left it: new, or cut back by --resume
            return ({"rounds": [{c: f["rounds"][c][()] for c in ROUND_COLUMNS}],
                     "eval": [{"round": f["eval/round"][()], "accuracy": f["eval/accuracy"][()]}]},
                    f["eval/subnet_names"].asstr()[()].tolist(), f["eval/subnet_models"][()].tolist(),
                    f.attrs.get("started", ""))

        history, names, models, started = live.read(results, history_of)   # this process holds the run's lock
        self.started = _epoch(started)
        self.subnets = subnet_labels(names, models)
        self.times: dict[int, tuple[float, float]] = {}   # round -> (virtual_time_s, wall_time_s)
        folder.mkdir(parents=True, exist_ok=True)
        for old in event_files(folder):
            old.unlink()
        self.writer = SummaryWriter(str(folder), max_queue=1000, flush_secs=3600)   # flushed by write()
        atexit.register(self.close)
        self.write(history)

    def write(self, parts: dict[str, list[dict[str, np.ndarray]]]) -> None:
        """Add the rounds and evaluations among ``parts`` (ResultsWriter's buffered rows) and flush."""
        rounds, evals = _joined(parts.get("rounds", [])), _joined(parts.get("eval", []))
        for i, r in enumerate(rounds.get("round", np.empty(0, np.int64)).tolist()):
            self.times[r] = (float(rounds["virtual_time_s"][i]), float(rounds["wall_time_s"][i]))
            for column in COLUMNS:
                self._add(f"round/{column}", rounds[column][i], r)
        for r, accuracy in zip(evals.get("round", np.empty(0, np.int64)).tolist(), evals.get("accuracy", [])):
            virtual = self.times.get(r, (None, None))[0]
            for label, value in zip(self.subnets, accuracy):
                self._add(f"eval/{label}", value, r)
                if virtual is not None:
                    self._add(f"{VIRTUAL}/{label}", value, r, step=round(virtual * 1000))
        if len(rounds) or len(evals):
            self.writer.flush()

    def _add(self, tag: str, value: Any, r: int, step: int | None = None) -> None:
        wall = self.times.get(r, (0.0, None))[1]
        walltime = None if self.started is None or wall is None else self.started + wall
        self.writer.add_scalar(tag, float(value), r if step is None else step, walltime=walltime,
                               new_style=True, double_precision=True)

    def close(self) -> None:
        self.writer.close()


def subnet_labels(names: list[str], models: list[int]) -> list[str]:
    """A tag per reference subnet: its name, under ``model<m>/`` when there are several models, and
    ``#<column>`` appended where a label would repeat."""
    several = len(set(models)) > 1
    labels = [f"model{m}/{n}" if several else n for n, m in zip(names, models)]
    return [f"{label}#{j}" if labels.count(label) > 1 else label for j, label in enumerate(labels)]


def _joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if len(next(iter(p.values())))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def _epoch(started: Any) -> float | None:
    """The results file's ``started`` attribute (local time, as written by hpcfed.run) in seconds since the epoch."""
    try:
        text = started.decode() if isinstance(started, bytes) else str(started)
        return time.mktime(time.strptime(text, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None
