"""Everything a run needs before its first round, on every rank: the job and its parts, the output
checks, and the run's own objects: the client host (ranks >= 1, or the one process) and, on rank 0,
the results file (created, or reopened to resume from its checkpoint) and the server.

Bad input raises :class:`HpcfedError` before any output exists; a results file this run began is
removed again when the run cannot start (:func:`remove_output`).
"""
from __future__ import annotations

import argparse
import functools
import os
import time
from pathlib import Path

from hpcfed.assembly.job import build_job, load_job
from hpcfed.assembly.parts import build_space, load_data, pick_device, set_threads
from hpcfed.config import JobConfig, jobfiles
from hpcfed.config.parse import load_yaml
from hpcfed.engine.backend import MPIBackend, SerialBackend
from hpcfed.engine.server import Server
from hpcfed.engine.worker import ClientHost
from hpcfed.errors import HpcfedError
from hpcfed.population.devices import Population
from hpcfed.record import checkpoint, live, tensorboard
from hpcfed.record.results import ResultsWriter
from hpcfed.runtime.comm import Comm
from hpcfed.seeding import torch_generator
from hpcfed.strategies import make_strategy
from hpcfed.supernet import ElasticResNet, cost


def check_output(path: Path, overwrite: bool, resume: bool) -> None:
    if path.is_dir():
        raise HpcfedError(f"--out {str(path)!r} is a directory; give a file path such as runs/a.h5")
    if resume and overwrite:
        raise HpcfedError("--resume and --overwrite contradict each other; give one")
    if resume and not path.is_file():
        raise HpcfedError(f"--resume: results file {str(path)!r} does not exist; --out must name the run to continue")
    if path.exists() and not (overwrite or resume):
        raise HpcfedError(f"--out {str(path)!r} already exists; pass --resume to continue it or --overwrite to replace it")
    parent = path.parent   # made by assemble() if missing: its nearest existing folder must allow that
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir():
        raise HpcfedError(f"--out {str(path)!r}: {str(existing)!r} is a file, so folder {str(parent)!r} cannot be made")
    if not os.access(existing, os.W_OK):
        raise HpcfedError(f"--out {str(path)!r}: folder {str(existing)!r} is not writable")


def calibration_note(job: JobConfig, norm: str) -> str:
    """How evaluation gets its normalisation statistics (the results file's ``calibration`` attribute)."""
    if norm != "bn":
        return f"none needed: {norm} normalisation keeps no statistics"
    return (f"bn statistics per evaluated subnet from {job.eval.calibration_samples} training samples (whole clients "
            f"in a seeded order, stream 8; clients scoring validation: their own training samples), then fixed")


def remove_output(out: Path) -> None:
    """Remove a run's results file and its checkpoint (a run that failed before its first round)."""
    ckpt = checkpoint.checkpoint_path(out)
    for path in (out, ckpt, ckpt.with_name(ckpt.name + ".tmp")):
        path.unlink(missing_ok=True)


def stored_run(out: Path) -> tuple[dict, str]:
    """The job (as a mapping) and the status that results file ``out`` holds: ``--resume --out RUN.h5``
    needs nothing else."""
    text, status = live.read(out, lambda f: (f.attrs["config_yaml"], f.attrs["status"]))
    job = load_yaml(str(text))
    job.pop("faults", None)   # injected faults belong to the run that met them; resumed, they would fire again
    return job, str(status)


def continue_command(out: Path | str, ranks: int) -> str:
    """The command that continues the run in ``out`` from its checkpoint."""
    launcher = f"mpirun -n {ranks} " if ranks > 1 else ""
    return f"{launcher}python -m hpcfed.run --resume --out {out}"


def assemble(comm: Comm, args: argparse.Namespace, setup: dict) -> None:
    """Load and check everything the command line ``args`` ask for (hpcfed.run); fills ``setup`` as it goes
    (so that a stop half-way knows what exists): ``banner``, ``out``, ``resume``, ``dry_run``, ``job_note``,
    then ``host`` (the client host, on ranks >= 1 and in one process), and on rank 0 ``writer``, ``creating``
    (the results file is this run's) and ``server``."""
    job_file = jobfiles.resolve(args.job) if args.job else None
    stored = None
    if args.resume and args.out and Path(args.out).is_file():
        try:
            stored, status = stored_run(Path(args.out))
        except HpcfedError:   # a file killed before its start was saved: the checkpoint check below says so
            stored, status = None, ""
        if status == "finished":   # every round was played: nothing to replay
            setup["finished"] = f"hpcfed: {args.out} is a finished run; nothing to resume"
            return
    if stored is not None and job_file is None:   # the job of the file, with any --set on top (checked below)
        job = build_job(stored, args.overrides)
    else:
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
    board = tensorboard.run_folder(job.output.tensorboard, out)
    if comm.rank == 0:
        check_output(out, args.overwrite, args.resume)
        if not args.dry_run:
            out.parent.mkdir(parents=True, exist_ok=True)   # --out runs/new/a.h5 works as the default does
        if board:
            tensorboard.check_folder(board, args.overwrite, args.resume)
    banner = (f"hpcfed: job {job.name!r}, strategy {job.strategy.name}, data {d.name}, {job.clients.total} clients "
              f"({job.clients.per_round} per round), {job.rounds} rounds, supernet {model.num_params} params, "
              f"{comm.size} ranks x {threads} threads on {device}, results {out}"
              + (f", TensorBoard {board}" if board else "")
              + (f"\nhpcfed: test accuracy in the progress lines (reported, never decided on), in this order: "
                 f"{', '.join(spec.arch.name for _, spec in references)}" if references else ""))
    note = f"hpcfed: job file: {jobfiles.source_note(args.job, job_file)}" if job_file else None
    setup.update({"dry_run": args.dry_run, "banner": banner, "out": out, "resume": args.resume, "job_note": note})
    ckpt, snapshot = checkpoint.checkpoint_path(out), None
    if args.resume and comm.rank == 0:   # a dry run checks the checkpoint too
        snapshot = checkpoint.load(ckpt, job.to_yaml(), model.num_params)
        setup["resume_note"] = f"hpcfed: resuming {out} from round {snapshot.round + 1} of {job.rounds}"
    if args.dry_run:
        return
    host = ClientHost(model, strategy, data, device) if comm.rank != 0 or comm.size == 1 else None
    setup["host"] = host
    if comm.rank == 0:
        costs = [cost(space, s) for _, s in references]
        subnets = [(s.arch.name, s.arch, c.macs, c.params, m) for (m, s), c in zip(references, costs)]
        attrs = {"config_yaml": job.to_yaml(), "strategy": job.strategy.name, "seed": job.seed,
                 "world_size": comm.size, "normalization": space.norm, "final_model_sha256": "",
                 "calibration": calibration_note(job, space.norm), "test_samples": int(data.y_test.shape[0]),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if args.resume:
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
