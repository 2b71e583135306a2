"""What a FedNAS run reports after it ends: the ``search/`` group of the results file.

``search/candidates`` has one row per candidate of every step (its architecture, dimension and
place changed, budget, cost, round proposed and dropped, status, client-rounds and client-epochs,
client training MACs and bytes both ways of the clients that trained it, its last validation score
with its standard error), ``search/scores`` one row per validation of a candidate (that round's
score and the pooled one the decisions read, each with its standard error), ``search/decisions``
one row per decision with its evidence (the warm-up's end, every drop, every step's winner and
losers: scores, standard errors, the gap in standard errors, client-epochs, the round),
``search/steps`` one row per step (resolved or not, why it ended), ``search/family`` one row per
step winner (model 0: the warmed-up starting architecture) and the chosen architecture after its
final training, each with its test accuracy.
The test set is read here, once, after every decision (hpcfed.strategies.fednas). Reading the group
back (:func:`summary_lines`, :func:`family_subnets`) is here too, so nothing outside FedNAS's folder
knows its layout.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hpcfed.supernet import Arch, SubnetSpec, cost
from hpcfed.units import si


SCORE_COLUMNS = ("round", "correct", "total", "loss", "loss_se", "pooled_loss", "pooled_se", "pooled_samples")
DECISION_COLUMNS = ("round", "step", "model", "action", "loss", "se", "samples", "accuracy", "leader", "leader_loss",
                    "leader_se", "gap_in_se", "client_epochs")
STEP_COLUMNS = ("step", "parent", "candidates", "winner", "resolved", "reason", "ended_round", "rounds")


def search_report(strategy, test_accuracy: Callable[[list[tuple[int, SubnetSpec]]], np.ndarray]) -> dict:
    """``{"group", "tables", "attrs", "root"}`` for hpcfed.record.results.ResultsWriter.save_report."""
    s, o, space = strategy.state, strategy.options, strategy.space
    candidates = s["candidates"]
    arch = strategy.arch_of
    chosen = s["final"] if s["final"] >= 0 else s["parent"]
    members = [*s["family"], *([chosen] if chosen not in s["family"] else [])]
    accuracy = test_accuracy([(m, SubnetSpec(arch(m))) for m in members])
    costs = [cost(space, arch(m)) for m in members]
    step_of = {c["model"]: c["step"] for c in candidates}
    tables = {
        "candidates": {
            "model": [c["model"] for c in candidates], "step": [c["step"] for c in candidates],
            "parent": [c["parent"] for c in candidates], "arch_json": [arch(c["model"]).to_json() for c in candidates],
            "arch_name": [arch(c["model"]).name for c in candidates],
            "dimension": [c["dimension"] for c in candidates], "place": [c["place"] for c in candidates],
            "budget": [c["budget"] for c in candidates], "cost": [c["cost"] for c in candidates],
            "macs_per_sample": [cost(space, arch(c["model"])).macs for c in candidates],
            "params": [cost(space, arch(c["model"])).params for c in candidates],
            "born_round": [c["born"] for c in candidates], "dropped_round": [c["dropped"] for c in candidates],
            "status": [c["status"] for c in candidates], "client_rounds": [c["client_rounds"] for c in candidates],
            "client_macs": [c["macs"] for c in candidates], "bytes": [c["bytes"] for c in candidates],
            "client_epochs": [strategy.client_epochs(c) for c in candidates],
            "val_accuracy": [c["scores"][-1][1] / c["scores"][-1][2] if c["scores"] else np.nan for c in candidates],
            "val_loss": [c["scores"][-1][5] if c["scores"] else np.nan for c in candidates],
            "val_loss_se": [c["scores"][-1][6] if c["scores"] else np.nan for c in candidates],
            "evaluations": [len(c["scores"]) for c in candidates]},
        "scores": {name: [sc[i] for c in candidates for sc in c["scores"]] for i, name in enumerate(SCORE_COLUMNS)}
        | {"model": [c["model"] for c in candidates for _ in c["scores"]]},
        "decisions": {name: [d[name] for d in s["decisions"]] for name in DECISION_COLUMNS},
        "steps": {name: [d[name] for d in s["steps"]] for name in STEP_COLUMNS},
        "family": {
            "model": members, "step": [step_of.get(m, -1) if m != s["final"] else -1 for m in members],
            "role": ["chosen (final training)" if m == s["final"] else ("start" if m == 0 else "step winner")
                     for m in members],
            "arch_json": [arch(m).to_json() for m in members], "arch_name": [arch(m).name for m in members],
            "macs_per_sample": [c.macs for c in costs], "params": [c.params for c in costs],
            "test_accuracy": list(accuracy)},
    }
    search_macs = float(sum(c["macs"] for c in candidates))
    attrs = {"mode": "straightforward" if o.straightforward else "fednas", "budget": o.budget,
             "rule": o.rule, "z": o.z, "min_client_epochs": o.min_client_epochs, "pool": o.pool,
             "steps_resolved": int(sum(st["resolved"] for st in s["steps"])),
             "warmup_rounds_played": min((c["born"] for c in candidates if c["step"] == 0), default=s["rounds"]),
             "target": strategy.target, "steps": s["step"], "finished": s["phase"] == "done",
             "candidates_rule": o.candidates, "search_client_macs": search_macs,
             "search_client_rounds": int(sum(c["client_rounds"] for c in candidates)),
             "search_bytes": int(sum(c["bytes"] for c in candidates)),
             "decisions": "federated validation (clients' validation splits); test set read once, after the run"}
    chosen_arch: Arch = arch(chosen)
    root = {"chosen_arch": chosen_arch.to_json(), "chosen_model": chosen,
            "chosen_test_accuracy": float(accuracy[members.index(chosen)]),
            "chosen_macs": cost(space, chosen_arch).macs, "chosen_params": cost(space, chosen_arch).params}
    return {"group": "search", "tables": tables, "attrs": attrs, "root": root}


def step_ranking(candidates: dict, step: int) -> list[str]:
    """The architectures (JSON) of one step's candidates, best first as the search judged them: the
    winner, the other candidates that lasted to the end, then the dropped ones, later drops first;
    within each, by their last pooled validation loss (``candidates``: the ``search/candidates`` table)."""
    rows = [i for i, s in enumerate(candidates["step"]) if s == step]

    def key(i):
        dropped = int(candidates["dropped_round"][i])
        loss = float(candidates["val_loss"][i])
        return (candidates["status"][i] != "winner", dropped >= 0, -dropped,
                np.inf if np.isnan(loss) else loss, int(candidates["model"][i]))
    return [candidates["arch_json"][i] for i in sorted(rows, key=key)]


def summary_lines(results: dict[str, Any]) -> list[str]:
    """The search's family and its client cost, as lines of the run's summary (hpcfed.record.report)."""
    if "search" not in results:   # a run that ended before its report
        return []
    search = results["search"]
    a, family = search["attrs"], search["family"]
    resolved = f", {int(a['steps_resolved'])} resolved" if "steps_resolved" in a else ""
    lines = [f"search ({a['mode']}, {a['steps']} steps{resolved}, {'finished' if a['finished'] else 'not finished'}; "
             f"test accuracy read once, after the run):",
             f"  {'model':<6} {'role':<24} {'architecture':<36} {'MACs/sample':>12} {'accuracy':>9}"]
    for model, role, name, macs, acc in zip(family["model"], family["role"], family["arch_name"],
                                            family["macs_per_sample"], family["test_accuracy"]):
        lines.append(f"  {int(model):<6} {role:<24} {name:<36} {si(float(macs), ''):>12} {acc:>9.4f}")
    lines.append(f"  search cost: {len(search['candidates']['model'])} candidates, {int(a['search_client_rounds'])} "
                 f"client-rounds, {si(float(a['search_client_macs']), 'MAC')}, {si(float(a['search_bytes']), 'B')}")
    return lines


def family_subnets(results: dict[str, Any]) -> dict[str, Any] | None:
    """The family (step winners and the chosen architecture after its final training) as the subnets the
    run reports, in eval/'s columns; None for a run that ended before its report."""
    if "search" not in results:
        return None
    family = results["search"]["family"]
    return {"subnet_names": [f"{role}: {name}" for role, name in zip(family["role"], family["arch_name"])],
            "subnet_macs": family["macs_per_sample"], "subnet_params": family["params"],
            "accuracy": np.asarray(family["test_accuracy"])[None]}


