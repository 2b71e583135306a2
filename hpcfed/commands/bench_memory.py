"""Memory benchmark: peak resident memory per rank of a short run on CIFAR-10 at its real size.

Writes a ``cifar-10-batches-py`` folder of random uint8 images in the standard pickle format
(50,000 training and 10,000 test images, as the real set; memory does not depend on the pixel
values) to a temporary folder, runs one short FedAvg round of a small CNN on it under ``mpirun``
and prints every rank's ``peak_rss_mb`` from the results file. The same run on scikit-learn's
digits (a data set of under a megabyte) is printed as the floor: what python, torch and MPI take
without a data set, so the difference is what holding CIFAR-10 costs.

    python tools/bench_memory.py                    # 3 ranks (rank 0 serves, 2 train)
    python tools/bench_memory.py --ranks 3 --per-batch 1000 --set train.batch_clients=2
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from hpcfed.data.cifar import write_random_cifar10
from hpcfed.experiments.launch import run_settings

SETTING = ["strategy.name=fedavg", "strategy.fedavg.arch=largest", "clients.total=10", "clients.per_round=4",
           "clients.overselect=0", "data.partition=iid", "devices.availability=always",
           "devices.memory_mb=[1000,1000]", "rounds=1", "eval.every=1", "eval.subnets=2", "train.local_epochs=1",
           "train.batch_size=32", "model.stem=8", "model.widths=[8,16]", "train.threads=1", "checkpoint.every=0"]


def peaks(settings: list[str], ranks: int) -> np.ndarray:
    """Peak MiB of every rank of one run (``peak_rss_mb``)."""
    with tempfile.TemporaryDirectory() as tmp:
        r, _ = run_settings([*SETTING, *settings], ranks, Path(tmp) / "memory.h5", "bench_memory")
    return np.atleast_1d(r["attrs"]["peak_rss_mb"]).astype(float)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=3, help="MPI ranks (rank 0 serves, the rest train)")
    parser.add_argument("--per-batch", type=int, default=10000,
                        help="images per batch file (10000 = the real size: 5 x 10000 train, 10000 test)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra job settings")
    args = parser.parse_args(argv)
    if args.ranks < 2 or args.per_batch < 1:
        parser.error("--ranks must be >= 2 and --per-batch >= 1")
    print(f"FedAvg, 1 round, 10 clients (4 per round), small CNN, {args.ranks} ranks; "
          f"settings: {' '.join(args.overrides) or 'defaults'}")
    floor = peaks(["data.name=digits", *args.overrides], args.ranks)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_random_cifar10(Path(tmp) / "cifar-10-batches-py", args.per_batch)
        cifar = peaks(["data.name=cifar10", f"data.path={folder}", *args.overrides], args.ranks)
    images = 6 * args.per_batch
    print(f"{'data':<36} {'peak MiB per rank (' + '/'.join(map(str, range(args.ranks))) + ')':<30}")
    print(f"{'digits (floor)':<36} {'/'.join(f'{v:.0f}' for v in floor):<30}")
    print(f"{f'cifar10, {images:,} random images':<36} {'/'.join(f'{v:.0f}' for v in cifar):<30}")
    print(f"{'cifar10 above the floor':<36} {'/'.join(f'{v:.0f}' for v in cifar - floor):<30}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
