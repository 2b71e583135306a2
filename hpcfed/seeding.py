"""Explicit random streams keyed by (seed, purpose, round, client, ...), never global seeds.

Every random choice in hpcfed draws from a generator derived from the job seed and a tuple of
keys, so a client's training does not depend on which rank hosts it nor on how many ranks run
(pfl-research derives per-user seeds the same way).
"""
from __future__ import annotations

import zlib

import numpy as np
import torch


def _entropy(seed: int, purpose: str, keys: tuple[int, ...]) -> list[int]:
    return [int(seed), zlib.crc32(purpose.encode()), *(int(k) for k in keys)]


def rng(seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """A NumPy generator for ``purpose`` (e.g. "cohort") and integer ``keys`` (round, client, ...)."""
    return np.random.default_rng(np.random.SeedSequence(_entropy(seed, purpose, keys)))


def torch_generator(seed: int, purpose: str, *keys: int) -> torch.Generator:
    """A torch CPU generator seeded from the same derivation as :func:`rng`."""
    state = np.random.SeedSequence(_entropy(seed, purpose, keys)).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))
