"""The held-out splits of the federated data and the random streams they draw from.

Nothing a method decides or normalises with may come from the test set: the validation splits
decide, the test set only reports. Every random choice draws from its own numpy Generator seeded
with ``[seed, stream, ...]``, so adding a split never moves another one's numbers:

* stream 1, the server test set of digits: a stratified share ``data.test_fraction`` of every
  class, leaving each class at least one training sample (:func:`split_test_set`);
* stream 2, the partition of the training pool over the clients (hpcfed.data.partition); for
  FEMNIST's natural partition, which writers become clients, drawn before the samples are read
  (hpcfed.data.partition.choose_groups);
* stream 3, the Synthetic generator (hpcfed.data.synthetic);
* stream 4, client validation (:class:`ClientValidation`): client ``k`` with ``n`` samples keeps
  ``floor(data.client_val_fraction * n)`` of them out of its training, chosen by a permutation
  drawn from ``[seed, 4, k]`` -- never from the population size, the rank or the call order; the
  training and validation samples each keep their original order;
* stream 5, server validation of stored sets (:func:`server_validation_split`): a stratified share
  ``data.server_val_fraction`` of the training pool, after the test split and before partitioning,
  drawn from ``[seed, 5]`` (with FEMNIST's natural partition: of the chosen writers' samples, each
  writer keeping the rest). Synthetic carves its server validation from the training samples of
  the clients that hold the test set instead (see hpcfed.data.synthetic);
* streams 6 and 7, deformed_digits' deformations of base-train digit ``d`` (``[seed, 6, d]``) and
  of base-test digit ``d`` (``[seed, 7, d]``); its test split (stream 1), server validation
  (stream 5) and partition (stream 2) are taken over the base digits, and its client validation
  (stream 4) over each client's base digits (see hpcfed.data.deformed);
* stream 8, the calibration sample (:func:`calibration_sample`): the inputs of up to
  ``eval.calibration_samples`` training samples, whole clients in an order drawn from ``[seed, 8]``,
  on which evaluation calibrates normalisation statistics (hpcfed.learning.evaluation); it reads only
  training samples and takes nothing out of training;
* stream 9, the post-training search's validation when the job has no server validation split
  (hpcfed.search.post_training): whole clients in an order drawn from ``[seed, 9]``.

A fraction of 0 draws nothing, so every array is then that of a data set without the split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hpcfed.errors import DataError

TEST_STREAM = 1
PARTITION_STREAM = 2
CLIENT_VAL_STREAM = 4
SERVER_VAL_STREAM = 5
CALIBRATION_STREAM = 8
SEARCH_STREAM = 9


def require(ok: bool, key: str, value: object, expected: str) -> None:
    """Raises a one-line DataError naming ``key``, its bad ``value`` and what is ``expected``."""
    if not ok:
        raise DataError(f"{key}: {value!r} is not accepted; expected {expected}")


def check_fraction(key: str, value: object) -> None:
    """Raises DataError unless ``value`` is a number in [0, 1)."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    require(number and 0 <= value < 1, key, value, "a number in [0, 1)")


def check_test_set(size: int, total: int, test_fraction: float) -> None:
    """Raises DataError when ``test_fraction`` leaves the server test set empty."""
    expected = f"a share that leaves test samples (0 of {total})"
    require(size > 0, "data.test_fraction", test_fraction, expected)


def stratified_pick(labels: np.ndarray, fraction: float, rng: np.random.Generator, keep: int) -> np.ndarray:
    """Marks ``round(fraction * n)`` of the ``n`` samples of every class (at most ``n - keep``),
    taken from a permutation of the class drawn from ``rng``, class by class in label order."""
    picked = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        picked[members[: min(round(fraction * len(members)), len(members) - keep)]] = True
    return picked


def split_test_set(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample indices ``(train, test)``: ``test_fraction`` of every class goes to test (stream 1)."""
    is_test = stratified_pick(labels, test_fraction, np.random.default_rng([seed, TEST_STREAM]), keep=1)
    check_test_set(int(is_test.sum()), len(labels), test_fraction)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def server_validation_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(pool, validation)`` of the training samples: ``fraction`` of every class goes to
    the server's validation set (stream 5), the rest stays in the training pool."""
    if fraction == 0:
        return np.arange(len(labels)), np.zeros(0, dtype=np.int64)
    is_val = stratified_pick(labels, fraction, np.random.default_rng([seed, SERVER_VAL_STREAM]), keep=0)
    emptied = ", ".join(map(str, np.setdiff1d(labels, labels[~is_val])))
    key = "data.server_val_fraction"
    require(not emptied, key, fraction,
            f"a share that leaves training samples in every class (none left in class {emptied})")
    require(is_val.any(), key, fraction, f"a share that leaves validation samples (0 of {len(labels)})")
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


@dataclass(frozen=True)
class ClientValidation:
    """Client validation: a share ``fraction`` of every client's samples is kept out of its
    training (stream 4); a pure function of the seed, the client and its number of samples."""

    fraction: float
    seed: int

    def sizes(self, counts: np.ndarray | int) -> np.ndarray:
        """Validation samples of clients holding ``counts`` samples: ``floor(fraction * count)``."""
        return np.floor(self.fraction * np.asarray(counts, dtype=np.int64)).astype(np.int64)

    def split(self, k: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions ``(training, validation)`` among client ``k``'s ``count`` samples, both in
        their original order."""
        size = int(self.sizes(count))
        if size == 0:
            return np.arange(count), np.zeros(0, dtype=np.int64)
        is_val = np.zeros(count, dtype=bool)
        is_val[np.random.default_rng([self.seed, CLIENT_VAL_STREAM, int(k)]).permutation(count)[:size]] = True
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def calibration_clients(data, count: int, seed: int) -> list[tuple[int, int]]:
    """(client, samples taken) of the calibration sample: whole clients with training samples, in
    an order drawn from ``[seed, 8]``, until ``count`` samples are reached (the last one cut)."""
    order = np.random.default_rng([seed, CALIBRATION_STREAM]).permutation(data.num_clients)
    counts = data.samples_per_client()
    taken, have = [], 0
    for client in order:
        if have >= count:
            break
        if counts[client]:
            taken.append((int(client), int(min(counts[client], count - have))))
            have += taken[-1][1]
    return taken


def calibration_sample(data, count: int, seed: int) -> torch.Tensor:
    """Inputs of up to ``count`` training samples of ``data`` (a FederatedData): the training samples
    of whole clients, taken in a seeded random order until ``count`` are reached."""
    parts = [data.client_data(client)[0][:take] for client, take in calibration_clients(data, count, seed)]
    return torch.cat(parts) if parts else data.inputs(data.test_inputs[:0])
