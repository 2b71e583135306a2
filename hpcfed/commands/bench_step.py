"""Step benchmark: one training step (forward, backward, SGD) of the largest subnet, in each precision
and memory layout, the variants alternated in one process.

Times the step of hpcfed's supernet (weights sliced from the shared buffer, as clients train) and of
the same subnet extracted as a plain module, on random inputs of the job's shape, in fp32 and bf16
(autocast), each with contiguous (NCHW) and channels-last (NHWC) batches (hpcfed.learning.precision).
Every variant runs ``--steps`` steps per turn, the variants take turns ``--turns`` times, and each one's
fastest turn counts (the machine is shared); speed-ups are against fp32 NCHW of the same network.

    python tools/bench_step.py --set data.name=deformed_digits --set data.image_size=16 --set model.norm=bn
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import torch
import torch.nn.functional as F

from hpcfed.assembly.job import load_job
from hpcfed.assembly.parts import build_space, load_data
from hpcfed.learning.precision import PRECISIONS, arranged, autocast
from hpcfed.seeding import torch_generator
from hpcfed.supernet import ElasticResNet, SubnetSpec

LAYOUTS = {"NCHW": torch.contiguous_format, "NHWC": torch.channels_last}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=0, help="batch size (default: the job's train.batch_size)")
    parser.add_argument("--steps", type=int, default=20, help="steps per turn (default 20)")
    parser.add_argument("--turns", type=int, default=5, help="turns of every variant; the fastest counts (default 5)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)
    job = load_job(None, args.overrides)
    torch.set_num_threads(args.threads)
    data = load_data(job)
    space = build_space(job, data.input_shape, data.num_classes)
    supernet = ElasticResNet(space, torch_generator(job.seed, "init"))
    spec = SubnetSpec(space.largest())
    batch = args.batch or job.train.batch_size
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *data.input_shape, generator=generator)
    y = torch.randint(0, data.num_classes, (batch,), generator=generator)
    variants = [(p, layout) for p in PRECISIONS for layout in LAYOUTS]
    print(f"model: largest subnet (stem {job.model.stem}, widths {list(job.model.widths)}), inputs "
          f"{tuple(data.input_shape)}, batch {batch}, {args.threads} thread(s), best of {args.turns} x {args.steps} steps")
    for name, model, forward in (("hpcfed supernet", supernet, lambda m, xb: m(xb, spec)),
                                 ("plain subnet", supernet.extract(spec), lambda m, xb: m(xb))):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, foreach=True)

        def step(precision: str, layout: str) -> None:
            with autocast(precision, "cpu"):
                logits = forward(model, arranged(x, LAYOUTS[layout]))
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        best = {v: math.inf for v in variants}
        for v in variants:
            step(*v)                        # first calls: kernel selection
        for _ in range(args.turns):
            for v in variants:
                start = time.perf_counter()
                for _ in range(args.steps):
                    step(*v)
                best[v] = min(best[v], (time.perf_counter() - start) / args.steps)
        base = best[("fp32", "NCHW")]
        print(f"{name:<16} " + "  ".join(f"{p} {layout}: {1e3 * best[(p, layout)]:.2f} ms ({base / best[(p, layout)]:.2f}x)"
                                         for p, layout in variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
