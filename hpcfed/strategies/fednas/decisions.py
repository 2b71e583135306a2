"""What FedNAS decides from a round's outcome: when the warm-up ends, which candidates leave the
race, when a step ends and whether it was resolved (hpcfed.strategies.fednas.strategy's phases;
the statistics are hpcfed.strategies.fednas.race). Every decision is kept with its evidence in the
strategy's state and reported as ``search/decisions``; all read federated validation only.
"""
from __future__ import annotations

import math

import numpy as np

from hpcfed.round.plan import TRAIN
from hpcfed.strategies.fednas.candidates import measure
from hpcfed.strategies.fednas.race import Estimate, estimate, gap_in_se, pooled
from hpcfed.supernet import SubnetSpec, cost


class Decisions:
    """FedNAS's validation, observation and decisions (a part of hpcfed.strategies.fednas.FedNAS)."""

    def validation_specs(self, round_index):
        s, o = self.state, self.options
        if s["phase"] == "warmup":   # the start, when the warm-up ends at a validation score
            due = (o.warmup_accuracy or o.warmup_loss) and s["rounds"] > 0 and s["rounds"] % o.eval_every == 0
            return [(0, SubnetSpec(self.start))] if due else []
        if s["phase"] != "search":
            return []
        if o.straightforward:
            due = s["rounds"] == o.fixed_rounds * len(self.live_candidates())
        else:
            due = s["rounds"] > 0 and s["rounds"] % o.eval_every == 0
        return [(c["model"], SubnetSpec(self.arch_of(c["model"]))) for c in self.live_candidates()] if due else []

    def observe(self, round_index, outcome):
        s, o = self.state, self.options
        by_model = {c["model"]: c for c in self.live_candidates()}
        samples = outcome.metrics["samples"]
        for i in np.flatnonzero(outcome.contributed()):
            task = outcome.tasks[i]
            if task.kind == TRAIN and task.model in by_model:
                c, spent = by_model[task.model], cost(self.space, task.spec)
                c["client_rounds"] += 1
                c["macs"] += float(spent.train_macs(int(round(samples[i]))))
                c["bytes"] += 2 * spent.param_bytes
        s["rounds"] += 1
        scored = validation_rows(outcome, round_index)
        if s["phase"] == "warmup":
            self.warm_up(round_index, scored.get(0, []))
        elif s["phase"] == "finetune":
            if s["rounds"] >= o.finetune_rounds:
                s["phase"] = "done"
        elif s["phase"] == "search":
            scored = {m: rows for m, rows in scored.items() if m in by_model}
            if scored:
                self.judge(round_index, scored)
            live = self.live_candidates()
            if o.straightforward:
                if scored:
                    self.end_step(round_index, "scored after fixed_rounds each")
            elif len(live) == 1:
                self.end_step(round_index, "one candidate left")
            elif o.rule == "halving" and s["stable"] >= o.patience:
                self.end_step(round_index, f"leader unchanged for {o.patience} evaluations")
            elif s["rounds"] >= o.max_rounds:
                self.end_step(round_index, "max_rounds")

    def warm_up(self, round_index, rows):
        """End the warm-up at its validation target or its round cap, the evidence recorded."""
        s, o = self.state, self.options
        reached = False
        if rows:
            est = estimate([r[2:] for r in rows])
            s["warmup_scores"].append([round_index, est.correct, est.samples, est.loss, est.se])
            reached = ((o.warmup_accuracy > 0 and est.accuracy >= o.warmup_accuracy)
                       or (o.warmup_loss > 0 and est.loss <= o.warmup_loss))
            if reached:
                self.decide(round_index, 0, "warm-up reached its target", est, est, 0.0)
        if not reached and s["rounds"] >= o.warmup_rounds:
            if o.warmup_accuracy or o.warmup_loss:
                last = s["warmup_scores"][-1] if s["warmup_scores"] else [round_index, 0, 0, math.nan, math.inf]
                est = Estimate(last[3], last[4], int(last[2]), int(last[1]))
                self.decide(round_index, 0, "warm-up ended at warmup_rounds, target not reached", est, est, 0.0)
            reached = True
        if reached:
            self.begin_step(round_index + 1)

    def judge(self, round_index, scored):
        """Record the scores; FedNAS drops the candidates the evidence says are worse."""
        s, o = self.state, self.options
        live = self.live_candidates()
        for c in live:
            if c["model"] in scored:
                c["evals"].extend(scored[c["model"]])
                now = estimate([r[2:] for r in scored[c["model"]]])
                est = pooled(c["evals"], o.pool)
                c["scores"].append([round_index, now.correct, now.samples, now.loss, now.se, est.loss, est.se,
                                    est.samples])
        if o.straightforward:
            return
        ranked = sorted((c for c in live if c["client_rounds"] and c["scores"]), key=rank_key)  # untrained: later
        if not ranked:
            return
        leader, lead = ranked[0], current(ranked[0])
        keep = max(1, math.ceil(o.keep * len(ranked)))
        for position, c in enumerate(ranked[1:], start=1):
            est = current(c)
            gap = gap_in_se(est, lead)
            if o.rule == "race":
                drop = self.client_epochs(c) >= o.min_client_epochs and gap > o.z
            else:
                drop = position >= keep or est.accuracy < lead.accuracy - o.delta
            if drop:
                c["status"], c["dropped"] = "dropped", round_index
                self.decide(round_index, c["model"], "dropped", est, lead, gap, leader["model"])
        s["stable"] = s["stable"] + 1 if leader["model"] == s["leader"] else 0
        s["leader"] = leader["model"]

    def client_epochs(self, candidate: dict) -> int:
        return candidate["client_rounds"] * self.job.train.local_epochs

    def decide(self, round_index, model, action, est, lead, gap, leader=-1):
        """Keep one decision with its evidence (``search/decisions``)."""
        c = next((c for c in self.state["candidates"] if c["model"] == model), None)
        self.state["decisions"].append({
            "round": round_index, "step": self.state["step"], "model": model, "action": action,
            "loss": est.loss, "se": est.se, "samples": est.samples, "accuracy": est.accuracy,
            "leader": leader, "leader_loss": lead.loss, "leader_se": lead.se, "gap_in_se": gap,
            "client_epochs": self.client_epochs(c) if c else self.state["rounds"] * self.job.train.local_epochs})

    def end_step(self, round_index, reason):
        """The leader wins the step: resolved when it is ahead of every other live candidate by ``z``
        standard errors, else unresolved (the pick is the leader, said so)."""
        s, o = self.state, self.options
        live = sorted(self.live_candidates(), key=rank_key)
        winner, lead = live[0], current(live[0])
        gaps = [gap_in_se(current(c), lead) for c in live[1:]]
        resolved = all(g > o.z for g in gaps)
        for c, gap in zip(live, [0.0, *gaps]):
            c["status"] = "winner" if c is winner else "lost"
            action = ("won" if resolved else "won, unresolved") if c is winner else "lost"
            self.decide(round_index, c["model"], action, current(c), lead, gap, winner["model"])
        s["steps"].append({"step": s["step"], "parent": s["parent"], "winner": winner["model"],
                           "resolved": resolved, "reason": reason, "ended_round": round_index,
                           "rounds": s["rounds"], "candidates": sum(c["step"] == s["step"] for c in s["candidates"])})
        s["family"].append(winner["model"])
        s["parent"], s["step"] = winner["model"], s["step"] + 1
        if measure(self.space, self.arch_of(winner["model"]), o.budget) <= self.target:
            self.begin_finetune()
        else:
            self.begin_step(round_index + 1)


