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

``--precision bf16`` trains both sides under bf16 autocast (``train.precision``; the plain loop the same
way, in the layout ``train.memory_format`` gives). Each side's rate is also given in GMAC/s of training
(3x the forward MACs per sample, hpcfed.supernet.cost, plus the final evaluation's forward MACs) and as
a share of this core's peak in that precision: the sustained rate of a large matrix product
(``--gemm`` x ``--gemm``, fp32 or bf16) on the same threads, measured before and after the runs (the
higher counts).
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
from hpcfed.learning.precision import PRECISIONS, arranged, autocast, memory_format
from hpcfed.record.reading import read_results
from hpcfed.run import main as run_main
from hpcfed.seeding import torch_generator
from hpcfed.supernet import ElasticResNet, SubnetSpec
from hpcfed.supernet.cost import cost

FEDAVG = ["strategy.name=fedavg", "strategy.fedavg.arch=largest", "clients.total=50", "clients.per_round=10",
          "clients.overselect=0", "data.partition=iid", "train.local_epochs=2", "train.batch_size=8",
          "devices.availability=always", "devices.memory_mb=[1000,1000]"]


def plain_loop(job, rounds_of_clients: list[list[int]]) -> tuple[int, float]:
    """Train the largest subnet as a plain module over the same clients' data, then evaluate it on the
    test set once, as the FedAvg job does at its end; (samples, seconds)."""
    data = load_data(job)
    space = build_space(job, data.input_shape, data.num_classes)
    model = ElasticResNet(space, torch_generator(job.seed, "init")).extract(SubnetSpec(space.largest()))
    opt = torch.optim.SGD(model.parameters(), lr=job.train.lr, foreach=True)
    layout = memory_format(job.train.memory_format, job.train.precision)
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
                    with autocast(job.train.precision, "cpu"):
                        logits = model(arranged(x[idx], layout))
                    loss = F.cross_entropy(logits.float(), y[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), job.train.clip_norm, foreach=True)
                    opt.step()
                    samples += len(idx)
    with torch.no_grad(), autocast(job.train.precision, "cpu"):
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the fastest of each counts")
    parser.add_argument("--batch-clients", type=int, default=1,
                        help="also run hpcfed training this many clients at once (train.batch_clients)")
    parser.add_argument("--random-cifar", type=int, default=0, metavar="N",
                        help="train on a CIFAR-10-format folder of N random images per batch, written to a "
                             "temporary folder (for machines without CIFAR-10; give --set data.path= for the real one)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="train.precision of both sides (default fp32)")
    parser.add_argument("--memory-format", choices=("auto", "contiguous", "channels_last"), default="auto",
                        help="train.memory_format of both sides (default auto: channels-last with bf16)")
    parser.add_argument("--gemm", type=int, default=2048, metavar="N",
                        help="size of the square matrix product that measures the peak (default 2048)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    overrides = [*FEDAVG, f"rounds={args.rounds}", f"eval.every={args.rounds}", f"train.threads={args.threads}",
                 f"train.precision={args.precision}", f"train.memory_format={args.memory_format}"]
    with tempfile.TemporaryDirectory() as tmp:
        if args.random_cifar:
            overrides += ["data.name=cifar10", f"data.path={write_random_cifar10(Path(tmp) / 'cifar', args.random_cifar)}"]
        return measure(args, [*overrides, *args.overrides])


def peak_gmacs(precision: str, n: int, seconds: float = 2.0) -> float:
    """Sustained multiply-accumulates per second (GMAC/s) of an n x n matrix product at ``precision``,
    the best of repeated timings over about ``seconds``."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=generator).to(dtype) for _ in range(2))
    a @ b                                                    # first call: kernel selection, page faults
    best, spent = math.inf, 0.0
    while spent < seconds or best == math.inf:
        start = time.perf_counter()
        a @ b
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return n ** 3 / best / 1e9


def gmacs(rate: float) -> str:
    """A rate in GMAC/s with three significant digits below 10 (bf16 emulated on a CPU runs at 0.1)."""
    return f"{rate:.1f}" if rate >= 10 else f"{rate:.3f}"


def measure(args, overrides: list[str]) -> int:
    job = load_job(None, overrides)
    torch.set_num_threads(args.threads)
    peak = peak_gmacs(args.precision, args.gemm)
    plain_loop(job, [list(range(job.clients.per_round))])   # warm up torch's kernels for both sides
    sim_seconds = loop_seconds = math.inf
    for _ in range(args.repeat):      # alternate the two sides; the best of each is the least disturbed
        sim_samples, seconds, cohorts = run_hpcfed(overrides, args.rounds)
        sim_seconds = min(sim_seconds, seconds)
        loop_samples, seconds = plain_loop(job, cohorts)
        loop_seconds = min(loop_seconds, seconds)
    loop_rate = loop_samples / loop_seconds
    peak = max(peak, peak_gmacs(args.precision, args.gemm))   # again after the runs: the less disturbed counts
    data = load_data(job)
    supernet = build_space(job, data.input_shape, data.num_classes)
    largest = cost(supernet, supernet.largest())
    space = f"stem {job.model.stem}, widths {list(job.model.widths)}, depths {list(job.model.depths)}"
    layout = "channels-last" if memory_format(job.train.memory_format, args.precision) == torch.channels_last \
        else "contiguous"
    print(f"model: largest subnet ({space}), {job.data.name}, batch {job.train.batch_size}, "
          f"{args.threads} thread(s), {args.precision}, {layout}; {largest.macs / 1e6:.2f} MMAC forward per sample")
    print(f"peak: {args.gemm}x{args.gemm} matrix product in {args.precision}: {gmacs(peak)} GMAC/s")
    if args.precision == "bf16" and peak < peak_gmacs("fp32", args.gemm):
        print(f"note: bf16 products run slower than fp32 here (torch's CPU capability: "
              f"{torch.backends.cpu.get_cpu_capability()}): this CPU has no bf16 units and torch emulates them, "
              f"so shares of the bf16 peak are not meaningful; use --precision fp32")
    for name, samples, seconds in (("plain torch loop", loop_samples, loop_seconds),
                                   ("hpcfed, one at a time", sim_samples, sim_seconds)):
        rate = (largest.train_macs(samples) + largest.macs * len(data.y_test)) / seconds / 1e9
        print(f"{name:<24}: {samples} samples in {seconds:.2f} s = {samples / seconds:.0f} samples/s, "
              f"{gmacs(rate)} GMAC/s = {rate / peak:.1%} of peak")
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
