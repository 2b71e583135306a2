"""DISTREAL's offline design-space exploration: the Pareto table of dropout vectors for a job's model.

    python tools/dse.py JOB.yaml --out runs/dse                     # table.json and front.png into runs/dse/
    mpirun -n 3 python tools/dse.py JOB.yaml --population 16 --generations 6 --steps 20 --out runs/dse

NSGA-II (hpcfed.strategies.distreal.dse, pymoo) over one drop rate per channel group of the job's model: R(d), the
analytic MACs relative to the full network, against Q(d), the loss decrease of a short proxy
training at those rates on one half of the server's validation split, measured on the other half
(``data.server_val_fraction`` > 0 is required; the test set is never read). Under mpirun every rank
scores a share of each generation, with the same table as one process. Writes DIR/table.json
(the non-dominated vectors sorted by R, the full vector always included, each with R, Q and a
measured seconds per local step on this machine; ``strategy.distreal.table`` reads it) and
DIR/front.png (every scored vector, the table). Bad input: one line, exit 2, nothing written.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)

from hpcfed.assembly.job import build_job
from hpcfed.assembly.parts import build_space, load_data, set_threads
from hpcfed.config.jobfiles import resolve
from hpcfed.config.parse import read_mapping
from hpcfed.errors import HpcfedError
from hpcfed.experiments.jobruns import select_jobs
from hpcfed.runtime.comm import Comm
from hpcfed.runtime.spread import Spread, set_up_on_every_rank
from hpcfed.strategies.distreal.dse import ProxyQuality, explore
from hpcfed.strategies.distreal.timing import measure_step_seconds


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise HpcfedError(f"command line: {message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="python tools/dse.py", description=__doc__.split("\n\n")[0])
    p.add_argument("job", help="the job whose model the table is for (YAML file or shipped name, e.g. distreal), "
                               "or a job set (with --method)")
    p.add_argument("--method", default="distreal", help="the method of a job set whose job to use (default distreal)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a job field (repeatable)")
    p.add_argument("--population", type=int, default=16, help="vectors per generation (default 16)")
    p.add_argument("--generations", type=int, default=6, help="generations after the initial one (default 6)")
    p.add_argument("--steps", type=int, default=100, help="SGD steps of each proxy training (default 100)")
    p.add_argument("--seed", type=int, default=None, help="seed of the search (default: the job's)")
    p.add_argument("--out", type=Path, default=Path("runs/dse"), help="folder of table.json and front.png")
    p.add_argument("--overwrite", action="store_true", help="replace an existing table.json")
    return p.parse_args(argv)


def load_job_or_method(spec: str, method: str, overrides: list[str]):
    """The job that ``spec`` names (a file or a shipped name, hpcfed.config.jobfiles), or, when it is a job set
    (hpcfed.experiments.jobset), its method ``method``'s job."""
    path = str(resolve(spec, "job or job set"))
    raw = read_mapping(path, "job file")
    if "methods" in raw:
        return select_jobs(path, method, overrides)[method]
    return build_job(raw, overrides)


def _setup(argv, comm: Comm) -> dict:
    args = parse_args(argv)
    for name in ("population", "generations", "steps"):
        if getattr(args, name) < 1:
            raise HpcfedError(f"--{name} {getattr(args, name)}: accepted an integer >= 1")
    if (args.out / "table.json").exists() and not args.overwrite:
        raise HpcfedError(f"--out {str(args.out)!r} already holds table.json; pass --overwrite to replace it")
    if args.out.exists() and not args.out.is_dir():
        raise HpcfedError(f"--out {str(args.out)!r} is a file; accepted: a folder")
    job = load_job_or_method(args.job, args.method, args.overrides)
    set_threads(job, comm)
    data = load_data(job)
    space = build_space(job, data.input_shape, data.num_classes)
    quality = ProxyQuality(job, space, data.x_val, data.y_val, args.steps)
    return {"args": args, "job": job, "space": space, "quality": quality,
            "spread": Spread(comm, lambda vectors: [quality(v) for v in vectors])}


def main(argv: list[str] | None = None, comm: Comm | None = None) -> int:
    comm = comm or Comm()
    setup = set_up_on_every_rank(comm, lambda: _setup(argv, comm), "dse")
    if setup is None:
        return 2
    spread = setup["spread"]
    if comm.rank != 0:
        spread.serve()
        return 0
    args, job, space = setup["args"], setup["job"], setup["space"]
    seed = job.seed if args.seed is None else args.seed
    print(f"dse: {args.job}: NSGA-II, population {args.population}, {args.generations} generations, "
          f"{args.steps} proxy steps, seed {seed}, {comm.size} ranks; start loss "
          f"{setup['quality'].start_loss:.4f} on {len(setup['quality'].y_held)} held-out validation samples", flush=True)
    start = time.perf_counter()
    table, all_r, all_q = explore(space, setup["quality"], spread, args.population, args.generations, seed,
                                  progress=lambda line: print(line, flush=True))
    spread.stop()
    wall = time.perf_counter() - start
    for entry, vector in zip(table.entries, table.vectors()):
        entry.step_s = measure_step_seconds(setup["quality"].model, space, vector, job.train.batch_size, cfg=job.train)
    full_step = table.entries[-1].step_s
    table.meta = {"job": job.name, "seed": seed, "population": args.population, "generations": args.generations,
                  "steps": args.steps, "validation": f"server validation split: {len(setup['quality'].y)} samples "
                  f"trained on, {len(setup['quality'].y_held)} held out", "scored": int(len(all_r)),
                  "world_size": comm.size, "wall_s": wall, "measured_on": os.uname().nodename}
    print(f"dse: {len(all_r)} vectors scored in {wall:.1f} s; the table (R = MACs relative to the full network, "
          "Q = loss decrease, measured step time relative to the full step):")
    for entry in table.entries:
        print(f"  R {entry.R:6.3f}  Q {entry.Q:8.4f}  step {entry.step_s / full_step:6.3f}  "
              f"rates {', '.join(f'{r:g}' for r in entry.rates)}")
    args.out.mkdir(parents=True, exist_ok=True)
    partial = args.out / ".table.json.part"
    partial.write_text(table.to_json())
    plot(table, all_r, all_q, args.out / "front.png", f"{Path(args.job).stem}: dropout vectors")
    partial.replace(args.out / "table.json")
    print(f"results: {args.out / 'table.json'}, {args.out / 'front.png'}")
    return 0


def plot(table, all_r, all_q, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(all_r, all_q, s=10, alpha=0.3, label="scored")
    ax.plot([e.R for e in table.entries], [e.Q for e in table.entries], "o-", color="C3", label="table (Pareto)")
    ax.set(xlabel="R: MACs relative to the full network", ylabel="Q: proxy loss decrease", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