def current(candidate: dict) -> Estimate:
    """A scored candidate's latest pooled estimate (hpcfed.strategies.fednas.race.pooled)."""
    _, correct, _, _, _, loss, se, samples = candidate["scores"][-1]
    return Estimate(loss, se, int(samples), int(correct) if samples else 0)


def validation_rows(outcome, round_index: int) -> dict[int, list[list[float]]]:
    """Per model, its evaluate tasks' rows ``[round, client, correct, total, loss_sum, loss_sq_sum]``."""
    rows: dict[int, list[list[float]]] = {}
    m = outcome.metrics
    for i, task in enumerate(outcome.tasks):
        if task.kind != TRAIN and m["total"][i] > 0:
            rows.setdefault(task.model, []).append([round_index, task.client, float(m["correct"][i]), float(m["total"][i]),
                                                    float(m["loss_sum"][i]), float(m["loss_sq_sum"][i])])
    return rows


def rank_key(candidate: dict) -> tuple:
    """Best first: lower pooled validation loss, then proposal order; a candidate not yet trained or
    scored comes last."""
    if not candidate["scores"] or not candidate["client_rounds"]:
        return (1, 0.0, candidate["model"])
    loss = current(candidate).loss
    return (0, math.inf if math.isnan(loss) else loss, candidate["model"])
