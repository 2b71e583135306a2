"""The command line: ``[mpirun -n N] python -m hpcfed.run [JOB] [--set k=v ...] [--out RUN.h5]``.

JOB is a job file or the name of a shipped job (``--list-jobs``; a local file wins, hpcfed.jobfiles);
rank 0 says which file it used.

Every rank loads and checks the job and its data; if any rank finds bad input, rank 0 prints one
line and every rank exits with status 2, before any output exists. Then rank 0 runs the server
(progress line per round, summary at the end) and ranks >= 1 host clients. An unexpected error
on any rank prints that rank's message and aborts the whole job (no hang).
"""
from __future__ import annotations

if __name__ == "__main__":   # before the heavy imports (seconds): a signal while starting ends rank 0 with a clear line
    from hpcfed.interrupts import install_at_start
    install_at_start()

import argparse
import functools
import os
import resource
import sys
import time
from pathlib import Path

import torch

from hpcfed import checkpoint, interrupts, jobfiles, tensorboard
from hpcfed.backend import MPIBackend, SerialBackend
from hpcfed.comm import Comm, RankFailed, failure_message, install_abort_hook
from hpcfed.config import JobConfig, load_job
from hpcfed.data import FederatedData, load_federated_data
from hpcfed.data.deformed import DeformedOptions
from hpcfed.devices import Population
from hpcfed.errors import HpcfedError
from hpcfed.report import summary
from hpcfed.results import ResultsWriter, read_results
from hpcfed.seeding import torch_generator
from hpcfed.strategies import make_strategy
from hpcfed.supernet import SPACES, ElasticResNet, ResNetSpace, cost
from hpcfed.worker import ClientHost, serve

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise HpcfedError(f"command line: {message} (see --help)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="python -m hpcfed.run", description="Train a supernet family by federated learning.")
    p.add_argument("job", nargs="?", help="YAML job file or shipped job name, e.g. superfed_256 (see --list-jobs; "
                                          "default: the built-in default job)")
    p.add_argument("--list-jobs", action="store_true", help="list the shipped jobs and job sets, and exit")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a job field, e.g. --set rounds=50 --set train.lr=0.1 (repeatable)")
    p.add_argument("--out", help="results file (default: runs/<job name>-<time>.h5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing results file")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (OUT.ckpt), appending to the file")
    p.add_argument("--dry-run", action="store_true", help="check the job, data and output path; do not train")
    return p.parse_args(argv)


def build_space(job: JobConfig, input_shape, num_classes: int) -> ResNetSpace:
    """The job's search space (``model.space``: resnet or mobilenet) for this data."""
    m = job.model
    return SPACES[m.space](tuple(input_shape), num_classes, m.stem, m.widths, m.depths, m.strides,
                          m.expand_choices, m.kernel_choices, m.width_choices, m.divisor, m.norm)


def pick_device(job: JobConfig, comm: Comm) -> torch.device:
    """CPU, or the GPU ``node-local rank mod GPU count`` (several ranks may share a GPU)."""
    choice = job.train.device
    if choice == "cuda" and not torch.cuda.is_available():
        raise HpcfedError("train.device = 'cuda' but no CUDA GPU is visible; accepted here: auto | cpu")
    if choice == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", comm.local_rank % torch.cuda.device_count())


def set_threads(job: JobConfig, comm: Comm) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = job.train.threads or max(1, cores // comm.local_size)
    torch.set_num_threads(threads)
    return threads


def check_output(path: Path, overwrite: bool, resume: bool) -> None:
    if path.is_dir():
        raise HpcfedError(f"--out {str(path)!r} is a directory; give a file path such as runs/a.h5")
    if resume and overwrite:
        raise HpcfedError("--resume and --overwrite contradict each other; give one")
    if resume and not path.is_file():
        raise HpcfedError(f"--resume: results file {str(path)!r} does not exist; --out must name the run to continue")
    if path.exists() and not (overwrite or resume):
        raise HpcfedError(f"--out {str(path)!r} already exists; pass --resume to continue it or --overwrite to replace it")
    parent = path.parent
    if not parent.is_dir():
        raise HpcfedError(f"--out {str(path)!r}: folder {str(parent)!r} does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise HpcfedError(f"--out {str(path)!r}: folder {str(parent)!r} is not writable")


def calibration_note(job: JobConfig, norm: str) -> str:
    """How evaluation gets its normalisation statistics (the results file's ``calibration`` attribute)."""
    if norm != "bn":
        return f"none needed: {norm} normalisation keeps no statistics"
    return (f"bn statistics per evaluated subnet from {job.eval.calibration_samples} training samples (whole clients "
            f"in a seeded order, stream 8; clients scoring validation: their own training samples), then fixed")


def peak_memory_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None, comm: Comm | None = None) -> int:
    """Run the job on ``comm`` (default: MPI's world); returns the exit status."""
    comm = comm or Comm()
    install_abort_hook(comm)
    with interrupts.handled(is_server=comm.rank == 0):
        return run_job(argv, comm)


def run_job(argv: list[str] | None, comm: Comm) -> int:
    """:func:`main` once the signals are handled."""
    error, setup = None, {}
    try:
        try:
            _setup(comm, argv, setup)
        except HpcfedError as err:
            error = str(err)
        error = comm.any_error(error)
    except interrupts.Interrupted as stop:   # rank 0 only
        if setup.get("server") is None:
            return stopped_while_starting(comm, stop, setup)
        return stopped(comm, stop, setup["server"], setup["writer"])
    if error:
        if setup.get("writer"):
            setup["writer"].close("failed", error=error)
            if not setup["resume"]:
                remove_output(Path(setup["out"]))
        if comm.rank == 0:
            print(f"hpcfed: error: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    if "listing" in setup:
        if comm.rank == 0:
            print(setup["listing"], flush=True)
        return 0
    if comm.rank == 0 and setup["job_note"]:
        print(setup["job_note"], flush=True)
    if setup["dry_run"]:
        if comm.rank == 0:
            print(setup["banner"].replace("hpcfed:", "hpcfed: dry run OK:", 1), flush=True)
        return 0
    if comm.rank != 0:
        serve(comm, setup["host"])
        comm.gather(peak_memory_mb())
        return 0
    server, writer = setup["server"], setup["writer"]
    try:
        print(setup["banner"], flush=True)
        digest = server.run()
        interrupts.ignore()   # every round is played: finish writing rather than stop half-way
    except interrupts.Interrupted as stop:
        return stopped(comm, stop, server, writer)
    except RankFailed as err:
        writer.close("failed", error=str(err))
        raise
    except BaseException as err:
        writer.close("failed", error=failure_message(comm, err))
        raise
    writer.save_models({m: w.numpy() for m, w in server.models.items()})
    if server.report is not None:
        writer.save_report(server.report)
    writer.close("finished", final_model_sha256=digest, stop_reason=server.stopped, rounds_played=server.next_round,
                 peak_rss_mb=comm.gather(peak_memory_mb()))
    print(summary(read_results(setup["out"])), flush=True)
    print(f"results: {setup['out']}", flush=True)
    return 0


def remove_output(out: Path) -> None:
    """Remove a run's results file and its checkpoint (a run that failed before its first round)."""
    ckpt = checkpoint.checkpoint_path(out)
    for path in (out, ckpt, ckpt.with_name(ckpt.name + ".tmp")):
        path.unlink(missing_ok=True)


def stopped(comm: Comm, stop: interrupts.Interrupted, server, writer: ResultsWriter) -> int:
    """Rank 0 was signalled after its server saved a checkpoint: mark the results file, say how to go on, end every rank."""
    status = "interrupted" if stop.is_requeue else "failed"
    note = f"{stop} after round {server.saved_round}; checkpoint {server.checkpoint_file}; continue with --resume"
    writer.close(status, error=note)
    print(f"hpcfed: {note}", file=sys.stderr, flush=True)
    if comm.size > 1:
        comm.abort(interrupts.EXIT_INTERRUPTED)
    return interrupts.EXIT_INTERRUPTED


def stopped_while_starting(comm: Comm, stop: interrupts.Interrupted, setup: dict) -> int:
    """Rank 0 was signalled before its server had saved its start: remove a results file it had begun, say so,
    end every rank."""
    if setup.get("writer") is not None:
        setup["writer"].close("failed", error=str(stop))
    if setup.get("creating"):
        remove_output(Path(setup["out"]))
    again = " with --resume (its checkpoint is unchanged)" if setup.get("resume") else ""
    print(f"hpcfed: {stop} while starting, before the first round; no results were kept: run the job again{again}",
          file=sys.stderr, flush=True)
    if comm.size > 1:
        comm.abort(interrupts.EXIT_INTERRUPTED)
    return interrupts.EXIT_INTERRUPTED


def load_data(job: JobConfig) -> FederatedData:
    """The job's federated data set (``data`` section, ``clients.total``, ``seed``)."""
    d = job.data
    deformed = DeformedOptions(d.image_size, d.deformed_per_digit, d.deformed_test, d.styles, d.deform_strength)
    return load_federated_data(d.name, d.path or None, d.partition, d.alpha, d.shards_per_client,
                               job.clients.total, d.test_fraction, job.seed, d.synthetic_alpha, d.synthetic_beta,
                               d.synthetic_dim, d.synthetic_samples, d.client_val_fraction, d.server_val_fraction,
                               deformed, d.labels)


def _setup(comm: Comm, argv: list[str] | None, setup: dict) -> None:
    """Load and check everything; fills ``setup`` as it goes (so that a stop half-way knows what exists)."""
    args = parse_args(argv)
    if args.list_jobs:
        setup["listing"] = jobfiles.listing()
        return
    job_file = jobfiles.resolve(args.job) if args.job else None
    job = load_job(str(job_file) if job_file else None, args.overrides)
    tensorboard.check_installed(job.output.tensorboard)
    threads = set_threads(job, comm)
    device = pick_device(job, comm)
    d = job.data
    data = load_data(job)
    space = build_space(job, data.input_shape, data.num_classes)
    population = Population(job.devices, job.clients.total, job.seed)
    model = ElasticResNet(space, torch_generator(job.seed, "init"))
    strategy = make_strategy(job, space)
    references = strategy.references()
    for _, spec in references:
        space.validate(spec.arch)
    out = Path(args.out or f"runs/{job.name}-{time.strftime('%Y%m%d-%H%M%S')}.h5")
    if args.out is None and comm.rank == 0:
        out.parent.mkdir(parents=True, exist_ok=True)
    board = tensorboard.run_folder(job.output.tensorboard, out)
    if comm.rank == 0:
        check_output(out, args.overwrite, args.resume)
        if board:
            tensorboard.check_folder(board, args.overwrite, args.resume)
    banner = (f"hpcfed: job {job.name!r}, strategy {job.strategy.name}, data {d.name}, {job.clients.total} clients "
              f"({job.clients.per_round} per round), {job.rounds} rounds, supernet {model.num_params} params, "
              f"{comm.size} ranks x {threads} threads on {device}, results {out}"
              + (f", TensorBoard {board}" if board else ""))
    note = f"hpcfed: job file: {jobfiles.source_note(args.job, job_file)}" if job_file else None
    setup.update({"dry_run": args.dry_run, "banner": banner, "out": out, "resume": args.resume, "job_note": note})
    if args.dry_run:
        return
    host = ClientHost(model, strategy, data, device) if comm.rank != 0 or comm.size == 1 else None
    setup["host"] = host
    if comm.rank == 0:
        from hpcfed.server import Server
        costs = [cost(space, s) for _, s in references]
        subnets = [(s.arch.name, s.arch, c.macs, c.params, m) for (m, s), c in zip(references, costs)]
        attrs = {"config_yaml": job.to_yaml(), "strategy": job.strategy.name, "seed": job.seed,
                 "world_size": comm.size, "normalization": space.norm, "final_model_sha256": "",
                 "calibration": calibration_note(job, space.norm),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        ckpt, snapshot = checkpoint.checkpoint_path(out), None
        if args.resume:
            snapshot = checkpoint.load(ckpt, job.to_yaml(), model.num_params)
            setup["writer"] = writer = ResultsWriter.resume(out, snapshot.rows, len(references))
        else:
            setup["creating"] = True   # from here on the results file (and its checkpoint) are this run's
            try:
                setup["writer"] = writer = ResultsWriter.create(out, attrs, subnets)
            except OSError as err:
                raise HpcfedError(f"--out {str(out)!r} cannot be created: {err}") from None
            ckpt.unlink(missing_ok=True)   # a replaced run's checkpoint must not be resumed
        backend = SerialBackend(host) if comm.size == 1 else MPIBackend(comm, model)
        try:
            setup["server"] = Server(job, model.to(device), strategy, data, population, writer, backend, device,
                                     ckpt, snapshot, progress=functools.partial(print, flush=True))
        except HpcfedError:   # bad input found while preparing the run (e.g. a strategy's check): no output
            writer.close("failed")
            if not args.resume:
                remove_output(out)
            raise
        if board:
            try:
                writer.view = tensorboard.TensorBoardView(board, out)
            except OSError as err:
                raise HpcfedError(f"output.tensorboard: {str(board)!r} cannot be written: {err}") from None


if __name__ == "__main__":
    sys.exit(main())
