"""The round loop on rank 0, written once for every strategy (DESIGN.md, "One round").

Each round: (1) sample the cohort among online clients with over-selection; (2) the strategy
assigns every client a subnet its budget fits; (3) the device model gives each client's virtual
round time, the deadline decides who is kept; (4) the strategy weights the kept clients; (5) the
plan goes out, each worker receives the union of its clients' slices, trains them and one fused
reduction brings back the weighted sums; (6) rank 0 adds the denominators from the plan and the one
aggregation rule updates the global weights;
(7) the virtual clock advances and the round is logged, evaluated every ``eval.every`` rounds (with
workers, rank 0 evaluates a round while the workers train the next one, except before a checkpoint
and at the end).
After each round the server state is kept as a :class:`Snapshot`; it is saved every
``checkpoint.every`` rounds and when a signal interrupts the run (hpcfed.interrupts).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import pickle
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from hpcfed import checkpoint, faults
from hpcfed.aggregate import SCALE, add_weight, divide_keep, fixed_weight
from hpcfed.checkpoint import Snapshot
from hpcfed.comm import TAG_WEIGHTS, Comm
from hpcfed.config import JobConfig
from hpcfed.data import FederatedData
from hpcfed.devices import Population, apply_deadline, round_time, sample_cohort
from hpcfed.evaluation import evaluate
from hpcfed.interrupts import Interrupted
from hpcfed.plan import ClientTask, RoundPlan, assign_groups, contributed, fused_size, map_to_workers, split_fused
from hpcfed.results import ResultsWriter
from hpcfed.seeding import rng
from hpcfed.strategies import ClientSlot, Strategy
from hpcfed.supernet import Arch, ElasticResNet, SubnetSpec, cost
from hpcfed.training import batch_lengths, min_batch
from hpcfed.worker import ClientHost

cached_cost = lru_cache(maxsize=4096)(cost)


class Server:
    """Owns the global state (weights, strategy state, virtual clock) and drives the rounds."""

    def __init__(self, job: JobConfig, comm: Comm, model: ElasticResNet, strategy: Strategy,
                 data: FederatedData, population: Population, writer: ResultsWriter,
                 host: ClientHost | None, device: torch.device, checkpoint_file: Path,
                 resume_from: Snapshot | None = None, progress=print):
        self.job, self.comm, self.model, self.strategy = job, comm, model, strategy
        self.population, self.writer, self.host = population, writer, host
        self.space = model.space
        self.samples = data.samples_per_client()
        self.references = strategy.reference_subnets()
        self.x_test, self.y_test = data.x_test.to(device), data.y_test.to(device)
        self.progress = progress
        self.checkpoint_file = checkpoint_file
        self.last_accuracy: np.ndarray | None = None
        self.deferred_eval: tuple[int, torch.Tensor] | None = None   # (round, its weights), see log_round
        self.overlapped_eval_s = 0.0   # evaluation seconds spent while the workers trained this round
        self.schedule_macs: dict = {}  # (client, spec) -> training MACs of its local schedule, this round
        if resume_from is None:
            self.weights = model.flat.detach().cpu().clone()  # the global supernet weights
            self.clock, self.next_round, wall_s = 0.0, 0, 0.0  # virtual seconds, round to play
        else:
            self.weights = torch.from_numpy(resume_from.weights.copy())
            self.clock, self.next_round, wall_s = resume_from.clock, resume_from.round, resume_from.wall_s
            strategy.load_state_dict(resume_from.strategy)
        self.started = time.perf_counter() - wall_s
        self.round_timed = time.perf_counter()   # when the last round's row was timed
        self.snapshot = self.take_snapshot()
        self.saved_round = self.next_round if resume_from else -1   # a fresh run has no checkpoint yet

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> str:
        """Play the remaining rounds and return the final weights' SHA-256.

        On :class:`Interrupted` the last completed round is checkpointed before the exception
        goes on; any other failure leaves the last periodic checkpoint.
        """
        try:
            for r in range(self.next_round, self.job.rounds):
                self.play_round(r)
                self.next_round = r + 1
                self.snapshot = self.take_snapshot()
                if self.checkpoint_due(self.next_round):
                    self.save_checkpoint()
        except Interrupted:
            self.save_checkpoint()
            raise
        if self.comm.size > 1:
            self.comm.bcast(RoundPlan(round=-1, stop=True))
        return hashlib.sha256(self.weights.numpy().tobytes()).hexdigest()

    def take_snapshot(self) -> Snapshot:
        return Snapshot(round=self.next_round, clock=self.clock, wall_s=time.perf_counter() - self.started,
                        weights=self.weights.numpy(), strategy=self.strategy.state_dict(), rows=self.writer.rows())

    def save_checkpoint(self) -> None:
        """Save the last completed round's state (once per round), its evaluation included."""
        self.complete_deferred_eval()
        if self.saved_round != self.snapshot.round:
            self.writer.flush()   # the file must hold every row the checkpoint counts
            checkpoint.save(self.checkpoint_file, self.snapshot, self.job.to_yaml(), self.job.faults)
            self.saved_round = self.snapshot.round

    def play_round(self, r: int) -> None:
        job, want = self.job, self.job.clients.per_round
        # 1. the cohort: online clients, over-selected
        cohort = sample_cohort(rng(job.seed, "cohort", r), self.population,
                               math.ceil(want * (1 + job.clients.overselect)), self.clock)
        slots = [ClientSlot(c, int(self.samples[c]), self.population.device(c),
                            self.population.availability(c, self.clock)) for c in cohort]
        # 2. subnets within each client's budget
        self.schedule_macs.clear()
        specs = self.strategy.assign(r, slots, lambda slot, arch: self.fits(r, slot, arch), rng(job.seed, "assign", r))
        # 3. virtual round times; the deadline and over-selection decide who is kept
        times = np.array([self.client_time(r, s, spec) for s, spec in zip(slots, specs)])
        kept, duration = apply_deadline(times, want, job.clients.deadline_s)
        if duration == 0.0:
            duration = job.devices.period_s   # nobody could work: wait for availability to change
        # 4. aggregation weights of the kept clients
        chosen = np.flatnonzero(kept)
        weights = np.zeros(len(slots))
        if len(chosen):
            w = self.strategy.weights(r, [slots[i] for i in chosen], [specs[i] for i in chosen])
            weights[chosen] = w / w.sum()
        tasks = [ClientTask(j, slots[i].client, specs[i], float(weights[i]),
                            float(self.train_macs(r, slots[i], specs[i]))) for j, i in enumerate(chosen)]
        tasks = assign_groups(tasks, job.train.batch_clients if self.strategy.batchable else 1)
        # 5. train on the workers, one fused reduction back
        fused, traffic, ranks = self.dispatch(r, tasks)
        sums, metrics, rank_seconds = split_fused(fused, self.model.num_params, len(tasks))
        metrics = metrics / SCALE
        # 6. the one aggregation rule
        self.weights = divide_keep(torch.from_numpy(sums), self.denominators(tasks, contributed(metrics)), self.weights)
        # 7. clock, evaluate, log
        self.clock += duration
        traffic["train_wall_s"] = float(rank_seconds.max(initial=0) / SCALE)
        self.log_round(r, slots, specs, times, kept, chosen, weights, metrics, ranks, duration, traffic)

    def denominators(self, tasks: list[ClientTask], made: np.ndarray) -> torch.Tensor:
        """Fixed-point sum of the weights of the clients whose updates went into the sums, per element.
        Added per distinct spec: integer sums are exact in any grouping, so this equals adding per client."""
        per_spec: dict = {}
        for task in (t for t, ok in zip(tasks, made) if ok):
            per_spec[task.spec] = per_spec.get(task.spec, 0) + fixed_weight(task.weight)
        acc_weight = torch.zeros(self.model.num_params, dtype=torch.int64)
        for spec, fixed in per_spec.items():
            add_weight(acc_weight, self.model.flat_index(spec), fixed)
        if self.strategy.divide_by_selected:   # every covered element over all contributing clients' weight
            acc_weight = torch.where(acc_weight > 0, sum(per_spec.values()), 0)
        return acc_weight

    # -- budgets and costs ----------------------------------------------------------------------
    def fits(self, r: int, slot: ClientSlot, arch: Arch) -> bool:
        """The client can train ``arch``: it fits its memory and, with a deadline, its time budget
        (a multi-subnet rule holds one subnet's activations at a time: the largest, ``arch``)."""
        c = cached_cost(self.space, arch)
        if c.train_memory_bytes(self.job.train.batch_size) > slot.device.memory_bytes:
            return False
        deadline = self.job.clients.deadline_s
        return deadline <= 0 or self.client_time(r, slot, SubnetSpec(arch)) <= deadline

    def train_macs(self, r: int, slot: ClientSlot, spec: SubnetSpec) -> float:
        """The client's local training MACs in round ``r``: its samples times the local epochs on the
        spec's subnet, or the sum over its local schedule's batches and subnets."""
        return self.planned_macs(r, slot, spec)[0]

    def planned_macs(self, r: int, slot: ClientSlot, spec: SubnetSpec) -> tuple[float, bool]:
        """(:meth:`train_macs`, whether the strategy gave a local schedule), remembered for the round."""
        key = (slot.client, spec)
        if key not in self.schedule_macs:
            schedule = self.strategy.local_schedule(r, slot.client, spec, slot.samples)
            if schedule is None:
                macs = cached_cost(self.space, spec.arch).train_macs(slot.samples * self.job.train.local_epochs)
            else:
                lengths = batch_lengths(slot.samples, self.job.train, min_batch(self.space.norm))
                macs = sum(n * sum(cached_cost(self.space, a).train_macs(1) for a in archs)
                           for n, archs in zip(lengths, schedule))
            self.schedule_macs[key] = (macs, schedule is not None)
        return self.schedule_macs[key]

    def client_time(self, r: int, slot: ClientSlot, spec: SubnetSpec | None) -> float:
        if spec is None:
            return math.inf
        nbytes = cached_cost(self.space, spec.arch).param_bytes
        return round_time(slot.device, slot.availability, nbytes, self.train_macs(r, slot, spec), nbytes)

    # -- transport ------------------------------------------------------------------------------
    def dispatch(self, r: int, tasks: list[ClientTask]) -> tuple[np.ndarray, dict, np.ndarray]:
        """Run ``tasks`` on the workers (or locally); return (fused sums, traffic columns, rank per task).

        Each worker receives the values of the union of its clients' slices (it computes the same
        union from the plan) and sends back the fused buffer.
        """
        p = self.model.num_params
        if self.comm.size == 1:
            self.host.base.copy_(self.weights)
            faults.mid_round(self.job.faults, r, 0)
            fused = self.host.train(r, tuple(tasks), len(tasks))
            return fused, {"mpi_bytes": 0, "slice_bytes": 0}, np.zeros(len(tasks), dtype=np.int64)
        mapping = map_to_workers(tasks, list(self.comm.workers))
        shipped, messages = {}, {}
        flat = self.weights.numpy()
        for worker, mine in mapping.items():
            if mine:
                index = self.model.union_index([t.spec for t in mine]).numpy()
                shipped[worker] = len(index)
                messages[worker] = [(flat if len(index) == p else flat[index], TAG_WEIGHTS)]
        plan = RoundPlan(r, mapping, shipped, len(tasks))
        self.comm.bcast(plan)
        sent = self.comm.send_to_workers(messages)
        faults.mid_round(self.job.faults, r, 0)
        self.complete_deferred_eval()     # the previous round's evaluation, while the workers train
        fused = self.comm.reduce_sum(np.zeros(fused_size(p, len(tasks), self.comm.size), dtype=np.int64))
        traffic = {"mpi_bytes": sent + (self.comm.size - 1) * (len(pickle.dumps(plan)) + fused.nbytes),
                   "slice_bytes": 2 * 4 * sum(shipped.values())}   # float32 values of each union, down and up
        ranks = np.zeros(len(tasks), dtype=np.int64)
        for worker, mine in mapping.items():
            for task in mine:
                ranks[task.slot] = worker
        return fused, traffic, ranks

    # -- logging and evaluation -----------------------------------------------------------------
    def log_round(self, r, slots, specs, times, kept, chosen, weights, metrics, ranks, duration, measured):
        n = len(slots)
        samples, loss = np.zeros(n, dtype=np.int64), np.full(n, np.nan)
        rank, made = np.full(n, -1, dtype=np.int64), np.zeros(n, dtype=bool)
        if len(chosen):
            seen = metrics[:, 1]
            samples[chosen] = np.rint(seen).astype(np.int64)
            rejected = metrics[:, 2] > 0.5
            loss[chosen] = np.where(rejected | (seen == 0), np.nan, metrics[:, 0] / np.maximum(seen, 1))
            rank[chosen] = ranks
            made[chosen] = ~rejected
        macs, down, up = np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        for i, (slot, spec) in enumerate(zip(slots, specs)):
            if spec is None:
                continue
            c = cached_cost(self.space, spec.arch)
            down[i] = c.param_bytes
            if kept[i]:
                up[i] = c.param_bytes
                planned, scheduled = self.planned_macs(r, slot, spec)
                if scheduled:   # the whole schedule ran, or nothing (a failed client)
                    macs[i] = planned if samples[i] else 0.0
                else:
                    macs[i] = c.train_macs(int(samples[i]))
            else:   # a dropped straggler worked until the round ended
                download = c.param_bytes / slot.device.down_bytes_per_s
                share = min(1.0, max(0.0, (duration - download) / max(times[i] - download, 1e-12)))
                macs[i] = share * self.train_macs(r, slot, spec)
        arch_ids = np.array([self.writer.arch_id(s.arch) if s is not None else -1 for s in specs], dtype=np.int64)
        trained = made.sum()
        train_loss = float(np.nansum(loss * samples) / max(samples[made].sum(), 1)) if trained else math.nan
        accuracy, eval_started = None, time.perf_counter()
        if (r + 1) % self.job.eval.every == 0 or r == self.job.rounds - 1:
            if self.comm.size > 1 and r < self.job.rounds - 1 and not self.checkpoint_due(r + 1):
                self.deferred_eval = (r, self.weights)   # rank 0 evaluates while the workers train round r + 1
            else:
                accuracy = self.evaluate(self.weights)
        now = time.perf_counter()
        row = {"round": r, "virtual_time_s": self.clock, "wall_time_s": now - self.started,
               "clients": int(trained), "dropped": int(n - kept.sum()), "rejected": int(kept.sum() - trained),
               "macs": float(macs.sum()), "bytes_down": int(down.sum()), "bytes_up": int(up.sum()),
               "train_loss": train_loss, "round_wall_s": now - self.round_timed,
               "eval_wall_s": self.overlapped_eval_s + now - eval_started,
               **measured}
        self.round_timed, self.overlapped_eval_s = now, 0.0
        clients = {"round": np.full(n, r), "client": np.array([s.client for s in slots], dtype=np.int64),
                   "rank": rank, "arch_id": arch_ids, "samples": samples, "macs": macs, "bytes_down": down,
                   "bytes_up": up, "sim_time_s": times, "made_deadline": made, "loss": loss, "weight": weights}
        self.writer.append_round(row, clients)
        if accuracy is not None:
            self.record_eval(r, accuracy)
        self.report_progress(r, row)

    def evaluate(self, weights: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            self.model.flat.copy_(weights)
        return evaluate(self.model, self.references, self.x_test, self.y_test, self.job.eval.batch_size)

    def record_eval(self, r: int, accuracy: np.ndarray) -> None:
        self.last_accuracy = accuracy
        self.writer.append_eval(r, accuracy)

    def complete_deferred_eval(self) -> None:
        """Evaluate the round whose evaluation was deferred. Its snapshot is still the latest one (it
        is replaced only after the next round), so the snapshot now counts the new eval row."""
        if self.deferred_eval is None:
            return
        r, weights = self.deferred_eval
        if self.snapshot.round != r + 1:   # stopped before round r was complete: a resume replays it
            self.deferred_eval = None
            return
        started = time.perf_counter()
        accuracy = self.evaluate(weights)
        self.record_eval(r, accuracy)
        rows = self.snapshot.rows
        self.snapshot = dataclasses.replace(self.snapshot, rows={**rows, "eval": rows["eval"] + 1})
        self.deferred_eval = None
        self.overlapped_eval_s += time.perf_counter() - started

    def checkpoint_due(self, next_round: int) -> bool:
        every = self.job.checkpoint.every
        return bool(every) and next_round % every == 0

    def report_progress(self, r: int, row: dict) -> None:
        elapsed = time.perf_counter() - self.started
        eta = elapsed / (r + 1) * (self.job.rounds - r - 1)
        acc = ""
        if self.last_accuracy is not None:
            acc = f" | acc min {self.last_accuracy[0]:.3f} max {self.last_accuracy[-1]:.3f}"
        self.progress(f"round {r + 1:>4}/{self.job.rounds} | virtual {row['virtual_time_s']:9.1f} s | "
                      f"loss {row['train_loss']:.4f} | clients {row['clients']:>3} dropped {row['dropped']:>3}"
                      f"{acc} | {elapsed:6.1f} s, ETA {eta:6.1f} s")
