"""Signals that stop a run resumably: SIGTERM, SIGUSR1 and SIGINT on rank 0 become :class:`Interrupted`.

SLURM sends SIGUSR1 before a time limit (``--signal``) and SIGTERM at cancellation, preemption or
the limit itself; Ctrl-C sends SIGINT. ``mpirun`` (Open MPI 5's prterun) passes a SIGTERM or SIGINT
it receives to every rank and SIGKILLs them all about 0.25 s later (measured here; no option
changes it), so rank 0 may have a fraction of a second. Hence:

- rank 0 turns the first signal into an exception at the next Python instruction (its waits poll,
  so it is never stuck in MPI) and ignores any further one, so that nothing interrupts the save;
- the server saves the last *complete* round it holds at once (never an evaluation first) and a
  fresh run saves a checkpoint of its start before round 0, so whenever rank 0 is SIGKILLed the
  newest checkpoint on disk still resumes to the uninterrupted run;
- while the program starts (imports, before :func:`install`), rank 0 exits at once with a line
  saying that nothing was written; workers ignore the signals throughout, rank 0 ends them;
- a write to the results file holds them back until it ends (:func:`deferred`), so none is cut in two.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

RESUMABLE_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
EXIT_INTERRUPTED = 75   # EX_TEMPFAIL: stopped with a checkpoint; run again with --resume
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID")   # set by the launchers


class Interrupted(BaseException):
    """Raised on rank 0 by SIGTERM, SIGUSR1 or SIGINT (a BaseException: ``except Exception`` must not eat it)."""

    def __init__(self, signum: int):
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def is_requeue(self) -> bool:
        """SIGUSR1: an orderly stop asked for by the scheduler (SLURM requeue), not a failure."""
        return self.signum == signal.SIGUSR1


def _raise_once(signum, frame):
    ignore()   # a second signal must not interrupt the checkpoint the first one asked for
    raise Interrupted(signum)


def _exit_while_starting(signum, frame):
    os.write(2, f"hpcfed: received {signal.Signals(signum).name} while starting, before any output was written; "
                f"nothing to resume: run the job again\n".encode())
    os._exit(EXIT_INTERRUPTED)


def launcher_rank() -> int:
    """This process's rank as the launcher (mpirun, srun) announces it before MPI starts; 0 if none does."""
    for name in RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def install_at_start() -> None:
    """For the program's entry point, before its heavy imports: rank 0 exits cleanly on a signal, workers ignore it."""
    handler = _exit_while_starting if launcher_rank() == 0 else signal.SIG_IGN
    for sig in RESUMABLE_SIGNALS:
        signal.signal(sig, handler)


def install(is_server: bool) -> None:
    """Rank 0: raise :class:`Interrupted` on the first resumable signal; workers: ignore them."""
    for sig in RESUMABLE_SIGNALS:
        signal.signal(sig, _raise_once if is_server else signal.SIG_IGN)


@contextmanager
def handled(is_server: bool) -> Iterator[None]:
    """:func:`install` for the block, then the handlers from before (a run inside a longer-lived
    process, such as a test, must not leave it ignoring signals, nor its later children)."""
    previous = {sig: signal.getsignal(sig) for sig in RESUMABLE_SIGNALS}
    install(is_server)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def ignore() -> None:
    """From now on the resumable signals do nothing here (rank 0 finishing a run whose rounds are all played)."""
    for sig in RESUMABLE_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold the resumable signals back until the block ends, then deliver them (main thread only:
    elsewhere Python's handlers cannot be changed, nor do they run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in RESUMABLE_SIGNALS}
    previous = {sig: handler for sig, handler in previous.items() if handler is not None}   # None: not Python's
    for sig in previous:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in caught:
            signal.raise_signal(sig)
