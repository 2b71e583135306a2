"""FedNAS: federated architecture search at a fraction of the naive client cost (Yuan et al.).

The search shrinks a starting architecture step by step to a target budget (NetAdapt's skeleton,
hpcfed.strategies.fednas.candidates; our rules where the paper is silent are in ``../shared/ALGORITHMS.md``). A run
goes through four phases, each a number of ordinary rounds:

1. *warm-up*: the starting architecture trains on the whole cohort as model 0, until its federated
   validation accuracy reaches ``warmup_accuracy`` or its loss falls to ``warmup_loss`` (when set),
   for ``warmup_rounds`` rounds at most;
2. *search steps*: a step proposes candidates under the step's budget, each a new model starting
   from the parent's weights. With FedNAS's three optimisations (the default) every round's cohort
   is split into disjoint groups, one per live candidate, balanced by predicted training MACs
   (*parallel candidates on partial clients*); every ``eval_every`` rounds all live candidates are
   scored on the same clients' validation splits (*early dropping*): with ``rule: race`` a
   candidate is dropped once it trails the leader by more than ``z`` standard errors of its
   validation loss, and only after ``min_client_epochs`` of training (hpcfed.strategies.fednas.race);
   with ``rule: halving`` (the simpler reading, kept for comparison) all but the top fraction
   ``keep`` and any ``delta`` behind in accuracy are dropped. A step ends when one candidate is
   left, (halving) when its leader has not changed for ``patience`` evaluations, or after
   ``max_rounds`` (*dynamic rounds*); it is recorded as resolved when its leader is ahead of every
   other live candidate by ``z`` standard errors, unresolved otherwise. The straightforward
   baseline (``straightforward: true``) trains every candidate on the whole cohort for
   ``fixed_rounds`` rounds, one after another, then scores them all in one validation round;
3. the step's best candidate (lowest validation loss) is the next parent and a member of the
   *family* (one model per budget), until the parent meets the target budget; every decision is
   kept with its evidence (scores, standard errors, client-epochs: ``search/decisions``);
4. *final training*: the chosen architecture trains on the whole cohort (``finetune_rounds``), from
   the search's weights or, to compare two searches' architectures alone, from the warmed-up
   start's (``finetune_from``).

Decisions (hpcfed.strategies.fednas.decisions) read only federated validation; the test set is read
once, after the run, for :meth:`FedNAS.report` (results group ``search/``).
"""
from __future__ import annotations

import json

import numpy as np

from hpcfed.errors import ConfigError
from hpcfed.seeding import rng as stream
from hpcfed.strategies.archs import named_arch
from hpcfed.strategies.base import Strategy
from hpcfed.strategies.fednas.candidates import (
    measure,
    netadapt_candidates,
    sample_candidates,
    step_budget,
)
from hpcfed.strategies.fednas.decisions import Decisions
from hpcfed.strategies.fednas.options import FedNASOptions
from hpcfed.strategies.fednas.report import draw_search, family_subnets, search_report, summary_lines
from hpcfed.supernet import Arch, SubnetSpec, cost


