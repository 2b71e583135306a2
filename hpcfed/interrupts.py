"""Signals that stop a run resumably: SIGTERM, SIGUSR1 and SIGINT on rank 0 become :class:`Interrupted`.

SLURM sends SIGUSR1 before a time limit (``--signal``) and SIGTERM at cancellation, preemption or
the limit itself; ``mpirun`` sends SIGTERM to the survivors when a rank dies; Ctrl-C sends SIGINT.
Rank 0 turns each into an exception at the next Python instruction: its waits poll, so it is never
stuck in MPI, and the round loop then saves a checkpoint of the last completed round. Workers
ignore these signals so that they cannot die before rank 0 has saved; rank 0 ends them. A write
to the results file holds them back until it ends (:func:`deferred`), so none is cut in two.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

RESUMABLE_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
EXIT_INTERRUPTED = 75   # EX_TEMPFAIL: stopped with a checkpoint; run again with --resume


class Interrupted(BaseException):
    """Raised on rank 0 by SIGTERM, SIGUSR1 or SIGINT (a BaseException: ``except Exception`` must not eat it)."""

    def __init__(self, signum: int):
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def is_requeue(self) -> bool:
        """SIGUSR1: an orderly stop asked for by the scheduler (SLURM requeue), not a failure."""
        return self.signum == signal.SIGUSR1


def _raise(signum, frame):
    raise Interrupted(signum)


def install(is_server: bool) -> None:
    """Rank 0: raise :class:`Interrupted` on the resumable signals; workers: ignore them."""
    for sig in RESUMABLE_SIGNALS:
        signal.signal(sig, _raise if is_server else signal.SIG_IGN)


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
