"""Efficiency benchmark: client samples per second of a FedAvg simulation vs a plain torch loop.

Both train the same network (the supernet's largest subnet, extracted as a plain module for the
loop) on the same client data, batch size, epochs and thread count, in this one process, and both
evaluate it once on the test set at the end; the ratio of their sample rates is printed (1.0 =
hpcfed costs nothing beyond the training itself).
Both sides run after one warm-up round of the plain loop, so neither pays torch's first-call costs,
and they alternate ``--repeat`` times; the fastest run of each side counts (the machine is shared).

    python tools/bench_efficiency.py [--rounds 20] [--threads 1] [--repeat 3] [--batch-clients 10] [--set key=value ...]

``--batch-clients N`` also runs hpcfed with N clients trained at once (hpcfed.learning.batched) and prints
its speed-up; ``--set model.stem=8 --set model.widths=[8,16]`` gives the small digits CNN. A CIFAR-sized
ResNet on random CIFAR-format images (no download needed):

    python tools/bench_efficiency.py --random-cifar 1000 --rounds 5 --set model.stem=16 \
        --set "model.widths=[16,32,64]" --set "model.depths=[1,1,1]" --set "model.strides=[1,2,2]"
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from hpcfed.assembly.job import load_job
from hpcfed.assembly.parts import build_space, load_data
from hpcfed.data.cifar import write_random_cifar10
from hpcfed.record.reading import read_results
from hpcfed.run import main as run_main
from hpcfed.seeding import torch_generator
from hpcfed.supernet import ElasticResNet, SubnetSpec

FEDAVG = ["strategy.name=fedavg", "strategy.fedavg.arch=largest", "clients.total=50", "clients.per_round=10",
          "clients.overselect=0", "data.partition=iid", "train.local_epochs=2", "train.batch_size=8",
          "devices.availability=always", "devices.memory_mb=[1000,1000]"]


def plain_loop(job, rounds_of_clients: list[list[int]]) -> tuple[int, float]:
    """Train the largest subnet as a plain module over the same clients' data, then evaluate it on the
    test set once, as the FedAvg job does at its end; (samples, seconds)."""
    data = load_data(job)
    space = build_space(job, data.input_shape, data.num_classes)
    model = ElasticResNet(space, torch_generator(job.seed, "init")).extract(SubnetSpec(space.largest()))
    opt = torch.optim.SGD(model.parameters(), lr=job.train.lr)
    samples, start = 0, time.perf_counter()
    for cohort in rounds_of_clients:
        for client in cohort:
            x, y = data.client_data(client)
            for _ in range(job.train.local_epochs):
                order = torch.randperm(len(y))
                for s in range(0, len(y), job.train.batch_size):
                    idx = order[s:s + job.train.batch_size]
                    if len(idx) < 2:
                        continue
                    loss = F.cross_entropy(model(x[idx]), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), job.train.clip_norm)
                    opt.step()
                    samples += len(idx)
    with torch.no_grad():
        x_test = data.x_test   # normalised once (a stored set normalises its test inputs on each access)
        for s in range(0, len(data.y_test), job.eval.batch_size):
            model(x_test[s:s + job.eval.batch_size]).argmax(dim=1)
    return samples, time.perf_counter() - start


def run_hpcfed(overrides: list[str], rounds: int) -> tuple[int, float, list[list[int]]]:
    """One FedAvg run of hpcfed in this process: (client samples trained, seconds of rounds, cohorts)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.h5"
        if run_main([a for o in overrides for a in ("--set", o)] + ["--out", str(out)]) != 0:
            raise SystemExit("bench_efficiency: the hpcfed run failed")
        r = read_results(out)
    c = r["clients"]
    trained = c["made_deadline"]
    cohorts = [list(c["client"][trained & (c["round"] == k)]) for k in range(rounds)]
    return int(c["samples"][trained].sum()), float(r["rounds"]["wall_time_s"][-1]), cohorts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the fastest of each counts")
    parser.add_argument("--batch-clients", type=int, default=1,
                        help="also run hpcfed training this many clients at once (train.batch_clients)")
    parser.add_argument("--random-cifar", type=int, default=0, metavar="N",
                        help="train on a CIFAR-10-format folder of N random images per batch, written to a "
                             "temporary folder (for machines without CIFAR-10; give --set data.path= for the real one)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    overrides = [*FEDAVG, f"rounds={args.rounds}", f"eval.every={args.rounds}", f"train.threads={args.threads}"]
    with tempfile.TemporaryDirectory() as tmp:
        if args.random_cifar:
            overrides += ["data.name=cifar10", f"data.path={write_random_cifar10(Path(tmp) / 'cifar', args.random_cifar)}"]
        return measure(args, [*overrides, *args.overrides])


def measure(args, overrides: list[str]) -> int:
    job = load_job(None, overrides)
    torch.set_num_threads(args.threads)
    plain_loop(job, [list(range(job.clients.per_round))])   # warm up torch's kernels for both sides
    sim_seconds = loop_seconds = math.inf
    for _ in range(args.repeat):      # alternate the two sides; the best of each is the least disturbed
        sim_samples, seconds, cohorts = run_hpcfed(overrides, args.rounds)
        sim_seconds = min(sim_seconds, seconds)
        loop_samples, seconds = plain_loop(job, cohorts)
        loop_seconds = min(loop_seconds, seconds)
    loop_rate = loop_samples / loop_seconds
    space = f"stem {job.model.stem}, widths {list(job.model.widths)}, depths {list(job.model.depths)}"
    print(f"model: largest subnet ({space}), {job.data.name}, batch {job.train.batch_size}, "
          f"{args.threads} thread(s)")
    print(f"plain torch loop        : {loop_samples} samples in {loop_seconds:.2f} s = {loop_rate:.0f} samples/s")
    print(f"hpcfed, one at a time   : {sim_samples} samples in {sim_seconds:.2f} s = {sim_samples / sim_seconds:.0f} "
          f"samples/s")
    print(f"efficiency ratio (hpcfed one at a time / plain loop): {sim_samples / sim_seconds / loop_rate:.3f}")
    if args.batch_clients > 1:
        b_seconds = math.inf
        for _ in range(args.repeat):
            b_samples, seconds, _ = run_hpcfed([*overrides, f"train.batch_clients={args.batch_clients}"], args.rounds)
            b_seconds = min(b_seconds, seconds)
        print(f"hpcfed, {args.batch_clients:>2} at once     : {b_samples} samples in {b_seconds:.2f} s = "
              f"{b_samples / b_seconds:.0f} samples/s")
        print(f"efficiency ratio (hpcfed batched / plain loop): {b_samples / b_seconds / loop_rate:.3f}")
        print(f"batched speed-up over one at a time: {sim_seconds / b_seconds:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