class FedNAS(Decisions, Strategy):
    name = "fednas"
    Options = FedNASOptions
    batchable = True

    def __init__(self, job, space):
        super().__init__(job, space)
        o = self.options
        self.start = named_arch(self, o.start)
        unit = "MACs per sample" if o.budget == "macs" else "parameters"
        start_cost, smallest = measure(space, self.start, o.budget), measure(space, space.smallest(), o.budget)
        self.target = o.target_value or o.target * start_cost
        key = "strategy.fednas.target_value" if o.target_value else "strategy.fednas.target"
        if space.largest() == space.smallest():
            raise ConfigError("model: the search space holds one architecture; strategy fednas needs elastic "
                              "choices (model.expand_choices, kernel_choices, width_choices or depths > 1)")
        if self.target >= start_cost:
            raise ConfigError(f"{key}: budget {self.target:.6g} {unit} is not below the starting model "
                              f"{o.start!r} ({start_cost} {unit}); accepted: a budget below it")
        if self.target < smallest:
            raise ConfigError(f"{key}: budget {self.target:.6g} {unit} is below the smallest subnet of the space "
                              f"({smallest} {unit}); no architecture meets it")
        self.state = {"phase": "warmup", "step": 0, "parent": 0, "rounds": 0, "next_model": 1, "candidates": [],
                      "leader": -1, "stable": 0, "family": [0], "final": -1, "ended": "",
                      "warmup_scores": [], "decisions": [], "steps": [],
                      "archs": {"0": self.start.to_dict()}}
        if o.warmup_rounds == 0:
            self.begin_step(0)

    # -- the state ----------------------------------------------------------------------------------
    def arch_of(self, model: int) -> Arch:
        return Arch.from_dict(self.state["archs"][str(model)])

    def live_candidates(self) -> list[dict]:
        return [c for c in self.state["candidates"] if c["step"] == self.state["step"] and c["status"] == "live"]

    def begin_step(self, r: int) -> None:
        s, o = self.state, self.options
        parent = self.arch_of(s["parent"])
        budget = step_budget(measure(self.space, parent, o.budget), s["step"], o.shrink, o.shrink_decay, self.target)
        if o.candidates == "netadapt":
            found = netadapt_candidates(self.space, parent, budget, o.budget)
        else:
            found = sample_candidates(self.space, parent, budget, o.sampled,
                                      stream(self.job.seed, "fednas", s["step"]), o.budget)
        if not found:   # only when the parent is the space's smallest architecture
            s["ended"] = f"search space exhausted at step {s['step']}: no architecture below the parent"
            self.begin_finetune()
            return
        for c in found:
            model = s["next_model"]
            s["next_model"] += 1
            s["archs"][str(model)] = c.arch.to_dict()
            s["candidates"].append({"model": model, "step": s["step"], "parent": s["parent"], "dimension": c.dimension,
                                    "place": c.place, "budget": budget, "cost": measure(self.space, c.arch, o.budget),
                                    "born": r, "dropped": -1, "status": "live", "client_rounds": 0, "macs": 0.0,
                                    "bytes": 0, "scores": [], "evals": []})
        s["phase"], s["rounds"], s["leader"], s["stable"] = "search", 0, -1, 0

    def begin_finetune(self) -> None:
        s = self.state
        if self.options.finetune_rounds == 0:
            s["phase"], s["final"] = "done", s["parent"]
            return
        s["final"] = s["next_model"]
        s["next_model"] += 1
        s["archs"][str(s["final"])] = s["archs"][str(s["parent"])]
        s["phase"], s["rounds"] = "finetune", 0

    # -- the strategy interface -----------------------------------------------------------------------
    def models(self):
        """The family so far, the step's live candidates (each from its parent) and the final model (from
        the search's choice, or from the warmed-up start with ``finetune_from: start``)."""
        s = self.state
        parents = {c["model"]: c["parent"] for c in s["candidates"]}
        if s["final"] >= 0:
            parents[s["final"]] = 0 if self.options.finetune_from == "start" else s["parent"]
        live = {*s["family"], *(c["model"] for c in self.live_candidates())} | ({s["final"]} if s["final"] >= 0 else set())
        return {m: parents.get(m, 0) for m in sorted(live)}

    def assign(self, round_index, slots, fits, rng):
        s, o = self.state, self.options
        if s["phase"] in ("warmup", "finetune"):
            model = s["parent"] if s["phase"] == "warmup" else s["final"]
            return self.everyone(model, slots, fits)
        live = self.live_candidates()
        if o.straightforward:
            block = s["rounds"] // o.fixed_rounds
            return self.everyone(live[block]["model"], slots, fits) if block < len(live) else [None] * len(slots)
        return self.balanced(round_index, live, slots, fits)

    def everyone(self, model, slots, fits):
        spec = SubnetSpec(self.arch_of(model))
        return [(model, spec) if fits(slot, spec.arch) else None for slot in slots]

    def balanced(self, round_index, live, slots, fits):
        """Disjoint groups, one per live candidate: clients in order of decreasing samples each go to
        the candidate it fits with the least predicted training MACs so far (ties rotate by round)."""
        archs = [self.arch_of(c["model"]) for c in live]
        per_sample = [cost(self.space, a).train_macs(self.job.train.local_epochs) for a in archs]
        load = np.zeros(len(live))
        rotation = [(j + round_index) % len(live) for j in range(len(live))]
        assigned = [None] * len(slots)
        for i in sorted(range(len(slots)), key=lambda i: -slots[i].samples):
            able = [j for j in rotation if fits(slots[i], archs[j])]
            if able:
                j = min(able, key=lambda j: load[j] + per_sample[j] * slots[i].samples)
                load[j] += per_sample[j] * slots[i].samples
                assigned[i] = (live[j]["model"], SubnetSpec(archs[j]))
        return assigned

    def idle_round(self, round_index):
        """The straightforward baseline's validation round: every candidate of the step is trained."""
        s, o = self.state, self.options
        return s["phase"] == "search" and o.straightforward and s["rounds"] >= o.fixed_rounds * len(self.live_candidates())

    def references(self):
        """None: the test set is read once, after the run (:meth:`report`), never during the search."""
        return []

    def status(self):
        s = self.state
        if s["phase"] == "search":
            return f"step {s['step']}: {len(self.live_candidates())} candidates live"
        return {"warmup": "warm-up", "finetune": "final training", "done": "search done"}[s["phase"]]

    def rounds_left(self):
        """Known once the search is over: the final training's rounds; unknown while it searches."""
        s = self.state
        if s["phase"] == "done":
            return 0
        return self.options.finetune_rounds - s["rounds"] if s["phase"] == "finetune" else None

    def stop_reason(self):
        s = self.state
        if s["phase"] != "done":
            return ""
        chosen = self.arch_of(s["final"]).name
        how = s["ended"] or f"target budget met after {s['step']} steps"
        return f"search finished: {how}; chosen {chosen}"

    def state_dict(self):
        return {"fednas": np.frombuffer(json.dumps(self.state, sort_keys=True).encode(), dtype=np.uint8).copy()}

    def load_state_dict(self, state):
        self.state = json.loads(np.asarray(state["fednas"], dtype=np.uint8).tobytes().decode())

    def report(self, test_accuracy):
        return search_report(self, test_accuracy)

    @classmethod
    def summary_lines(cls, results):
        return summary_lines(results)

    @classmethod
    def reported_subnets(cls, results):
        return family_subnets(results)

    @classmethod
    def draw(cls, results, fig):
        return draw_search(results, fig)

    @classmethod
    def final_model(cls, attrs):
        """The chosen architecture's model (the root attribute the search's report writes)."""
        return int(attrs["chosen_model"]) if "chosen_model" in attrs else None
