"""Round-overhead benchmark: the share of a round that is not local training, and peak memory per
rank, as the population grows from 1k to 100k clients with 100 and 1000 clients per round.

Each setting is one real FedAvg run under ``mpirun`` on FedProx's Synthetic data, whose clients are
generated on demand (so 100k clients need no 100k data sets). From the results file it takes, over
all rounds but the first (which pays torch's first-call costs):

    overhead = 1 - sum(train_wall_s) / sum(round_wall_s)

where ``train_wall_s`` is the slowest rank's local training and ``round_wall_s`` the whole round on
rank 0 (planning, shipping, training, reduction, aggregation, evaluation, logging); the share of
evaluation (``eval_wall_s``, once at the end of each run here) is shown apart. Also the peak
resident memory of every rank (``peak_rss_mb``). Memory ratios compare each population with the
smallest at the same clients per round.

    python tools/bench_overhead.py                      # 1k, 10k, 100k x 100, 1000 per round, 3 ranks
    python tools/bench_overhead.py --populations 1000,100000 --per-round 1000 --rounds 4 --ranks 3
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from hpcfed.experiments.launch import run_settings

SETTING = ["strategy.name=fedavg", "strategy.fedavg.arch=largest", "data.name=synthetic", "data.partition=natural",
           "data.synthetic_samples=20", "clients.overselect=0", "devices.availability=always",
           "devices.memory_mb=[1000,1000]", "train.local_epochs=1", "train.batch_size=8", "model.stem=8",
           "model.widths=[8,16]", "train.threads=1", "checkpoint.every=0"]


def measure(population: int, per_round: int, rounds: int, ranks: int, extra: list[str]) -> dict:
    """One run; its overhead share, seconds per round and peak memory per rank."""
    sets = [*SETTING, f"clients.total={population}", f"clients.per_round={per_round}", f"rounds={rounds}",
            f"eval.every={rounds}", *extra]
    with tempfile.TemporaryDirectory() as tmp:
        r, wall = run_settings(sets, ranks, Path(tmp) / "overhead.h5", "bench_overhead")
    rounds_table = r["rounds"]
    round_s, train_s = rounds_table["round_wall_s"][1:], rounds_table["train_wall_s"][1:]
    eval_s = rounds_table["eval_wall_s"][1:]
    return {"population": population, "per_round": per_round, "round_s": float(round_s.mean()),
            "train_s": float(train_s.mean()), "overhead": 1.0 - float(train_s.sum() / round_s.sum()),
            "eval_share": float(eval_s.sum() / round_s.sum()),
            "peak_mb": np.atleast_1d(r["attrs"]["peak_rss_mb"]).astype(float), "wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--populations", default="1000,10000,100000")
    parser.add_argument("--per-round", default="100,1000")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per run; the first is not counted")
    parser.add_argument("--ranks", type=int, default=3, help="MPI ranks (rank 0 serves, the rest train)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="extra job settings, e.g. train.batch_clients=10")
    args = parser.parse_args(argv)
    if args.rounds < 2:
        parser.error("--rounds must be at least 2 (the first round is not counted)")
    populations = [int(v) for v in args.populations.split(",")]
    per_rounds = [int(v) for v in args.per_round.split(",")]
    print(f"FedAvg on Synthetic (20 samples/client, small CNN), {args.ranks} ranks, {args.rounds} rounds per run "
          f"(first not counted), settings: {' '.join(args.overrides) or 'defaults'}")
    print(f"{'clients':>8} {'per round':>9} {'round s':>8} {'train s':>8} {'overhead':>8} {'of it eval':>10}  "
          f"{'peak MiB per rank':<24} {'peak vs smallest':>16}")
    for per_round in per_rounds:
        base = None
        for population in populations:
            if per_round > population:
                continue
            m = measure(population, per_round, args.rounds, args.ranks, args.overrides)
            base = base if base is not None else m["peak_mb"]
            ratio = float((m["peak_mb"] / base).max())
            peaks = "/".join(f"{v:.0f}" for v in m["peak_mb"])
            print(f"{population:>8} {per_round:>9} {m['round_s']:>8.3f} {m['train_s']:>8.3f} "
                  f"{m['overhead']:>8.1%} {m['eval_share']:>10.1%}  {peaks:<24} {ratio:>15.3f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
