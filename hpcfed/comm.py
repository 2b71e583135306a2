"""All of hpcfed's MPI: plan broadcast, nonblocking weight shipping, the fused reduction, abort.

The only module that imports mpi4py. Small Python objects (the round plan) travel pickled with
the lowercase methods; weights, masks and the fused reduction buffer travel as contiguous NumPy
buffers with the uppercase ones (``Isend``/``Irecv``, ``Reduce``), never pickled. With one process
(``python -m hpcfed.run`` or ``mpirun -n 1``) the same calls degrade to local no-ops.
"""
from __future__ import annotations

import os
import sys
import traceback

import numpy as np
from mpi4py import MPI

TAG_MASK, TAG_WEIGHTS = 11, 12


class Comm:
    """The world communicator with the few operations the round loop needs."""

    def __init__(self, comm: MPI.Comm | None = None):
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = node.Get_rank(), node.Get_size()
        node.Free()
        self.bytes_sent = 0   # bytes this rank put on the wire (for the mpi_bytes ledger)

    @property
    def is_server(self) -> bool:
        return self.rank == 0

    @property
    def workers(self) -> range:
        return range(1, self.size)

    def bcast(self, obj=None):
        """Rank 0's small Python object on every rank (pickled)."""
        if self.size == 1:
            return obj
        return self.comm.bcast(obj, root=0)

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
        MPI.Request.Waitall(requests)
        self.bytes_sent += sent
        return sent

    def recv_from_server(self, buffers: list[tuple[np.ndarray, int]]) -> None:
        """Worker: post ``Irecv`` into each preallocated (buffer, tag) and wait for all."""
        MPI.Request.Waitall([self.comm.Irecv(buf, source=0, tag=tag) for buf, tag in buffers])

    def reduce_sum(self, buf: np.ndarray) -> np.ndarray | None:
        """Element-wise SUM of ``buf`` over all ranks, delivered to rank 0 (None elsewhere)."""
        if self.size == 1:
            return buf
        out = np.empty_like(buf) if self.rank == 0 else None
        self.comm.Reduce(buf, out, op=MPI.SUM, root=0)
        if self.rank != 0:
            self.bytes_sent += buf.nbytes
        return out

    def abort(self, code: int = 1) -> None:
        self.comm.Abort(code)


def install_abort_hook(comm: Comm) -> None:
    """Make an uncaught exception on any rank print its rank and cause, then end every rank."""
    def hook(kind, value, tb):
        sys.stderr.write(f"hpcfed: rank {comm.rank} of {comm.size} failed: {kind.__name__}: {value}\n")
        traceback.print_exception(kind, value, tb, file=sys.stderr)
        sys.stderr.flush()
        if comm.size > 1:
            comm.abort(1)
        os._exit(1)
    sys.excepthook = hook
