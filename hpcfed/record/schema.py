"""The HDF5 results file's layout: every table, column, unit and attribute (written by rank 0,
hpcfed.record.results; read by hpcfed.record.reading).

Layout (units and descriptions are attributes of every dataset)::

    /                 attrs: hpcfed_version, config_yaml, strategy, seed, world_size, normalization,
                             calibration (where evaluation's normalisation statistics come from),
                             test_samples (the test set's size: a test accuracy's standard error),
                             status (running | finished | failed), final_model_sha256 (SHA-256 of every
                             model's float32 weights concatenated in model order; one model: its
                             weights), started, and when the run finishes: stop_reason (why it ended:
                             all rounds played, or the strategy's reason), rounds_played, peak_rss_mb
                             (per rank, MiB), faults_not_fired (one line per fault of the job that
                             did not fire, and why; empty when all fired or none was asked), write_seq (write sessions begun and ended: odd while one
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
after SIGUSR1, ``running`` while written or after a SIGKILL.
"""
from __future__ import annotations

from typing import Any

import h5py
import numpy as np

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
    "loss_sq_sum": (np.float64, "", "summed squared per-sample cross-entropy (with loss_sum and total: the standard error)"),
}
TABLES = {"rounds": ROUND_COLUMNS, "clients": CLIENT_COLUMNS, "validation": VALIDATION_COLUMNS}
ROW_TABLES = (*TABLES, "eval", "architectures")   # every table that grows by rows (a checkpoint counts them)


def create_tables(f: h5py.File, subnets: list[tuple[str, Arch, int, int, int]]) -> None:
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


def check_layout(f: h5py.File, path, subnet_count: int) -> None:
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
