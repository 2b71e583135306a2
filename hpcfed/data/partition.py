"""Partitions of a labelled training set over federated clients.

Each partition is a pure function of the labels, the number of clients, its own parameters and an
explicit :class:`numpy.random.Generator`. It returns the CSR pair ``(offsets, indices)`` (both
int64): client ``k`` owns ``indices[offsets[k]:offsets[k + 1]]``, every training index appears
exactly once and every client owns at least one sample. The work is numpy-vectorised, so 100k
clients cost no memory beyond the two arrays.

The ``natural`` partition of a stored set (FEMNIST's writers) is not a function of the labels but
of the samples' groups: :func:`choose_groups` picks the groups that become clients before the
samples are read, and :func:`partition_natural` gives each client its group's samples.
"""

from __future__ import annotations

import numpy as np

from hpcfed.errors import DataError

PARTITIONS = ("iid", "dirichlet", "shards")


def _check_num_clients(num_clients: int, num_samples: int) -> None:
    """Raises DataError unless 1 <= num_clients <= num_samples."""
    if not 1 <= num_clients <= num_samples:
        raise DataError(
            f"clients.total: {num_clients} does not fit {num_samples} train samples; "
            f"expected an integer from 1 to {num_samples}"
        )


def _csr_from_owner(owner: np.ndarray, num_clients: int) -> tuple[np.ndarray, np.ndarray]:
    """Groups sample indices by owning client (stable, so each client's indices stay sorted)."""
    indices = np.argsort(owner, kind="stable").astype(np.int64)
    offsets = np.zeros(num_clients + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=num_clients), out=offsets[1:])
    return offsets, indices


