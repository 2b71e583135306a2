"""The server on rank 0: the run's state and one round as data flowing one way (docs/architecture.md).

``step()`` plays one round: plan (hpcfed.engine.planning) -> backend (hpcfed.engine.backend) -> outcome
(hpcfed.round.outcome) -> merge (hpcfed.round.merge) -> observe (the strategy) -> log (hpcfed.record.results). The
controller (hpcfed.engine.controller) decides how many rounds to play. Reference evaluations on the test
set are reported every ``eval.every`` rounds and after the last; when the backend leaves rank 0
idle while tasks run, rank 0 evaluates a round while the workers train the next one (except before
a checkpoint and at the end). After each round the server state is kept as a :class:`Snapshot`,
saved before round 0, every ``checkpoint.every`` rounds and when a signal interrupts the run
(hpcfed.runtime.interrupts).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from hpcfed.config import JobConfig
from hpcfed.data import FederatedData
from hpcfed.data.splits import calibration_sample
from hpcfed.engine.accounting import Cohort, Costs, client_ledger
from hpcfed.engine.backend import Backend
from hpcfed.engine.controller import Controller
from hpcfed.engine.planning import Planner
from hpcfed.learning.evaluation import ReferenceEvaluation
from hpcfed.learning.precision import eval_precision
from hpcfed.population.devices import Population
from hpcfed.record import checkpoint
from hpcfed.record.checkpoint import Snapshot
from hpcfed.record.results import ResultsWriter
from hpcfed.round.merge import merge
from hpcfed.round.outcome import Outcome
from hpcfed.round.plan import EVALUATE, RoundPlan
from hpcfed.runtime import faults
from hpcfed.runtime.interrupts import Interrupted
from hpcfed.strategies import Strategy
from hpcfed.supernet import ElasticResNet


ETA_WINDOW = 20   # the ETA's wall time per round: the mean of this session's last rounds (a phase may change it)


def models_sha256(models: dict[int, torch.Tensor]) -> str:
    """SHA-256 of every model's float32 weights, concatenated in model order (one model: of its weights)."""
    digest = hashlib.sha256()
    for model in sorted(models):
        digest.update(models[model].numpy().tobytes())
    return digest.hexdigest()