def draw_search(results: dict[str, Any], fig) -> str:
    """The search on a matplotlib Figure: each candidate's pooled validation loss (with its standard
    error) against the round, a colour per step, a cross where it was dropped and a thick line for
    each step's winner; and the family's test accuracy against forward MACs per sample beside every
    candidate's last validation accuracy (units and legends: the caller's, hpcfed.record.figures).
    "" for a run that ended before its report."""
    if "search" not in results:
        return ""
    search = results["search"]
    candidates, scores, family = search["candidates"], search["scores"], search["family"]
    race, costs = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for model, step, status in zip(candidates["model"], candidates["step"], candidates["status"]):
        mine = scores["model"] == model
        if not mine.any():
            continue
        rounds, loss, se = scores["round"][mine], scores["pooled_loss"][mine], scores["pooled_se"][mine]
        colour = f"C{int(step) % 10}"
        race.errorbar(rounds, loss, yerr=se, color=colour, linewidth=2.5 if status == "winner" else 0.8,
                      label=f"step {int(step)}" if status == "winner" else None)
        if status == "dropped":
            race.plot(rounds[-1:], loss[-1:], "x", color=colour, markersize=7)
    race.set(xlabel="round", ylabel="validation loss (pooled, ± 1 SE)",
             title="candidates (thick: winner, x: dropped)")
    race.grid(alpha=0.3)
    steps = np.asarray(candidates["step"])
    for step in np.unique(steps):
        mine = steps == step
        costs.scatter(np.asarray(candidates["macs_per_sample"])[mine], 100 * np.asarray(candidates["val_accuracy"])[mine],
                      s=12, color=f"C{int(step) % 10}", alpha=0.6)
    order = np.argsort(family["macs_per_sample"], kind="stable")
    costs.plot(np.asarray(family["macs_per_sample"])[order], 100 * np.asarray(family["test_accuracy"])[order], "k*",
               markersize=10, label="family (test, once, after the run)")
    costs.set(xscale="log", xlabel="forward MACs per sample", ylabel="accuracy (%)",
              title="dots: candidates' last validation accuracy")
    costs.grid(alpha=0.3)
    return "search"
