"""Scoring a list of items spread over the MPI ranks, each item once (the searches' workers).

Rank 0 drives a search and calls the :class:`Spread` with a generation's items; it broadcasts the
items not scored before, every rank scores its share (rank r: the r-th, (r+K)-th, ... item) with
``score_many`` and rank 0 gathers the scores, so the result is the same for any number of ranks.
Every other rank calls :meth:`Spread.serve` and returns when rank 0 calls :meth:`Spread.stop`.
Used by the post-training search (hpcfed.search.post_training) and DISTREAL's design-space exploration
(hpcfed.strategies.distreal.dse).
"""
from __future__ import annotations

import time
from typing import Callable, Hashable, Sequence

import numpy as np

from hpcfed.runtime.comm import Comm


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
