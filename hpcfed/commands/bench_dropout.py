"""DISTREAL dropout vectors: analytic R(d) against the measured time of one local training step.

For the job's CNN (the built-in default job: the digits model, 8x8 inputs; ``--model deformed``:
jobs/deformed_digits.yaml, 16x16 inputs) it times one local step (forward, backward, clip, SGD
step at the job's batch size, hpcfed.strategies.distreal.timing) under uniform vectors (every group at one
rate, R from 1 down to about 0.06) and a few mixed ones, on the job's threads and device. Vectors
are timed in interleaved passes, in a fresh order each pass (so a load change on the machine hits
them all); a vector's ratio is, per pass, its median step over the zero vector's (the full network,
= 1), and the table gives the median and quartiles of that ratio over the passes.

    python tools/bench_dropout.py                           # default CNN, 5 passes of 20 steps
    python tools/bench_dropout.py --model deformed --passes 3 --steps 10
    python tools/bench_dropout.py --clock cpu --bound       # CPU time (a shared machine); the no-gather bound

``--bound`` adds, per vector, the step of a plain network extracted once at the vector's sizes
(no gathering, no scatter into full-size gradients): the most any gathering optimisation could
save. On small CNNs on a CPU the ratio stays well above R because each convolution, normalisation
and optimiser call has a cost that does not shrink with its channels.
"""
from __future__ import annotations

import argparse
import ctypes
import sys
import time

import numpy as np
import torch

from hpcfed.assembly.job import load_job
from hpcfed.assembly.parts import build_space
from hpcfed.config import JobConfig
from hpcfed.config.jobfiles import resolve, shipped_path
from hpcfed.errors import HpcfedError
from hpcfed.learning.dropout import RATES, DropoutVector, groups, relative_macs, sized_spec
from hpcfed.strategies.distreal.timing import measure_step_seconds
from hpcfed.supernet import ElasticResNet

MODELS = {"default": None, "deformed": "deformed_digits"}   # --model: the built-in job or a shipped one


def steady_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds (1 GiB) so that alternating vectors, whose activations
    differ in size, do not make freed blocks go back to the system and every step fault its pages in
    again (that inflated the 16x16 full step by about 10%, all of it system time). Linux/glibc only;
    returns whether it took effect."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-1, 1 << 30) and libc.mallopt(-3, 1 << 30))   # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def input_shape(job: JobConfig) -> tuple[int, int, int]:
    """The job's image shape (C, H, W), known without loading its data."""
    name = job.data.name
    if name == "digits":
        return (1, 8, 8)
    if name == "deformed_digits":
        return (1, job.data.image_size, job.data.image_size)
    if name == "cifar10":
        return (3, 32, 32)
    raise HpcfedError(f"bench_dropout: data {name!r} is not an image set; accepted digits, deformed_digits, cifar10")


def vectors(space, seed: int = 0) -> dict[str, DropoutVector]:
    """Uniform vectors over every rate, mixed ones that drop only middle widths or only stage
    outputs, and a few seeded random ones."""
    names = groups(space)
    chosen = {f"uniform {r:g}": DropoutVector.uniform(space, r) for r in RATES}
    for rate in (0.5, 0.75):
        chosen[f"middles {rate:g}"] = DropoutVector.of(space, {g: rate for g in names if "b" in g})
    chosen["stages 0.5"] = DropoutVector.of(space, {g: 0.5 for g in names if "b" not in g})
    g = np.random.default_rng(seed)
    for i in range(3):
        chosen[f"random {i}"] = DropoutVector.from_indices(g.integers(0, 7, len(names)))
    return chosen


def compact_step_seconds(space, vector: DropoutVector, batch_size: int, steps: int, cfg, seed: int, clock) -> float:
    """The bound for any gathering optimisation: median seconds of a step of a plain network already
    extracted at the vector's sizes (no gather, no scatter, optimiser on the small tensors only)."""
    subnet = ElasticResNet(space, torch.Generator().manual_seed(seed)).extract(sized_spec(space, vector))
    params = list(subnet.parameters())
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, *space.input_shape, generator=g)
    y = torch.randint(0, space.num_classes, (batch_size,), generator=g)
    times = []
    for step in range(steps + 3):
        start = clock()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(subnet(x), y).backward()
        if cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
        opt.step()
        times.append(clock() - start)
    return float(np.median(times[3:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="default")
    parser.add_argument("--job", default=None, help="a job file or shipped job name instead of --model's")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each vector per pass")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--bound", action="store_true",
                        help="also time a pre-extracted plain network of each vector's sizes (CPU): what no "
                             "gathering at all would give")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: this process's CPU time (steadier on a shared machine; one thread, CPU only)")
    args = parser.parse_args(argv)
    if args.device != "cpu" and (args.bound or args.clock == "cpu"):
        parser.error("--bound and --clock cpu measure on the CPU; use them with --device cpu")
    shipped = MODELS[args.model]
    job_file = resolve(args.job) if args.job else shipped_path(shipped) if shipped else None
    job = load_job(str(job_file) if job_file else None, args.overrides)
    steady = steady_allocator()
    torch.set_num_threads(max(1, job.train.threads))
    space = build_space(job, input_shape(job), 10)
    model = ElasticResNet(space, torch.Generator().manual_seed(job.seed)).to(args.device)
    chosen = vectors(space, job.seed)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in chosen}
    bounds: dict[str, list[float]] = {name: [] for name in chosen}
    order = np.random.default_rng(job.seed)
    for p in range(args.passes):
        for i in order.permutation(len(chosen)):   # a fresh order each pass: no vector always runs first
            name, vector = list(chosen.items())[i]
            times[name].append(measure_step_seconds(model, space, vector, job.train.batch_size, args.steps,
                                                    cfg=job.train, seed=job.seed + p, clock=clock))
            if args.bound:
                bounds[name].append(compact_step_seconds(space, vector, job.train.batch_size, args.steps,
                                                         job.train, job.seed + p, clock))
    full = np.array(times["uniform 0"])
    print(f"# {job.name}: input {input_shape(job)}, batch {job.train.batch_size}, {job.train.threads} thread(s), "
          f"{args.device}, {args.clock} clock; full step {1e3 * np.median(full):.2f} ms; {args.passes} passes x "
          f"{args.steps} steps; ratio = median over passes of (the pass's median step / the pass's full step); "
          f"allocator thresholds fixed: {'yes' if steady else 'no'}")
    bound = f" {'bound':>6}" if args.bound else ""
    print(f"{'vector':<14} {'R':>6} {'time':>6} {'q25':>6} {'q75':>6}{bound} {'ms':>7}  "
          f"rates ({','.join(groups(space))})")
    for name, vector in sorted(chosen.items(), key=lambda kv: -relative_macs(space, kv[1])):
        ratios = np.array(times[name]) / full
        q25, mid, q75 = np.quantile(ratios, (0.25, 0.5, 0.75))
        b = f" {float(np.median(np.array(bounds[name]) / full)):6.3f}" if args.bound else ""
        print(f"{name:<14} {relative_macs(space, vector):6.3f} {mid:6.3f} {q25:6.3f} {q75:6.3f}{b} "
              f"{1e3 * np.median(times[name]):7.2f}  {','.join(f'{r:g}' for r in vector.rates)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
