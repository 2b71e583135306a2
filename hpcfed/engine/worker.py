"""The client host: runs a plan's tasks for the clients it hosts and fills the fused buffer.

A host keeps one supernet buffer and, per model, the weights as received; it takes each client's
samples from the data set when it needs them (generated ones are made right here) and never keeps
a model per client, so its memory is O(models x supernet + data), not O(clients). A train task (or
a group of them sharing a subnet, trained at once by hpcfed.learning.batched) starts from its model's
weights, runs the strategy's local rule with the client's own random stream and the plan's
schedule, and adds ``w * theta`` over its footprint into the fixed-point sums (hpcfed.round.aggregate).
An evaluate task scores its model's subnet on the client's validation split (statistics calibrated
on the client's training samples, hpcfed.learning.evaluation). Ranks >= 1 run
:func:`serve`; in one process hpcfed.engine.backend calls :meth:`ClientHost.run` directly.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from hpcfed.data import FederatedData
from hpcfed.learning.batched import train_group
from hpcfed.learning.evaluation import calibrate, score
from hpcfed.learning.precision import eval_precision
from hpcfed.round.aggregate import FIXED_LIMIT, add_term, to_fixed
from hpcfed.round.outcome import COLUMN, METRICS, FusedLayout
from hpcfed.round.plan import TRAIN, Task, needed_slices
from hpcfed.runtime import faults
from hpcfed.runtime.comm import TAG_WEIGHTS, Comm
from hpcfed.seeding import torch_generator
from hpcfed.strategies import Strategy
from hpcfed.supernet import ElasticResNet


class ClientHost:
    """Runs tasks on one device and accumulates their updates and metrics."""

    def __init__(self, model: ElasticResNet, strategy: Strategy, data: FederatedData, device: torch.device):
        self.model, self.strategy, self.device = model.to(device), strategy, device
        self.job, self.data = strategy.job, data
        self.bases: dict[int, torch.Tensor] = {}   # model -> its weights as received (CPU, P)

    def run(self, round_index: int, tasks: tuple[Task, ...], layout: FusedLayout, rank: int = 0) -> np.ndarray:
        """Run ``tasks`` from ``self.bases``; return the fused int64 buffer (hpcfed.round.outcome) with this
        ``rank``'s seconds in its place of the last block."""
        started = time.perf_counter()
        fused = torch.zeros(layout.size, dtype=torch.int64)
        groups: dict[int, list[Task]] = {}
        for task in tasks:
            groups.setdefault(task.group, []).append(task)
        evaluations: dict[int, list[Task]] = {}   # client -> its evaluate tasks (its data is read once)
        for members in groups.values():
            if members[0].kind == TRAIN:
                self._train(round_index, members, layout, fused)
            else:
                for task in members:
                    evaluations.setdefault(task.client, []).append(task)
        for client, scored in evaluations.items():
            self._evaluate(client, scored, layout, fused)
        layout.rank_seconds(fused)[rank] = to_fixed(torch.tensor(time.perf_counter() - started))
        return fused.numpy()

    def _load(self, model: int) -> None:
        with torch.no_grad():
            self.model.flat.copy_(self.bases[model])

    def _train(self, round_index: int, members: list[Task], layout: FusedLayout, fused: torch.Tensor) -> None:
        for task in members:
            faults.before_training(self.job.faults, round_index, task.client)
        self._load(members[0].model)
        index = self._index(members[0].footprint)   # a group shares its spec, hence its footprint
        xs, ys = zip(*(self.data.client_data(t.client) for t in members))
        generators = [torch_generator(self.job.seed, "train", round_index, t.client) for t in members]
        if len(members) > 1:
            ends = np.cumsum([0] + [len(y) for y in ys])
            rows = [torch.arange(a, b, device=self.device) for a, b in zip(ends, ends[1:])]
            spec = members[0].spec   # the strategy is batchable: its rule is plain SGD on one subnet
            results = train_group(self.model, spec, torch.cat(xs).to(self.device), torch.cat(ys).to(self.device),
                                  rows, generators, self.job.train, self.strategy.train_scale(spec))
        else:
            task = members[0]
            loss, seen = self.strategy.train_client(self.model, task.spec, xs[0].to(self.device),
                                                    ys[0].to(self.device), generators[0], task.schedule)
            on_device = index if isinstance(index, slice) else index.to(self.device)
            results = [(self.model.flat.detach()[on_device], loss, seen)]
        for task, (theta, loss, seen) in zip(members, results):
            self._record(fused, layout, round_index, task, index, theta.cpu(), loss, seen)

    def _evaluate(self, client: int, tasks: list[Task], layout: FusedLayout, fused: torch.Tensor) -> None:
        """Score each task's model and subnet on the client's validation split (loss and its squares, correct, total),
        with normalisation statistics calibrated on the client's own training samples."""
        x, y = (t.to(self.device) for t in self.data.client_validation(client))
        calibration = self.data.client_data(client)[0].to(self.device)
        precision = eval_precision(self.job.train.precision, self.job.eval.precision)
        for task in tasks:
            self._load(task.model)
            statistics = calibrate(self.model, task.spec, calibration, precision)
            scored = score(self.model, task.spec, x, y, self.job.eval.batch_size, statistics, precision=precision)
            row = torch.zeros(len(METRICS), dtype=torch.float64)
            row[COLUMN["loss_sum"]], row[COLUMN["loss_sq_sum"]] = scored.loss_sum, scored.loss_sq_sum
            row[COLUMN["correct"]], row[COLUMN["total"]] = scored.correct, len(y)
            layout.metrics(fused)[task.slot] = to_fixed(row)

    def _index(self, footprint) -> torch.Tensor | slice:
        """The footprint's flat positions; ``slice(None)`` when it covers everything (they ascend)."""
        index = self.model.union_index(footprint)
        return slice(None) if len(index) == self.model.num_params else index

    def _record(self, fused: torch.Tensor, layout: FusedLayout, round_index: int, task: Task,
                index: torch.Tensor | slice, theta: torch.Tensor, loss: float, seen: int) -> None:
        """Check one client's update over its footprint's positions ``index`` and add it to its model's
        sums (rejected updates only count)."""
        start = self.bases[task.model][index]
        theta = faults.corrupt_update(self.job.faults, round_index, task.client, theta, start)
        ok = seen == 0 or _is_sane(loss, theta, start, self.job.train.max_update_ratio)
        if ok and seen:     # a client with too few samples for one batch contributes nothing
            add_term(layout.sums(fused)[task.model], index, theta, task.weight)
        row = torch.zeros(len(METRICS), dtype=torch.float64)
        row[COLUMN["loss_sum"]] = loss * seen if ok and seen else 0.0
        row[COLUMN["samples"]], row[COLUMN["rejected"]] = seen, 0.0 if ok else 1.0
        layout.metrics(fused)[task.slot] = to_fixed(row)

    def receive(self, comm: Comm, tasks: tuple[Task, ...]) -> None:
        """Worker: take this round's weights on the union of its tasks' slices, per model, from rank 0
        (both sides compute the unions from the plan, so only the values travel)."""
        for model, specs in needed_slices(tasks).items():
            base = self.bases.setdefault(model, torch.zeros(self.model.num_params))
            index = self.model.union_index(specs)
            if len(index) == self.model.num_params:
                comm.recv_from_server([(base.numpy(), TAG_WEIGHTS)])
                continue
            values = np.empty(len(index), dtype=np.float32)
            comm.recv_from_server([(values, TAG_WEIGHTS)])
            base[index] = torch.from_numpy(values)


def _is_sane(loss: float, theta: torch.Tensor, start: torch.Tensor, max_ratio: float) -> bool:
    """A finite update that fits the fixed-point accumulators and whose norm is not far out of line:
    ||theta - start|| <= max_ratio x ||start|| over the client's slice (0 = no norm guard)."""
    if not (np.isfinite(loss) and float(theta.abs().max()) < FIXED_LIMIT):   # a NaN max compares False too
        return False
    return max_ratio <= 0 or float((theta - start).norm()) <= max_ratio * float(start.norm()) + 1e-12


def serve(comm: Comm, host: ClientHost) -> None:
    """The loop of ranks >= 1: plan in, weights in, run the tasks, one fused reduction out, until stop."""
    while True:
        message = comm.bcast(None)
        if message is None:
            return
        plan, mapping = message
        tasks = mapping.get(comm.rank, ())
        if tasks:
            host.receive(comm, tasks)
        faults.mid_round(host.job.faults, plan.round, comm.rank)
        layout = FusedLayout.of(plan, host.model.num_params, comm.size)
        comm.reduce_sum(host.run(plan.round, tasks, layout, comm.rank))
