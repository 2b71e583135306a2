"""The post-training search of a finished run: where candidates are scored, by which rank, and what is kept.

SuperFed (Khare et al., 2022) trains the supernet once and then searches it for the best subnets
under a MACs budget; tools/search.py runs that search (hpcfed.search, NSGA-II) on a run reopened
by hpcfed.search.trained. Every candidate is scored on *validation* data with normalisation statistics
calibrated exactly as the run's own evaluation did (hpcfed.learning.evaluation); the test set is read once,
after the search, for the accuracies that are reported (:func:`test_accuracy`).

Validation (:func:`validation_set`), the first that the run's job has:

1. the server-held validation split (``data.server_val_fraction`` > 0), whole;
2. else the clients' own validation splits (``data.client_val_fraction`` > 0), whole clients in an
   order drawn from ``[seed, 9]`` until ``FALLBACK_SAMPLES`` samples;
3. else training samples of clients that the calibration sample does not touch, in the same way.
   The supernet was trained on them, so their accuracies are optimistic and rank subnets by fit;
   the tool says so, and a held-out split (1) is the better choice.

With several ranks, rank 0 drives the search and every rank scores a share of each generation's
new architectures (rank r: the r-th, (r+K)-th, ...); accuracies are per-sample counts on one
rank, so the search is the same for any number of ranks. Each architecture is scored once.
"""
from __future__ import annotations

import h5py
import numpy as np
import torch

from hpcfed.data import FederatedData
from hpcfed.data.splits import SEARCH_STREAM, calibration_clients
from hpcfed.errors import HpcfedError
from hpcfed.learning.evaluation import evaluate
from hpcfed.record import live
from hpcfed.record.schema import STR
from hpcfed.runtime.comm import Comm
from hpcfed.runtime.spread import Spread
from hpcfed.search.nsga import Candidate, SearchResult
from hpcfed.search.trained import TrainedRun
from hpcfed.supernet import Arch, ElasticResNet, SubnetSpec

FALLBACK_SAMPLES = 1000   # validation samples taken from clients when the job has no server split
GROUP = "post_search"


def validation_set(run: TrainedRun, data: FederatedData) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(x, y, where they come from) of the data candidates are scored on; never the test set."""
    d = run.job.data
    if len(data.y_val):
        return data.x_val, data.y_val, (f"server validation split: {len(data.y_val)} samples "
                                        f"(data.server_val_fraction {d.server_val_fraction:g})")
    order = np.random.default_rng([run.job.seed, SEARCH_STREAM]).permutation(data.num_clients)
    if data.validation_per_client().sum():
        x, y, clients = _take(data.client_validation, order, data.validation_per_client())
        return x, y, (f"client validation splits: {len(y)} samples of {clients} clients "
                      f"(data.client_val_fraction {d.client_val_fraction:g}; no server split)")
    used = {c for c, _ in calibration_clients(data, run.job.eval.calibration_samples, run.job.seed)}
    counts = data.samples_per_client()
    x, y, clients = _take(data.client_data, [c for c in order if c not in used], counts)
    if not len(y):
        raise HpcfedError(f"run file {str(run.path)!r}: its job has no validation split and every client's training "
                          "samples go into calibration; rerun with data.server_val_fraction > 0")
    return x, y, (f"training samples of {clients} clients outside the calibration sample: {len(y)} samples (the job "
                  "has no validation split; the supernet trained on them, so accuracies are optimistic; rerun with "
                  "data.server_val_fraction > 0 for a held-out split)")


def _take(read, order, counts) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Whole clients' samples (``read(k)``) in ``order`` until FALLBACK_SAMPLES (the last one cut)."""
    xs, ys, have = [], [], 0
    for client in order:
        if have >= FALLBACK_SAMPLES:
            break
        if counts[client]:
            x, y = read(int(client))
            xs.append(x[:FALLBACK_SAMPLES - have])
            ys.append(y[:FALLBACK_SAMPLES - have])
            have += len(ys[-1])
    if not ys:
        return torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0
    return torch.cat(xs), torch.cat(ys), len(ys)


class Scorer(Spread):
    """Validation accuracy of architectures, spread over the ranks of ``comm`` (hpcfed.runtime.spread); each
    scored once. Rank 0 calls the scorer (it is the search's ``score``) and :meth:`stop` at the end;
    every other rank calls :meth:`serve` and returns when rank 0 stops."""

    def __init__(self, comm: Comm, network: ElasticResNet, x: torch.Tensor, y: torch.Tensor,
                 calibration: torch.Tensor, batch_size: int, precision: str = "fp32"):
        super().__init__(comm, lambda archs: evaluate(network, [SubnetSpec(a) for a in archs], x, y, batch_size,
                                                      calibration, precision=precision).tolist())


def report_test_accuracy(network: ElasticResNet, archs: list[Arch], data: FederatedData, batch_size: int,
                         calibration: torch.Tensor, precision: str = "fp32") -> dict[Arch, float]:
    """Test accuracy of each architecture, for the report only: called once, after the search."""
    archs = list(dict.fromkeys(archs))
    return dict(zip(archs, evaluate(network, [SubnetSpec(a) for a in archs], data.x_test, data.y_test,
                                    batch_size, calibration, precision=precision).tolist()))


def record(path, result: SearchResult, tested: dict[Arch, float], attrs: dict) -> None:
    """Write the front (and the references under the budget) into the results file as ``post_search/``,
    replacing an older search's (one write session, hpcfed.record.live); ``attrs`` describe the search (budget,
    objective, seed, ...)."""
    held = live.hold(path, "run file")
    try:
        with live.writing(path, held) as f:
            if GROUP in f:
                del f[GROUP]
            group = f.create_group(GROUP)
            group.attrs.update(attrs)
            _write_rows(group, result.front, tested)
            refs = group.create_group("references")
            refs.attrs["description"] = "the run's reference subnets under the budget, scored the same way"
            _write_rows(refs, [c for _, c in result.references], tested)
            refs.create_dataset("reference_names", data=[n for n, _ in result.references], dtype=STR)
    finally:
        live.release(held)


def _write_rows(group: h5py.Group, rows: list[Candidate], tested: dict[Arch, float]) -> None:
    columns = {"name": ([c.arch.name for c in rows], STR, "", "architecture label (hpcfed.supernet.Arch.name)"),
               "arch_json": ([c.arch.to_json() for c in rows], STR, "", "architecture as JSON"),
               "macs": ([c.macs for c in rows], np.int64, "MAC/sample", "forward multiply-accumulates per sample"),
               "params": ([c.params for c in rows], np.int64, "", "parameters of the subnet"),
               "val_accuracy": ([c.val_accuracy for c in rows], np.float64, "fraction",
                                "top-1 validation accuracy: what the search decided on"),
               "test_accuracy": ([tested[c.arch] for c in rows], np.float64, "fraction",
                                 "top-1 test accuracy, computed once after the search (reporting only)")}
    for name, (values, dtype, units, description) in columns.items():
        group.create_dataset(name, data=np.array(values, dtype=object if dtype is STR else dtype), dtype=dtype)
        group[name].attrs.update({"units": units, "description": description})
