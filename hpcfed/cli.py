"""The ``hpcfed`` command: one installed program with a subcommand per tool.

    hpcfed run [JOB] [--set k=v ...]       # the same as python -m hpcfed.run (under mpirun too)
    hpcfed summarize RUN.h5                # the same as python tools/summarize.py RUN.h5
    hpcfed --help                          # every subcommand, one line each

One command rather than one per tool: a cluster's PATH gains one name, ``hpcfed --help`` lists
everything there is to do, and each subcommand is the module ``hpcfed.commands.<name>`` (or
hpcfed.run) whose ``main(argv)`` it calls, so ``hpcfed X`` and ``python tools/X.py`` run the same code.
A subcommand's module is imported only when it is asked for. The launchers in the checkout's tools/
call :func:`main` too.
"""
from __future__ import annotations

import importlib
import os
import sys

from hpcfed.errors import did_you_mean

# subcommand -> (module with main(argv), one line of what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("hpcfed.run", "train a supernet family by federated learning (python -m hpcfed.run)"),
    "summarize": ("hpcfed.commands.summarize", "print a results file's accuracy table and cost ledger"),
    "plot": ("hpcfed.commands.plot", "plot results files as PNG figures"),
    "compare": ("hpcfed.commands.compare", "run every method of a job set and compare them"),
    "reproduce": ("hpcfed.commands.reproduce", "reproduce a paper's claim over several seeds"),
    "search": ("hpcfed.commands.search", "search a trained supernet for its best subnets under a budget"),
    "export": ("hpcfed.commands.export", "export a trained subnet as a standalone torch program"),
    "dse": ("hpcfed.commands.dse", "DISTREAL's design-space exploration of dropout vectors"),
    "bench-efficiency": ("hpcfed.commands.bench_efficiency", "training throughput against a plain torch loop"),
    "bench-step": ("hpcfed.commands.bench_step", "one training step in fp32/bf16 x NCHW/NHWC, hpcfed and plain"),
    "bench-comm": ("hpcfed.commands.bench_comm", "MPI bytes per round against what the slices need"),
    "bench-memory": ("hpcfed.commands.bench_memory", "peak memory per rank on CIFAR-10 at its real size"),
    "bench-overhead": ("hpcfed.commands.bench_overhead", "round overhead as the population grows"),
    "bench-dropout": ("hpcfed.commands.bench_dropout", "dropout vectors' R(d) against measured step time"),
    "bench-peers": ("hpcfed.commands.bench_peers", "the same FedAvg task in hpcfed, pfl-research and Flower"),
}


def usage() -> str:
    width = max(map(len, COMMANDS)) + 2
    lines = ["usage: hpcfed COMMAND [ARGS ...]   (hpcfed COMMAND --help for a command's own options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}{what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"hpcfed: error: unknown command {name!r}{did_you_mean(name, COMMANDS)}; accepted: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    if name == "run":   # before the heavy imports: a signal while starting ends rank 0 with a clear line
        from hpcfed.runtime.interrupts import install_at_start
        install_at_start()
    sys.argv[0] = f"hpcfed {name}"   # what argparse calls the program in usage and errors
    try:
        return importlib.import_module(COMMANDS[name][0]).main(rest)
    except BrokenPipeError:   # whoever read the output stopped (``| head``): end quietly, as a pipeline expects
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no second error when Python flushes
        return 0


if __name__ == "__main__":
    sys.exit(main())
