"""The HDF5 results file: one schema, written by rank 0, flushed every round.

Layout (units and descriptions are attributes of every dataset)::

    /                 attrs: hpcfed_version, config_yaml, strategy, seed, world_size, normalization,
                             status (running | finished | failed), final_model_sha256, started
    rounds/<column>   one row per round: ROUND_COLUMNS
    clients/<column>  one row per sampled client per round: CLIENT_COLUMNS
    eval/round        (E,) rounds at which the reference subnets were evaluated
    eval/accuracy     (E, S) top-1 test accuracy, fractions in [0, 1]
    eval/subnet_names, eval/subnet_macs, eval/subnet_params, eval/subnet_archs   (S,) per subnet
    architectures/json  (A,) JSON of every architecture that clients/arch_id refers to

A killed run leaves a readable file whose ``status`` is still ``running``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpcfed import __version__
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
    "train_loss": (np.float64, "", "sample-weighted mean local training loss"),
}
CLIENT_COLUMNS: dict[str, tuple[Any, str, str]] = {
    "round": (np.int64, "", "round index"),
    "client": (np.int64, "", "client id"),
    "rank": (np.int64, "", "MPI rank that trained it (-1 = not trained)"),
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


class ResultsWriter:
    """Creates the results file and appends rows; every append is flushed."""

    def __init__(self, path: str | Path, attrs: dict[str, Any], subnets: list[tuple[str, Arch, int, int]]):
        self.file = h5py.File(path, "w")
        self.file.attrs.update({"hpcfed_version": __version__, "status": "running", **attrs})
        for name, columns in (("rounds", ROUND_COLUMNS), ("clients", CLIENT_COLUMNS)):
            group = self.file.create_group(name)
            for col, (dtype, unit, doc) in columns.items():
                ds = group.create_dataset(col, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(4096,))
                ds.attrs.update({"units": unit, "description": doc})
        ev = self.file.create_group("eval")
        ev.create_dataset("round", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
        acc = ev.create_dataset("accuracy", shape=(0, len(subnets)), maxshape=(None, len(subnets)),
                                dtype=np.float64, chunks=(256, len(subnets)))
        acc.attrs.update({"units": "fraction", "description": "top-1 test accuracy per reference subnet"})
        ev.create_dataset("subnet_names", data=[s[0] for s in subnets], dtype=STR)
        ev.create_dataset("subnet_archs", data=[s[1].to_json() for s in subnets], dtype=STR)
        ev.create_dataset("subnet_macs", data=[s[2] for s in subnets], dtype=np.int64).attrs["units"] = "MAC/sample"
        ev.create_dataset("subnet_params", data=[s[3] for s in subnets], dtype=np.int64)
        self.file.create_group("architectures").create_dataset(
            "json", shape=(0,), maxshape=(None,), dtype=STR, chunks=(256,))
        self.arch_ids: dict[Arch, int] = {}
        self.file.flush()

    def arch_id(self, arch: Arch) -> int:
        """Row of ``arch`` in architectures/json, added on first use."""
        if arch not in self.arch_ids:
            ds = self.file["architectures/json"]
            ds.resize((len(ds) + 1,))
            ds[-1] = arch.to_json()
            self.arch_ids[arch] = len(ds) - 1
        return self.arch_ids[arch]

    def append_round(self, row: dict[str, Any], clients: dict[str, np.ndarray]) -> None:
        _append(self.file["rounds"], {k: [v] for k, v in row.items()})
        _append(self.file["clients"], clients)
        self.file.flush()

    def append_eval(self, round_index: int, accuracy: np.ndarray) -> None:
        ev = self.file["eval"]
        n = len(ev["round"])
        ev["round"].resize((n + 1,))
        ev["round"][n] = round_index
        ev["accuracy"].resize((n + 1, ev["accuracy"].shape[1]))
        ev["accuracy"][n] = accuracy
        self.file.flush()

    def close(self, status: str, **attrs: Any) -> None:
        if not self.file.id.valid:
            return
        self.file.attrs.update({"status": status, **attrs})
        self.file.close()


def _append(group: h5py.Group, columns: dict[str, Any]) -> None:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1 or set(columns) != set(group.keys()):
        raise ValueError(f"rows for {group.name} must give every column once: {sorted(group.keys())}")
    n = lengths.pop()
    for name, values in columns.items():
        ds = group[name]
        ds.resize((len(ds) + n,))
        ds[len(ds) - n:] = values


def read_results(path: str | Path) -> dict[str, Any]:
    """The whole file as plain NumPy arrays and attributes (small enough for analysis tools)."""
    with h5py.File(path, "r") as f:
        out: dict[str, Any] = {"attrs": {k: _text(v) for k, v in f.attrs.items()}}
        for group in ("rounds", "clients", "eval", "architectures"):
            out[group] = {k: _decode(f[group][k][()]) for k in f[group]}
    return out


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def _decode(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "O":
        return np.array([_text(v) for v in values], dtype=object)
    return values
