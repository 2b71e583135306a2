"""All of hpcfed's MPI: plan broadcast, nonblocking weight shipping, the fused reduction, abort.

The only module that imports mpi4py. Small Python objects (the round plan) travel pickled with
the lowercase methods; slice values and the fused reduction buffer travel as contiguous NumPy
buffers with the uppercase ones (``Isend``/``Irecv``, ``Ireduce``), never pickled. With one process
(``python -m hpcfed.run`` or ``mpirun -n 1``) the same calls degrade to local no-ops.

Failing fast: rank 0 never blocks inside MPI while workers compute; it polls its requests, so
signals reach it (hpcfed.runtime.interrupts) and a worker's failure report (``TAG_FAIL``) is seen within
milliseconds, raised as :class:`RankFailed`. A worker that fails reports to rank 0 and then
aborts the job; a rank that dies outright is detected by the launcher, which ends the job.

Waiting costs no core: a blocking MPI call spins, so a worker waiting for the next plan, its
weights or the reduction would take a core from the workers still training (with more ranks than
cores, the usual case on a laptop and under ``mpirun -n 8`` on two cores). Every wait here is a
nonblocking request polled with sleeps that back off from ``BACKOFF_FIRST_S`` to ``BACKOFF_MAX_S``,
and the plan travels by two nonblocking broadcasts (its length, then its pickled bytes).
"""
from __future__ import annotations

import os
import pickle
import sys
import time
import traceback

import numpy as np

LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK")   # set by mpirun / srun for each rank


def _quick_singleton_start() -> bool:
    """A process that no MPI launcher started is a world of one: Open MPI then needs only its
    ``self`` transport, and not probing the network transports saves about a second of start-up.
    Returns whether it chose the transport (the choice is taken back once MPI has started, so that
    processes this one launches do not inherit it)."""
    if any(v in os.environ for v in LAUNCHER_VARIABLES) or "OMPI_MCA_btl" in os.environ:
        return False
    os.environ["OMPI_MCA_btl"] = "self"
    return True


_CHOSE_TRANSPORT = _quick_singleton_start()
from mpi4py import MPI  # noqa: E402  (after the transport choice; importing it starts MPI)

if _CHOSE_TRANSPORT:
    del os.environ["OMPI_MCA_btl"]

TAG_WEIGHTS, TAG_FAIL = 12, 13
POLL_S = 0.002          # rank 0's polling interval while workers compute
BACKOFF_FIRST_S = 5e-5  # a waiting worker's first sleep between two tests of its requests,
BACKOFF_MAX_S = 2e-3    # doubled up to this
REPORT_GRACE_S = 10.0   # how long a failing worker waits for rank 0 to end the job before aborting itself


class RankFailed(Exception):
    """Rank 0 learnt that a worker failed; the message names the rank and the cause."""


class Comm:
    """The world communicator with the few operations the round loop needs."""

    def __init__(self, comm: MPI.Comm | None = None):
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.bcast_bytes = 0   # bytes the last bcast sent to each other rank

    @property
    def is_server(self) -> bool:
        return self.rank == 0

    @property
    def workers(self) -> range:
        return range(1, self.size)

    def bcast(self, obj=None):
        """Rank 0's small Python object on every rank (pickled; the other ranks wait without spinning)."""
        if self.size == 1:
            return obj
        payload = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), dtype=np.uint8) \
            if self.rank == 0 else None
        length = np.array([len(payload) if payload is not None else 0], dtype=np.int64)
        self._wait([self.comm.Ibcast(length, root=0)])
        if payload is None:
            payload = np.empty(int(length[0]), dtype=np.uint8)
        self._wait([self.comm.Ibcast(payload, root=0)])
        self.bcast_bytes = length.nbytes + payload.nbytes
        return obj if self.rank == 0 else pickle.loads(payload.tobytes())

    def gather(self, obj):
        """Every rank's small Python object, as a list on rank 0 (None elsewhere)."""
        if self.size == 1:
            return [obj]
        return self.comm.gather(obj, root=0)

    def any_error(self, message: str | None) -> str | None:
        """Collective: the first non-empty error message over all ranks, or None on every rank."""
        if self.size == 1:
            return message
        messages = self.comm.allgather(message)
        return next((m for m in messages if m), None)

    def send_to_workers(self, messages: dict[int, list[tuple[np.ndarray, int]]]) -> int:
        """Rank 0: post every (buffer, tag) to its worker with ``Isend`` and wait; returns bytes sent."""
        requests, sent = [], 0
        for dest, parts in messages.items():
            for buf, tag in parts:
                requests.append(self.comm.Isend(np.ascontiguousarray(buf), dest=dest, tag=tag))
                sent += buf.nbytes
        self._wait(requests)
        return sent

    def recv_from_server(self, buffers: list[tuple[np.ndarray, int]]) -> None:
        """Worker: post ``Irecv`` into each preallocated (buffer, tag) and wait for all."""
        self._wait([self.comm.Irecv(buf, source=0, tag=tag) for buf, tag in buffers])

    def reduce_sum(self, buf: np.ndarray) -> np.ndarray | None:
        """Element-wise SUM of ``buf`` over all ranks, delivered to rank 0 (None elsewhere)."""
        if self.size == 1:
            return buf
        out = np.empty_like(buf) if self.rank == 0 else None
        self._wait([self.comm.Ireduce(buf, out, op=MPI.SUM, root=0)])
        return out

    def _wait(self, requests: list) -> None:
        """Complete ``requests``; rank 0 polls, watching for failure reports and letting signals in; a
        worker polls with backing-off sleeps (no spinning core)."""
        if self.rank != 0:
            pause = BACKOFF_FIRST_S
            while not MPI.Request.Testall(requests):
                time.sleep(pause)
                pause = min(2 * pause, BACKOFF_MAX_S)
            return
        while not MPI.Request.Testall(requests):
            self.check_failures()
            time.sleep(POLL_S)

    def check_failures(self) -> None:
        """Rank 0: raise :class:`RankFailed` if a worker has reported a failure."""
        status = MPI.Status()
        if self.size > 1 and self.comm.Iprobe(source=MPI.ANY_SOURCE, tag=TAG_FAIL, status=status):
            raise RankFailed(self.comm.recv(source=status.Get_source(), tag=TAG_FAIL))

    def report_failure(self, message: str) -> None:
        """Worker: tell rank 0 (which records it and ends the job); abort ourselves if it cannot."""
        request = self.comm.isend(message, dest=0, tag=TAG_FAIL)
        deadline = time.monotonic() + REPORT_GRACE_S
        while time.monotonic() < deadline:
            if request.Test():
                time.sleep(REPORT_GRACE_S / 2)   # rank 0 aborts the job meanwhile
                break
            time.sleep(POLL_S)
        self.abort(1)

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)


def failure_message(comm: Comm, error: BaseException) -> str:
    return f"rank {comm.rank} of {comm.size} failed: {type(error).__name__}: {error}"


def install_abort_hook(comm: Comm) -> None:
    """Make an uncaught exception on any rank print its rank and cause, then end every rank."""
    def hook(kind, value, tb):
        traceback.print_exception(kind, value, tb, file=sys.stderr)
        message = value.args[0] if isinstance(value, RankFailed) else failure_message(comm, value)
        sys.stderr.write(f"hpcfed: {message}\n")
        sys.stderr.flush()
        if comm.size > 1 and comm.rank != 0:
            comm.report_failure(message)
        if comm.size > 1:
            comm.abort(1)
        os._exit(1)
    sys.excepthook = hook