def partition_iid(
    labels: np.ndarray, num_clients: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffles all samples and splits them into ``num_clients`` parts whose sizes differ by <= 1."""
    n = len(labels)
    _check_num_clients(num_clients, n)
    indices = rng.permutation(n).astype(np.int64)
    offsets = np.arange(num_clients + 1, dtype=np.int64) * n // num_clients
    return offsets, indices


def _excess(counts: np.ndarray, level: int) -> int:
    """Number of samples held above ``level`` by all clients together."""
    return int(np.maximum(counts - level, 0).sum())


def _fill_empty_clients(owner: np.ndarray, num_clients: int) -> None:
    """Gives every empty client one sample, taken (in place) from the largest clients.

    Equivalent to repeatedly moving one sample from the currently largest client (lowest id on ties)
    to the lowest-numbered empty client, but computed in one water-filling step: the donors are
    lowered to a common level and give up their highest-numbered samples.
    """
    counts = np.bincount(owner, minlength=num_clients)
    empty = np.flatnonzero(counts == 0)
    if empty.size == 0:
        return
    needed = empty.size
    lo, hi = 1, int(counts.max())  # _excess(lo) >= needed because num_samples >= num_clients
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _excess(counts, mid) >= needed else (lo, mid)
    give = np.maximum(counts - (lo + 1), 0)
    at_top = np.flatnonzero(counts - give == lo + 1)[: needed - int(give.sum())]
    give[at_top] += 1
    order = np.argsort(owner, kind="stable")
    starts = np.cumsum(counts) - counts
    donor = owner[order]
    rank = np.arange(len(owner)) - starts[donor]
    moved = order[rank >= counts[donor] - give[donor]]
    owner[moved] = empty


def partition_dirichlet(
    labels: np.ndarray, num_clients: int, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Label-skewed split: each class is divided over the clients in proportions ~ Dir(alpha).

    This is the usual per-class form of the scheme of Hsu, Qi and Brown, "Measuring the Effects of
    Non-Identical Data Distribution for Federated Visual Classification" (2019); small ``alpha``
    gives each client few classes. Clients left empty get one sample from the largest clients.
    """
    n = len(labels)
    _check_num_clients(num_clients, n)
    if not alpha > 0:
        raise DataError(f"data.alpha: {alpha} is not positive; expected a Dirichlet concentration > 0")
    by_label = np.argsort(labels, kind="stable")
    _, class_starts = np.unique(labels[by_label], return_index=True)
    bounds = np.append(class_starts, n)
    owner = np.empty(n, dtype=np.int64)
    concentration = np.full(num_clients, float(alpha))
    for start, stop in zip(bounds[:-1], bounds[1:]):
        members = rng.permutation(by_label[start:stop])
        cuts = (np.cumsum(rng.dirichlet(concentration))[:-1] * len(members)).astype(np.int64)
        owner[members] = np.searchsorted(cuts, np.arange(len(members)), side="right")
    _fill_empty_clients(owner, num_clients)
    return _csr_from_owner(owner, num_clients)


def partition_shards(
    labels: np.ndarray, num_clients: int, shards_per_client: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pathological non-IID split of McMahan et al., "Communication-Efficient Learning" (2017).

    Sorts the samples by label, cuts them into ``num_clients * shards_per_client`` contiguous
    shards of near-equal size and gives each client ``shards_per_client`` random shards.
    """
    n = len(labels)
    _check_num_clients(num_clients, n)
    if shards_per_client < 1:
        raise DataError(
            f"data.shards_per_client: {shards_per_client} is below 1; expected an integer >= 1"
        )
    num_shards = num_clients * shards_per_client
    if num_shards > n:
        raise DataError(
            f"data.shards_per_client: {shards_per_client} x {num_clients} clients = {num_shards} "
            f"shards exceeds the {n} train samples; expected at most {n // num_clients} per client"
        )
    by_label = np.argsort(labels, kind="stable")
    bounds = np.arange(num_shards + 1, dtype=np.int64) * n // num_shards
    chosen = rng.permutation(num_shards)  # client k takes chosen[k * spc:(k + 1) * spc]
    lengths = np.diff(bounds)[chosen]
    ends = np.cumsum(lengths)
    positions = np.arange(n) + np.repeat(bounds[:-1][chosen] - (ends - lengths), lengths)
    offsets = np.zeros(num_clients + 1, dtype=np.int64)
    offsets[1:] = ends[shards_per_client - 1 :: shards_per_client]
    return offsets, by_label[positions].astype(np.int64)


def choose_groups(sizes: np.ndarray, num_clients: int, rng: np.random.Generator) -> np.ndarray:
    """The natural partition's clients: ``num_clients`` of the groups (writers) with samples
    (``sizes`` > 0), taken as a prefix of a permutation drawn from ``rng``, so client ``k`` is
    group ``chosen[k]`` and fewer clients are a prefix of the same order. The samples of groups not
    chosen are not used at all."""
    present = np.flatnonzero(np.asarray(sizes) > 0)
    if not 1 <= num_clients <= len(present):
        raise DataError(
            f"clients.total: {num_clients} does not fit {len(present)} writers; expected an integer from 1 "
            f"to {len(present)} (the natural partition makes one client per writer)"
        )
    return rng.permutation(present)[:num_clients].astype(np.int64)


def partition_natural(owner: np.ndarray, num_clients: int) -> tuple[np.ndarray, np.ndarray]:
    """Client ``owner[i]`` owns sample ``i`` (the natural partition, after :func:`choose_groups`);
    each client's indices ascend. A client may be left empty here: the caller checks."""
    return _csr_from_owner(np.asarray(owner, dtype=np.int64), num_clients)


def partition_labels(
    labels: np.ndarray,
    partition: str,
    num_clients: int,
    *,
    alpha: float,
    shards_per_client: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Dispatches to the partition named ``partition`` (one of :data:`PARTITIONS`)."""
    if partition == "iid":
        return partition_iid(labels, num_clients, rng)
    if partition == "dirichlet":
        return partition_dirichlet(labels, num_clients, alpha, rng)
    if partition == "shards":
        return partition_shards(labels, num_clients, shards_per_client, rng)
    raise DataError(f"data.partition: {partition!r} is unknown; expected one of {', '.join(PARTITIONS)}")
