"""The command line: ``[mpirun -n N] python -m hpcfed.run [JOB] [--set k=v ...] [--out RUN.h5]``.

JOB is a job file or the name of a shipped job (``--list-jobs``; a local file wins, hpcfed.config.jobfiles);
rank 0 says which file it used.

Every rank loads and checks the job and its data; if any rank finds bad input, rank 0 prints one
line and every rank exits with status 2, before any output exists. Then rank 0 runs the server
(progress line per round, summary at the end) and ranks >= 1 host clients. An unexpected error
on any rank prints that rank's message and aborts the whole job (no hang).
"""
from __future__ import annotations

if __name__ == "__main__":   # before the heavy imports (seconds): a signal while starting ends rank 0 with a clear line
    from hpcfed.runtime.interrupts import install_at_start
    install_at_start()

import argparse
import resource
import sys
from pathlib import Path

from hpcfed.assembly.startup import assemble, continue_command, remove_output
from hpcfed.config import jobfiles
from hpcfed.engine.worker import serve
from hpcfed.errors import HpcfedError
from hpcfed.record.reading import read_results
from hpcfed.record.report import summary
from hpcfed.runtime import faults, interrupts
from hpcfed.runtime.comm import Comm, RankFailed, failure_message, install_abort_hook

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
            args = parse_args(argv)
            if args.list_jobs:
                setup["listing"] = jobfiles.listing()
            else:
                assemble(comm, args, setup)
        except HpcfedError as err:
            error = str(err)
        error = comm.any_error(error)
    except interrupts.Interrupted as stop:   # rank 0 only
        if setup.get("server") is None:
            return stopped_while_starting(comm, stop, setup)
        return stopped(comm, stop, setup)
    if error:
        if setup.get("writer"):
            setup["writer"].close("failed", error=error)
            if not setup["resume"]:
                remove_output(Path(setup["out"]))
        if comm.rank == 0:
            print(f"hpcfed: error: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    for done in ("listing", "finished"):
        if done in setup:
            if comm.rank == 0:
                print(setup[done], flush=True)
            return 0
    if comm.rank == 0:
        for note in (setup["job_note"], setup.get("resume_note")):
            if note:
                print(note, flush=True)
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
        return stopped(comm, stop, setup)
    except RankFailed as err:
        writer.close("failed", error=str(err))
        raise
    except BaseException as err:
        writer.close("failed", error=failure_message(comm, err))
        raise
    writer.save_models({m: w.numpy() for m, w in server.models.items()})
    if server.report is not None:
        writer.save_report(server.report)
    clients = writer.columns("clients", ("round", "client", "rank"))
    trained = {(int(c), int(r)) for r, c, rank in zip(clients["round"], clients["client"], clients["rank"]) if rank >= 0}
    unfired = faults.not_fired(server.job.faults, trained, server.next_round, comm.size, server.job.checkpoint.every)
    writer.close("finished", final_model_sha256=digest, stop_reason=server.stopped, rounds_played=server.next_round,
                 peak_rss_mb=comm.gather(peak_memory_mb()), faults_not_fired="\n".join(unfired))
    print(summary(read_results(setup["out"])), flush=True)
    print(f"results: {setup['out']}", flush=True)
    return 0


def stopped(comm: Comm, stop: interrupts.Interrupted, setup: dict) -> int:
    """Rank 0 was signalled after its server saved a checkpoint: mark the results file, say how to go on, end every rank."""
    server, writer = setup["server"], setup["writer"]
    status = "interrupted" if stop.is_requeue else "failed"
    note = (f"{stop} after round {server.saved_round}; checkpoint {server.checkpoint_file}; continue with --resume: "
            f"{continue_command(setup['out'], comm.size)}")
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


if __name__ == "__main__":
    sys.exit(main())
