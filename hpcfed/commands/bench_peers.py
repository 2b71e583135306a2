"""Side-by-side benchmark: the same FedAvg task in hpcfed, pfl-research and Flower, on the same cores.

The task (digits, 50 IID clients, 40 rounds of 10 clients, 2 local epochs, batch 8, lr 0.1, the
default space's largest subnet) is run by hpcfed first; its data split, client picks, initial
weights and hyper-parameters are exported to a task file that the peer scripts in hpcfed/commands/peers/
read, so every system trains the same model on the same clients with the same shuffles. Peers run
in their own virtual environments (they are not dependencies of hpcfed), created on first use:

    python tools/bench_peers.py                  # hpcfed (1 and 2 workers, one client at a time and
                                                 # 10 at once), pfl (1 and 2 workers), Flower (2 actors)
    python tools/bench_peers.py --peers pfl      # a subset; --venvs DIR to keep the venvs elsewhere
    python tools/bench_peers.py --set model.stem=8 --set "model.widths=[8,16]"   # the small digits CNN

Prints wall-clock seconds, training seconds and final accuracy of each, and the ratios to hpcfed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hpcfed.assembly.job import load_job
from hpcfed.assembly.parts import build_space, load_data
from hpcfed.experiments.launch import SOURCE_ROOT, run_settings
from hpcfed.record.reading import read_results
from hpcfed.seeding import torch_generator
from hpcfed.supernet import ElasticResNet, SubnetSpec

PEERS = Path(__file__).resolve().parent / "peers"   # the peer frameworks' scripts (peers/README.md)

TASK = ["strategy.name=fedavg", "strategy.fedavg.arch=largest", "clients.total=50", "clients.per_round=10",
        "clients.overselect=0", "data.partition=iid", "train.local_epochs=2", "train.batch_size=8",
        "train.lr=0.1", "rounds=40", "eval.every=40", "devices.availability=always",
        "devices.memory_mb=[1000,1000]", "train.threads=1", "train.max_update_ratio=0"]
PEER_PACKAGES = {"pfl": ["pfl[pytorch]==0.6.0", "numpy"], "flower": ["flwr[simulation]==1.41.0", "numpy"]}


def run_hpcfed(task: list[str], ranks: int, out: Path, batch_clients: int = 1) -> dict:
    """hpcfed on ``ranks`` processes (0 = one process, no mpirun); wall and training seconds, accuracy."""
    r, wall = run_settings([*task, f"train.batch_clients={batch_clients}"], ranks, out, "bench_peers")
    c = r["clients"]
    name = "hpcfed" if batch_clients == 1 else f"hpcfed/{batch_clients}"
    return {"peer": name, "workers": max(1, ranks - 1), "wall_s": wall,
            "train_s": float(r["rounds"]["wall_time_s"][-1]), "accuracy": float(r["eval"]["accuracy"][-1, -1]),
            "samples": int(c["samples"][c["made_deadline"]].sum()), "rounds": len(r["rounds"]["round"])}


def export_task(settings: list[str], run: Path, task: Path) -> None:
    """Write the task file the peer scripts read (format in hpcfed/commands/peers/README.md)."""
    job = load_job(None, settings)
    data = load_data(job)
    space = build_space(job, data.input_shape, data.num_classes)
    init = ElasticResNet(space, torch_generator(job.seed, "init")).extract(SubnetSpec(space.largest())).flat_values()
    c = read_results(run)["clients"]
    cohorts = np.stack([c["client"][(c["round"] == r) & c["made_deadline"]] for r in range(job.rounds)])
    meta = {"lr": job.train.lr, "local_epochs": job.train.local_epochs, "batch_size": job.train.batch_size,
            "rounds": job.rounds, "seed": job.seed, "clip_norm": job.train.clip_norm,
            "eval_batch_size": job.eval.batch_size, "arch": space.largest().to_dict(),
            "space": {"input_shape": list(space.input_shape), "num_classes": space.num_classes, "stem": space.stem,
                      "widths": list(space.widths), "depths": list(space.depths), "strides": list(space.strides),
                      "expand_choices": list(space.expand_choices), "kernel_choices": list(space.kernel_choices),
                      "width_choices": list(space.width_choices), "divisor": space.divisor, "norm": space.norm}}
    np.savez(task, x_train=data.x_train.numpy(), y_train=data.y_train.numpy(), x_test=data.x_test.numpy(),
             y_test=data.y_test.numpy(), client_offsets=data.client_offsets, client_indices=data.client_indices,
             cohorts=cohorts, init_flat=init.numpy(), meta=np.array(json.dumps(meta)))


def peer_python(name: str, venvs: Path) -> Path:
    """The peer's virtual environment's python, created on first use (torch pinned first)."""
    venv = venvs / name
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"bench_peers: creating {venv} (first use only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEER_PACKAGES[name]], check=True)
    return python


def run_peer(name: str, python: Path, task: Path, workers: int) -> dict:
    script = PEERS / f"{name}_fedavg.py"
    cmd = [str(python), str(script), str(task)]
    if name == "pfl" and workers > 1:
        cmd = [str(python.parent / "torchrun"), "--standalone", f"--nproc_per_node={workers}", *cmd[1:]]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=SOURCE_ROOT, env={**os.environ, "PYTHONPATH": str(SOURCE_ROOT)}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"bench_peers: {name} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(wall_s=wall, workers=result.get("workers", workers))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", default="pfl,flower", help="comma-separated subset of pfl,flower ('' = none)")
    parser.add_argument("--batch-clients", type=int, default=10, help="hpcfed's train.batch_clients for its batched rows")
    parser.add_argument("--venvs", default=str(Path.home() / ".cache" / "hpcfed-peers"), type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="change the task for every system, e.g. model.widths=[8,16] (the peers build the "
                             "same model from the task file)")
    args = parser.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    task, rows = [*TASK, *args.overrides], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows.append(run_hpcfed(task, 0, tmp / "serial.h5"))
        rows.append(run_hpcfed(task, 3, tmp / "mpi.h5"))
        for ranks in (0, 3):
            rows.append(run_hpcfed(task, ranks, tmp / f"batched{ranks}.h5", batch_clients=args.batch_clients))
        export_task(task, tmp / "serial.h5", tmp / "task.npz")
        for name in peers:
            python = peer_python(name, args.venvs)
            for workers in ((1, 2) if name == "pfl" else (2,)):
                rows.append(run_peer(name, python, tmp / "task.npz", workers))
    best = min(r["wall_s"] for r in rows if r["peer"].startswith("hpcfed"))
    best_train = min(r["train_s"] for r in rows if r["peer"].startswith("hpcfed"))
    print(f"task: {' '.join(task)}")
    print(f"{'system':<10} {'workers':>7} {'wall s':>8} {'train s':>8} {'accuracy':>9} {'samples':>8} "
          f"{'wall / hpcfed best':>19} {'train / hpcfed best':>20}")
    for r in rows:
        print(f"{r['peer']:<10} {r['workers']:>7} {r['wall_s']:>8.1f} {r['train_s']:>8.1f} {r['accuracy']:>9.4f} "
              f"{r['samples']:>8} {r['wall_s'] / best:>19.2f} {r['train_s'] / best_train:>20.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
