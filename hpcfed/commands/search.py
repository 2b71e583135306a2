"""Search a trained supernet for its best subnets under a MACs budget (SuperFed's post-training search).

    python tools/search.py RUN.h5 --macs 2.4e6                           # Pareto front into RUN-search/
    python tools/search.py RUN.h5 --macs 2.4e6 --params 1e5 --objective best --out DIR
    mpirun -n 3 python tools/search.py RUN.h5 --macs 2.4e6 --population 32 --generations 10 --seed 0

NSGA-II (hpcfed.search) over the architectures of the run's space, scored on validation data with
calibrated statistics (hpcfed.search.post_training says which split); under mpirun every rank scores a share
of each generation, with the same result as one process. Prints the front (``--objective best``:
only its most accurate member) and the run's reference subnets under the budget, then writes
DIR/front.csv (front and references: validation and test accuracy), DIR/front.png (validation
accuracy against MACs: every scored architecture, the front, the references, the budget) and the
``post_search/`` group of RUN.h5 (replacing an older search's). The test set is read once, after
the search, for the reported test accuracies. Bad input: one line, exit 2, nothing written.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)

from hpcfed.assembly.parts import set_threads
from hpcfed.errors import HpcfedError
from hpcfed.runtime.comm import Comm
from hpcfed.runtime.spread import set_up_on_every_rank
from hpcfed.search import post_training as post_search
from hpcfed.search.nsga import Budget, SearchResult, check_budget, nsga2_search
from hpcfed.search.trained import open_run
from hpcfed.units import si

OBJECTIVES = ("pareto", "best")
CSV_COLUMNS = ("role", "name", "macs", "params", "val_accuracy", "test_accuracy", "arch")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise HpcfedError(f"command line: {message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="python tools/search.py", description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a finished run's results file (python -m hpcfed.run --out RUN.h5)")
    p.add_argument("--macs", type=float, required=True, help="budget: forward MACs per sample, e.g. 2.4e6")
    p.add_argument("--params", type=float, help="budget: parameters (default: no limit)")
    p.add_argument("--objective", default="pareto",
                   help="pareto (the whole front, default) | best (its most accurate member)")
    p.add_argument("--population", type=int, default=32, help="architectures per generation (default 32)")
    p.add_argument("--generations", type=int, default=10, help="generations after the initial population (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice of the search (default 0)")
    p.add_argument("--out", type=Path, help="folder for front.csv and front.png (default: RUN-search/ beside RUN.h5)")
    return p.parse_args(argv)


def _setup(argv: list[str] | None, comm: Comm) -> dict:
    args = parse_args(argv)
    if args.objective not in OBJECTIVES:
        raise HpcfedError(f"--objective {args.objective!r}: accepted {' | '.join(OBJECTIVES)}")
    for name in ("population", "generations"):
        if getattr(args, name) < 1:
            raise HpcfedError(f"--{name} {getattr(args, name)}: accepted an integer >= 1")
    if args.seed < 0:
        raise HpcfedError(f"--seed {args.seed}: accepted an integer >= 0")
    run = open_run(args.run)
    if len(run.models) > 1:
        raise HpcfedError(f"run file {str(args.run)!r} holds {len(run.models)} independent models (strategy "
                          f"{run.job.strategy.name}); the search needs one weight-shared supernet")
    if not os.access(args.run, os.W_OK):
        raise HpcfedError(f"run file {str(args.run)!r} is not writable; the search records its front there")
    out = args.out or args.run.with_name(f"{args.run.stem}-search")
    if out.exists() and not out.is_dir():
        raise HpcfedError(f"--out {str(out)!r} is a file; give a folder")
    set_threads(run.job, comm)
    data = run.data()
    space = run.space(data)
    budget = Budget(args.macs, args.params)
    check_budget(space, budget)
    network = run.network(space)
    calibration = run.calibration(data)
    x, y, source = post_search.validation_set(run, data)
    scorer = post_search.Scorer(comm, network, x, y, calibration, run.job.eval.batch_size, run.eval_precision)
    return {"args": args, "run": run, "data": data, "space": space, "budget": budget, "network": network,
            "calibration": calibration, "source": source, "scorer": scorer, "out": out}


def _row(role: str, name: str, c, tested: dict) -> dict:
    return {"role": role, "name": name, "macs": c.macs, "params": c.params, "val_accuracy": c.val_accuracy,
            "test_accuracy": tested[c.arch], "arch": c.arch.to_json()}


def _table(rows: list[dict]) -> str:
    lines = [f"  {'subnet':<44} {'MACs/sample':>12} {'params':>9} {'val acc':>8} {'test acc':>8}"]
    lines += [f"  {r['name']:<44} {si(r['macs'], ''):>12} {r['params']:>9} {r['val_accuracy']:>8.4f} "
              f"{r['test_accuracy']:>8.4f}" for r in rows]
    return "\n".join(lines)


def plot(result: SearchResult, budget: Budget, path: Path, title: str) -> None:
    """Validation accuracy against MACs: every scored architecture faint, the front, the references, the budget."""
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter([c.macs for c in result.evaluated], [100 * c.val_accuracy for c in result.evaluated], s=10,
               color="0.6", alpha=0.35, label=f"scored ({len(result.evaluated)})")
    ax.plot([c.macs for c in result.front], [100 * c.val_accuracy for c in result.front], "o-", color="C0",
            label="front")
    ax.scatter([c.macs for _, c in result.references], [100 * c.val_accuracy for _, c in result.references],
               marker="x", s=60, color="C3", zorder=3, label="reference subnets")
    ax.axvline(budget.macs, color="C2", linestyle="--", label=f"budget {si(budget.macs, '')} MACs")
    ax.set(xscale="log", xlabel="forward MACs per sample", ylabel="validation accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None, comm: Comm | None = None) -> int:
    comm = comm or Comm()
    setup = set_up_on_every_rank(comm, lambda: _setup(argv, comm), "search")
    if setup is None:
        return 2
    scorer = setup["scorer"]
    if comm.rank != 0:
        scorer.serve()
        return 0
    args, run, budget = setup["args"], setup["run"], setup["budget"]
    limit = f"{si(budget.macs, '')} MACs" + (f", {budget.params:g} params" if budget.params is not None else "")
    print(f"search: {args.run}: NSGA-II, population {args.population}, {args.generations} generations, seed "
          f"{args.seed}, budget {limit}, {comm.size} ranks\nsearch: validation: {setup['source']}", flush=True)
    start = time.perf_counter()
    result = nsga2_search(setup["space"], scorer, budget, [(n, a) for n, a, _ in run.references], args.population,
                          args.generations, args.seed, progress=lambda line: print(f"search: {line}", flush=True))
    scorer.stop()
    wall = time.perf_counter() - start
    front = result.front[-1:] if args.objective == "best" else result.front
    result = SearchResult(front, result.references, result.evaluated)
    tested = post_search.report_test_accuracy(setup["network"], [c.arch for c in front] + [c.arch for _, c in
                                              result.references], setup["data"], run.job.eval.batch_size,
                                              setup["calibration"], run.eval_precision)
    rows = [_row("front", c.arch.name, c, tested) for c in front]
    refs = [_row("reference", name, c, tested) for name, c in result.references]
    print(f"search: {len(result.evaluated)} architectures scored in {wall:.1f} s on {comm.size} ranks")
    print(("most accurate subnet" if args.objective == "best" else "Pareto front") + f" under {limit} "
          "(decided on validation; test accuracy reported only):\n" + _table(rows))
    print("reference subnets under the budget:\n" + _table(refs))
    out = setup["out"]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "front.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows + refs)
    plot(result, budget, out / "front.png", f"{args.run.stem}: search under {limit}")
    post_search.record(args.run, result, tested, {
        "budget_macs": budget.macs, "budget_params": budget.params or 0.0, "objective": args.objective,
        "seed": args.seed, "population": args.population, "generations": args.generations,
        "validation": setup["source"], "evaluated": len(result.evaluated), "world_size": comm.size,
        "wall_s": wall, "searched": time.strftime("%Y-%m-%dT%H:%M:%S")})
    print(f"results: {out / 'front.csv'}, {out / 'front.png'}, {args.run} (post_search/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
