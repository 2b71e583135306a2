"""Backends run a round plan and return (sums per trained model, :class:`~hpcfed.round.outcome.Outcome`).

One interface, two backends: :class:`SerialBackend` runs every task in this process (one rank);
:class:`MPIBackend` maps the tasks to ranks 1..N-1 by predicted cost, broadcasts the plan, ships
each worker the values of the union of its tasks' slices per model with nonblocking ``Isend``
(the worker computes the same unions from the plan) and brings the fused buffers back with one
SUM reduction. The round loop (hpcfed.engine.server) sees only this interface.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from hpcfed.round.outcome import FusedLayout, Outcome
from hpcfed.round.plan import RoundPlan, map_to_workers, needed_slices
from hpcfed.runtime.comm import TAG_WEIGHTS, Comm
from hpcfed.supernet import ElasticResNet

Result = tuple[dict[int, torch.Tensor], Outcome]


class Backend:
    """Runs plans. ``overlaps`` says whether rank 0 is idle while the tasks run (then it can do
    other work in ``while_running``)."""

    overlaps = False

    def run(self, plan: RoundPlan, models: dict[int, torch.Tensor], while_running: Callable[[], None]) -> Result:
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (the run is over)."""


def _sums(layout: FusedLayout, fused: np.ndarray) -> dict[int, torch.Tensor]:
    return {m: torch.from_numpy(s) for m, s in layout.sums(fused).items()}


class SerialBackend(Backend):
    """Every task in this process, on the host's device."""

    def __init__(self, host):
        self.host = host

    def run(self, plan, models, while_running):
        while_running()
        self.host.bases = models    # read only: the host copies a model into its buffer before each task
        layout = FusedLayout.of(plan, self.host.model.num_params, 1)
        fused = self.host.run(plan.round, plan.tasks, layout)
        outcome = Outcome.decode(plan, layout, fused, np.zeros(len(plan.tasks), dtype=np.int64),
                                 {"mpi_bytes": 0, "slice_bytes": 0})
        return _sums(layout, fused), outcome


class MPIBackend(Backend):
    """Rank 0 of an MPI job whose ranks 1..N-1 run :func:`hpcfed.engine.worker.serve`."""

    overlaps = True

    def __init__(self, comm: Comm, model: ElasticResNet):
        self.comm, self.model = comm, model

    def run(self, plan, models, while_running):
        mapping = map_to_workers(plan.tasks, list(self.comm.workers))
        messages, shipped = {}, 0
        for worker, tasks in mapping.items():
            for model, specs in needed_slices(tasks).items():
                index = self.model.union_index(specs).numpy()
                flat = models[model].numpy()
                values = flat if len(index) == len(flat) else flat[index]
                messages.setdefault(worker, []).append((values, TAG_WEIGHTS))
                shipped += len(index)
        message = (plan, mapping)
        self.comm.bcast(message)
        sent = self.comm.send_to_workers(messages)
        while_running()
        layout = FusedLayout.of(plan, self.model.num_params, self.comm.size)
        fused = self.comm.reduce_sum(np.zeros(layout.size, dtype=np.int64))
        traffic = {"mpi_bytes": sent + (self.comm.size - 1) * (self.comm.bcast_bytes + fused.nbytes),
                   "slice_bytes": 2 * 4 * shipped}   # float32 values of each union, down and up
        ranks = np.zeros(len(plan.tasks), dtype=np.int64)
        for worker, tasks in mapping.items():
            ranks[[t.slot for t in tasks]] = worker
        return _sums(layout, fused), Outcome.decode(plan, layout, fused, ranks, traffic)

    def close(self):
        self.comm.bcast(None)
