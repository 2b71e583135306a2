"""The client host: trains a worker's clients and fills the fused buffer.

A host keeps one supernet buffer and the received global weights, and takes each client's
samples from the data set when it trains it (generated ones are made right here); it never keeps
a model per client, so its memory is O(supernet + data), not O(clients). For every client (or
group of clients sharing a subnet, trained at once by hpcfed.batched) it resets the model to the
global weights, runs the strategy's local training rule with each client's own random stream, and
adds ``w * theta`` over the client's mask into the fixed-point sums (hpcfed.aggregate). Ranks >= 1
run :func:`serve`; with one process the server calls :meth:`ClientHost.train` directly.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from hpcfed import faults
from hpcfed.aggregate import FIXED_LIMIT, add_term, to_fixed
from hpcfed.comm import TAG_WEIGHTS, Comm
from hpcfed.data import FederatedData
from hpcfed.plan import ClientTask, RoundPlan, fused_size, split_fused
from hpcfed.seeding import torch_generator
from hpcfed.strategies import Strategy
from hpcfed.supernet import ElasticResNet


class ClientHost:
    """Trains clients on one device and accumulates their updates."""

    def __init__(self, model: ElasticResNet, strategy: Strategy, data: FederatedData, device: torch.device):
        self.model, self.strategy, self.device = model.to(device), strategy, device
        self.job, self.data = strategy.job, data
        self.base = torch.zeros(model.num_params)           # the global weights as received (CPU)

    def train(self, round_index: int, tasks: tuple[ClientTask, ...], slots: int, rank: int = 0,
              ranks: int = 1) -> np.ndarray:
        """Train ``tasks`` from ``self.base``; return the fused int64 buffer (hpcfed.plan.fused_size)
        with this ``rank``'s training seconds in its place of the last block.

        Tasks of one group (same subnet, see hpcfed.plan.assign_groups) train together as one
        batched computation; the others one at a time.
        """
        started = time.perf_counter()
        p = self.model.num_params
        fused = torch.zeros(fused_size(p, slots, ranks), dtype=torch.int64)
        groups: dict[int, list[ClientTask]] = {}
        for task in tasks:
            groups.setdefault(task.group, []).append(task)
        for members in groups.values():
            for task in members:
                faults.before_training(self.job.faults, round_index, task.client)
            with torch.no_grad():
                self.model.flat.copy_(self.base)
            xs, ys = zip(*(self.data.client_data(t.client) for t in members))
            generators = [torch_generator(self.job.seed, "train", round_index, t.client) for t in members]
            if len(members) > 1:
                ends = np.cumsum([0] + [len(y) for y in ys])
                rows = [torch.arange(a, b, device=self.device) for a, b in zip(ends, ends[1:])]
                results = self.strategy.train_clients(self.model, members[0].spec, torch.cat(xs).to(self.device),
                                                      torch.cat(ys).to(self.device), rows, generators)
            else:
                task = members[0]
                schedule = self.strategy.local_schedule(round_index, task.client, task.spec, len(ys[0]))
                loss, seen = self.strategy.train_client(self.model, task.spec, xs[0].to(self.device),
                                                        ys[0].to(self.device), generators[0], schedule)
                results = [(self.model.flat.detach()[self._device_index(members[0].spec)], loss, seen)]
            for task, (theta, loss, seen) in zip(members, results):
                self._record(fused, slots, round_index, task, theta.cpu(), loss, seen)
        split_fused(fused, p, slots)[2][rank] = to_fixed(torch.tensor(time.perf_counter() - started))
        return fused.numpy()

    def _device_index(self, spec) -> torch.Tensor | slice:
        index = self._index(spec)
        return index if isinstance(index, slice) else index.to(self.device)

    def _index(self, spec) -> torch.Tensor | slice:
        """The spec's flat positions; ``slice(None)`` when it covers everything (flat indices ascend)."""
        index = self.model.flat_index(spec)
        return slice(None) if len(index) == self.model.num_params else index

    def _record(self, fused: torch.Tensor, slots: int, round_index: int, task: ClientTask, theta: torch.Tensor,
                loss: float, seen: int) -> None:
        """Check one client's update and add it to the fused buffer (rejected updates only count)."""
        p = self.model.num_params
        acc_sum, metrics, _ = split_fused(fused, p, slots)
        index = self._index(task.spec)
        start = self.base[index]
        theta = faults.corrupt_update(self.job.faults, round_index, task.client, theta, start)
        ok = seen == 0 or _is_sane(loss, theta, start, self.job.train.max_update_ratio)
        if ok and seen:     # a client with too few samples for one batch contributes nothing
            add_term(acc_sum, index, theta, task.weight)
        row = [loss * seen if ok and seen else 0.0, seen, 0.0 if ok else 1.0]
        metrics[task.slot] = to_fixed(torch.tensor(row, dtype=torch.float64))

    def receive(self, comm: Comm, tasks: tuple[ClientTask, ...], shipped: int) -> None:
        """Worker: take this round's weights on the union of its clients' slices from rank 0 (both
        sides compute the union from the plan, so only the values travel)."""
        index = self.model.union_index([t.spec for t in tasks])
        if len(index) != shipped:
            raise RuntimeError(f"round plan ships {shipped} values, but this worker's slices cover {len(index)}")
        if shipped == self.model.num_params:
            comm.recv_from_server([(self.base.numpy(), TAG_WEIGHTS)])
            return
        values = np.empty(shipped, dtype=np.float32)
        comm.recv_from_server([(values, TAG_WEIGHTS)])
        self.base[index] = torch.from_numpy(values)


def _is_sane(loss: float, theta: torch.Tensor, start: torch.Tensor, max_ratio: float) -> bool:
    """A finite update that fits the fixed-point accumulators and whose norm is not far out of line:
    ||theta - start|| <= max_ratio x ||start|| over the client's slice (0 = no norm guard)."""
    if not (np.isfinite(loss) and float(theta.abs().max()) < FIXED_LIMIT):   # a NaN max compares False too
        return False
    return max_ratio <= 0 or float((theta - start).norm()) <= max_ratio * float(start.norm()) + 1e-12


def serve(comm: Comm, host: ClientHost) -> None:
    """The loop of ranks >= 1: plan in, weights in, train, one fused reduction out, until stop."""
    while True:
        plan: RoundPlan = comm.bcast(None)
        if plan.stop:
            return
        tasks = plan.tasks.get(comm.rank, ())
        if tasks:
            host.receive(comm, tasks, plan.shipped[comm.rank])
        faults.mid_round(host.job.faults, plan.round, comm.rank)
        comm.reduce_sum(host.train(plan.round, tasks, plan.slots, comm.rank, comm.size))