class Server:
    """Owns the global state (models, strategy state, virtual clock) and plays rounds."""

    def __init__(self, job: JobConfig, model: ElasticResNet, strategy: Strategy, data: FederatedData,
                 population: Population, writer: ResultsWriter, backend: Backend, device: torch.device,
                 checkpoint_file: Path, resume_from: Snapshot | None = None, progress=print):
        self.job, self.model, self.strategy, self.writer, self.backend = job, model, strategy, writer, backend
        self.costs = Costs(job, model.space, strategy, population)
        self.planner = Planner(job, strategy, population, data.samples_per_client(),
                               data.validation_per_client(), self.costs)
        calibration = calibration_sample(data, job.eval.calibration_samples, job.seed).to(device)
        self.evaluation = ReferenceEvaluation(model, strategy.references(), data.test_inputs.to(device),
                                              data.y_test.to(device), job.eval.batch_size, calibration, data.inputs,
                                              eval_precision(job.train.precision, job.eval.precision))
        self.controller = Controller(job, strategy, lambda: self.clock)
        self.progress, self.checkpoint_file = progress, checkpoint_file
        self.last_accuracy: np.ndarray | None = None   # the last test evaluation (reported only), after round:
        self.last_eval_round = -1
        self.stopped = ""   # why the run ended (the controller's reason), once it has
        self.report: dict | None = None   # the strategy's end-of-run report (Strategy.report), once it has
        self.deferred_eval: tuple[int, dict] | None = None   # (round, its models), see log
        self.overlapped_eval_s = 0.0   # evaluation seconds spent while the workers trained this round
        if resume_from is None:
            self.models = {0: model.flat.detach().cpu().clone()}   # model 0 starts as the initial supernet
            self.clock, self.next_round, wall_s = 0.0, 0, 0.0      # virtual seconds, round to play
        else:
            self.models = {m: torch.from_numpy(w.copy()) for m, w in resume_from.models.items()}
            self.clock, self.next_round, wall_s = resume_from.clock, resume_from.round, resume_from.wall_s
            strategy.load_state_dict(resume_from.strategy)
            self.controller.load_state_dict(resume_from.controller)
        strategy.prepare(data, population)
        self.started = time.perf_counter() - wall_s
        self.loop_started = time.perf_counter()   # reset when the rounds begin (after the method's preparation)
        self.round_ends: list[float] = []         # when each round of this session was reported
        self.round_timed = time.perf_counter()   # when the last round's row was timed
        self.snapshot = self.take_snapshot()
        self.resumable = self.snapshot   # the newest snapshot whose rows are all logged (no evaluation pending)
        self.saved_round = self.next_round if resume_from else -1
        if resume_from is None:   # a fresh run saves its start: from here on any stop, SIGKILL too, can be resumed
            self.save_checkpoint()

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> str:
        """Play rounds until the controller stops; return :func:`models_sha256` of the final models.

        On :class:`Interrupted` the newest complete round is checkpointed at once (a deferred
        evaluation is not finished first: ``mpirun`` allows a fraction of a second, see
        hpcfed.runtime.interrupts) before the exception goes on; any other failure leaves the last checkpoint.
        """
        self.loop_started = time.perf_counter()
        try:
            while not self.controller.stop_reason(self.next_round):
                self.step()
                self.snapshot = self.take_snapshot()
                if self.deferred_eval is None:
                    self.resumable = self.snapshot
                if self.checkpoint_due(self.next_round):
                    self.save_checkpoint()
        except Interrupted as stop:
            print(f"hpcfed: {stop}: saving the state after round {self.resumable.round} and stopping",
                  file=sys.stderr, flush=True)
            self.save_checkpoint(self.resumable)
            raise
        self.stopped = self.controller.stop_reason(self.next_round)
        self.backend.close()
        self.report = self.strategy.report(lambda references: self.evaluation.score(self.models, references))
        return models_sha256(self.models)

    def step(self) -> None:
        """Play round ``next_round``: plan -> backend -> outcome -> merge -> observe -> log."""
        r = self.next_round
        self.sync_models()
        plan, cohort = self.planner.plan(r, self.clock)
        sums, outcome = self.backend.run(plan, self.models, lambda: self.while_running(r))
        self.models = merge(sums, plan, outcome, self.models, self.model.union_index, self.strategy.merge_denominator)
        self.strategy.observe(r, outcome)
        self.controller.observe(r, outcome)
        self.clock += cohort.duration
        self.log(r, plan, cohort, outcome)
        self.next_round = r + 1

    def sync_models(self) -> None:
        """Hold exactly the strategy's live models; a new one starts from its parent's current weights."""
        live = self.strategy.models()
        for model, parent in live.items():
            if model not in self.models:
                self.models[model] = self.models[parent].clone()
        self.models = {m: w for m, w in self.models.items() if m in live}

    def while_running(self, r: int) -> None:
        """Rank 0's work while the tasks run: its mid-round faults, the previous round's evaluation."""
        faults.mid_round(self.job.faults, r, 0)
        self.complete_deferred_eval()

    def take_snapshot(self) -> Snapshot:
        return Snapshot(round=self.next_round, clock=self.clock, wall_s=time.perf_counter() - self.started,
                        models={m: w.numpy() for m, w in self.models.items()},
                        strategy=self.strategy.state_dict(), controller=self.controller.state_dict(),
                        rows=self.writer.rows())

    def save_checkpoint(self, snapshot: Snapshot | None = None) -> None:
        """Save ``snapshot`` unless it is saved already; by default the last completed round's state,
        its deferred evaluation completed first."""
        if snapshot is None:
            self.complete_deferred_eval()
            snapshot = self.snapshot
        if self.saved_round != snapshot.round:
            self.writer.flush()   # the file must hold every row the checkpoint counts
            checkpoint.save(self.checkpoint_file, snapshot, self.job.to_yaml(), self.job.faults)
            self.saved_round = snapshot.round

    def checkpoint_due(self, next_round: int) -> bool:
        every = self.job.checkpoint.every
        return bool(every) and next_round % every == 0

    # -- logging and evaluation -----------------------------------------------------------------
    def log(self, r: int, plan: RoundPlan, cohort: Cohort, outcome: Outcome) -> None:
        clients = client_ledger(r, cohort, outcome, self.costs)
        clients["arch_id"] = np.array([self.writer.arch_id(a[1].arch) if a else -1 for a in cohort.assigned],
                                      dtype=np.int64)
        made, samples, loss = clients["made_deadline"], clients["samples"], clients["loss"]
        trained, n = int(made.sum()), len(cohort.slots)
        train_loss = float(np.nansum(loss * samples) / max(samples[made].sum(), 1)) if trained else math.nan
        accuracy, eval_started, last = None, time.perf_counter(), self.controller.is_last(r)
        if (r + 1) % self.job.eval.every == 0 or last:
            if self.backend.overlaps and not last and not self.checkpoint_due(r + 1):
                self.deferred_eval = (r, self.models)   # rank 0 evaluates while the workers run round r + 1
            else:
                accuracy = self.evaluation(self.models)
        now = time.perf_counter()
        row = {"round": r, "virtual_time_s": self.clock, "wall_time_s": now - self.started, "clients": trained,
               "dropped": int(n - cohort.kept.sum()), "rejected": int(cohort.kept.sum() - trained),
               "macs": float(clients["macs"].sum()), "bytes_down": int(clients["bytes_down"].sum()),
               "bytes_up": int(clients["bytes_up"].sum()), "train_loss": train_loss,
               "round_wall_s": now - self.round_timed, "eval_wall_s": self.overlapped_eval_s + now - eval_started,
               "train_wall_s": float(outcome.rank_seconds.max(initial=0)), **outcome.traffic}
        self.round_timed, self.overlapped_eval_s = now, 0.0
        self.writer.append_round(row, clients)
        self.log_validation(r, plan, outcome)
        if accuracy is not None:
            self.record_eval(r, accuracy)
        self.report_progress(r, row)

    def log_validation(self, r: int, plan: RoundPlan, outcome: Outcome) -> None:
        rows = [i for i, t in enumerate(plan.tasks) if t.kind == EVALUATE]
        if rows:
            m = outcome.metrics
            self.writer.append_validation({
                "round": np.full(len(rows), r), "model": np.array([plan.tasks[i].model for i in rows]),
                "client": np.array([plan.tasks[i].client for i in rows]),
                "arch_id": np.array([self.writer.arch_id(plan.tasks[i].spec.arch) for i in rows]),
                "correct": np.rint(m["correct"][rows]).astype(np.int64),
                "total": np.rint(m["total"][rows]).astype(np.int64), "loss_sum": m["loss_sum"][rows],
                "loss_sq_sum": m["loss_sq_sum"][rows]})

    def record_eval(self, r: int, accuracy: np.ndarray) -> None:
        self.last_accuracy, self.last_eval_round = accuracy, r
        self.writer.append_eval(r, accuracy)

    def complete_deferred_eval(self) -> None:
        """Evaluate the round whose evaluation was deferred. Its snapshot is still the latest one (it
        is replaced only after the next round), so the snapshot now counts the new eval row."""
        if self.deferred_eval is None:
            return
        r, models = self.deferred_eval
        self.deferred_eval = None
        if self.snapshot.round != r + 1:   # stopped before round r was complete: a resume replays it
            return
        started = time.perf_counter()
        self.record_eval(r, self.evaluation(models))
        rows = self.snapshot.rows
        self.snapshot = self.resumable = dataclasses.replace(self.snapshot, rows={**rows, "eval": rows["eval"] + 1})
        self.overlapped_eval_s += time.perf_counter() - started

    def report_progress(self, r: int, row: dict) -> None:
        """One line per round: the round (k/N: k rounds played), virtual time, training loss, clients,
        the last test evaluation (every reference subnet, in the banner's order, and the round it
        followed), the strategy's status, early stopping's validation when it may end the run, and an
        ETA that follows how the run will end (hpcfed.engine.controller.Controller.rounds_left)."""
        now = time.perf_counter()
        elapsed = now - self.started
        self.round_ends = [*self.round_ends[-ETA_WINDOW:], now]   # rounds are timed from the first one's end
        ends = self.round_ends
        per_round = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else now - self.loop_started
        left, bound = self.controller.rounds_left(r + 1)
        eta = "ETA unknown (the search ends the run)" if left is None else \
            f"ETA {'<= ' if bound else ''}{per_round * left:.1f} s"
        acc = ""
        if self.last_accuracy is not None and len(self.last_accuracy):
            acc = (f" | test acc after round {self.last_eval_round + 1}: "
                   + " ".join(f"{a:.3f}" for a in self.last_accuracy))
        status = f" | {self.strategy.status()}" if self.strategy.status() else ""
        watch = self.controller.early.describe()
        self.progress(f"round {r + 1:>4}/{self.job.rounds} | virtual {row['virtual_time_s']:9.1f} s | "
                      f"loss {row['train_loss']:.4f} | clients {row['clients']:>3} dropped {row['dropped']:>3}"
                      f"{acc}{status}{' | ' + watch if watch else ''} | {elapsed:6.1f} s, {eta}")