"""Save and restore the server state, atomically, in an HDF5 file beside the results.

The state is everything a run needs to continue bit-identically: the weights of every model the
run holds, the strategy's state (e.g. SuperFed's tracking counters), the controller's (early
stopping), the virtual clock, the next round, and how many rows of each results table belong to
it. No random generator state is saved because there is none: every stream is derived from (seed,
purpose, round, client). The file is written under a temporary name and renamed, so a kill during
the write leaves the previous checkpoint intact; it is read back without executing code (no pickle).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import yaml

from hpcfed.config import FaultsConfig
from hpcfed.errors import HpcfedError
from hpcfed.runtime import faults as fault_hooks

FORMAT = 3   # 3: the controller's state apart from the strategy's; 2: several models (models/<id>); 1: one model
UNCHECKED_SECTIONS = ("faults", "checkpoint", "output")   # may change between a run and its resumption


@dataclass
class Snapshot:
    """The server state after a completed round."""

    round: int                          # the next round to play
    clock: float                        # virtual seconds
    wall_s: float                       # wall-clock seconds spent so far (wall_time_s continues from it)
    models: dict[int, np.ndarray]       # model id -> float32 (P,)
    strategy: dict[str, np.ndarray]     # the strategy's state (Strategy.state_dict)
    controller: dict[str, np.ndarray]   # the controller's (early stopping, hpcfed.engine.controller)
    rows: dict[str, int]                # rows of each results table: rounds, clients, eval, architectures


def checkpoint_path(results: Path) -> Path:
    return results.with_name(results.name + ".ckpt")


def save(path: Path, snap: Snapshot, config_yaml: str, faults: FaultsConfig | None = None) -> None:
    """Write ``snap`` to ``path`` atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs.update({"format": FORMAT, "config_yaml": config_yaml, "round": snap.round,
                        "clock": snap.clock, "wall_s": snap.wall_s})
        models = f.create_group("models")
        for model, weights in snap.models.items():
            models.create_dataset(str(model), data=weights)
        if faults is not None:
            fault_hooks.in_checkpoint(faults, snap.round - 1)
        for name, state in (("strategy", snap.strategy), ("controller", snap.controller)):
            group = f.create_group(name)
            for key, value in state.items():
                group.create_dataset(key, data=value)
        rows = f.create_group("rows")
        for key, value in snap.rows.items():
            rows.attrs[key] = value
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def load(path: Path, config_yaml: str, num_params: int) -> Snapshot:
    """Read a checkpoint, checking that it belongs to this job; errors name the path and the mismatch."""
    if not path.is_file():
        raise HpcfedError(f"--resume: no checkpoint {str(path)!r} beside the results file; "
                          "the run was stopped before it saved its start (every run saves one before round 0); "
                          "nothing to resume: run the job again with --overwrite")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise HpcfedError(f"--resume: {str(path)!r} has checkpoint format {f.attrs.get('format')!r}; "
                                  f"this hpcfed reads format {FORMAT}")
            _check_same_job(path, str(f.attrs["config_yaml"]), config_yaml)
            models = {int(m): w[()] for m, w in f["models"].items()}
            for model, weights in models.items():
                if weights.dtype != np.float32 or weights.shape != (num_params,):
                    raise HpcfedError(f"--resume: {str(path)!r} holds weights of shape {weights.shape} "
                                      f"{weights.dtype} for model {model}; this job's supernet has ({num_params},) float32")
            return Snapshot(round=int(f.attrs["round"]), clock=float(f.attrs["clock"]),
                            wall_s=float(f.attrs["wall_s"]), models=models,
                            strategy={k: v[()] for k, v in f["strategy"].items()},
                            controller={k: v[()] for k, v in f["controller"].items()},
                            rows={k: int(v) for k, v in f["rows"].attrs.items()})
    except HpcfedError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise HpcfedError(f"--resume: {str(path)!r} is not a readable hpcfed checkpoint ({err})") from None


def _check_same_job(path: Path, saved_yaml: str, config_yaml: str) -> None:
    saved, current = yaml.safe_load(saved_yaml), yaml.safe_load(config_yaml)
    for section in UNCHECKED_SECTIONS:
        saved.pop(section, None)
        current.pop(section, None)
    difference = _first_difference(saved, current, "")
    if difference:
        key, old, new = difference
        raise HpcfedError(f"--resume: checkpoint {str(path)!r} belongs to another job: {key} was {old!r}, "
                          f"the job now says {new!r}")


def _first_difference(a, b, prefix: str):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
