"""Scoring a list of items spread over the MPI ranks, each item once (the searches' workers).

Rank 0 drives a search and calls the :class:`Spread` with a generation's items; it broadcasts the
items not scored before, every rank scores its share (rank r: the r-th, (r+K)-th, ... item) with
``score_many`` and rank 0 gathers the scores, so the result is the same for any number of ranks.
Every other rank calls :meth:`Spread.serve` and returns when rank 0 calls :meth:`Spread.stop`.
Used by the post-training search (hpcfed.search.post_training) and DISTREAL's design-space exploration
(hpcfed.strategies.distreal.dse).
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Hashable, Sequence

import numpy as np

from hpcfed.errors import HpcfedError
from hpcfed.runtime.comm import Comm, install_abort_hook


def set_up_on_every_rank(comm: Comm, build: Callable[[], dict], program: str) -> dict | None:
    """``build()`` on every rank, for a tool that spreads its scoring (hpcfed.commands.search, .dse): an
    :class:`HpcfedError` on any rank makes rank 0 print ``program: error: ...`` once, and every rank gets
    None (the tool exits with 2); an uncaught error on any rank ends every rank."""
    install_abort_hook(comm)
    error, setup = None, None
    try:
        setup = build()
    except HpcfedError as err:
        error = str(err)
    error = comm.any_error(error)
    if error:
        if comm.rank == 0:
            print(f"{program}: error: {error}", file=sys.stderr, flush=True)
        return None
    return setup


class Spread:
    def __init__(self, comm: Comm, score_many: Callable[[list], Sequence[float]]):
        self.comm, self.score_many = comm, score_many
        self.cache: dict[Hashable, float] = {}
        self.busy_s = 0.0     # this rank's seconds spent scoring

    def __call__(self, items: list) -> np.ndarray:
        new = [item for item in dict.fromkeys(items) if item not in self.cache]
        if new:
            size = self.comm.size
            self.comm.bcast(new)
            parts = self.comm.gather(self._score(new[0::size]))
            for rank, part in enumerate(parts):
                self.cache.update(zip(new[rank::size], part))
        return np.array([self.cache[item] for item in items])

    def serve(self) -> None:
        while (items := self.comm.bcast()) is not None:
            self.comm.gather(self._score(items[self.comm.rank::self.comm.size]))

    def stop(self) -> None:
        self.comm.bcast(None)

    def _score(self, items: list) -> list[float]:
        start = time.perf_counter()
        scores = [float(s) for s in self.score_many(items)] if items else []
        self.busy_s += time.perf_counter() - start
        return scores
