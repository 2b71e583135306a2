"""The federated data set: server-side train/test tensors plus the CSR client partition.

:func:`load_federated_data` builds a :class:`FederatedData` from one of the supported sources
(scikit-learn's digits, the FedProx Synthetic generator, a local CIFAR-10 folder), normalises it per
channel with train-set statistics and partitions the training samples over the clients. All
randomness comes from numpy Generators seeded with ``[seed, stream]``, so the same arguments always
give identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hpcfed.data.cifar import read_cifar10
from hpcfed.data.partition import PARTITIONS, partition_labels
from hpcfed.errors import DataError

DATASETS = ("digits", "synthetic", "cifar10")
NATURAL = "natural"
_SPLIT_STREAM = 1  # the independent random streams drawn from one seed
_PARTITION_STREAM = 2
_SYNTHETIC_STREAM = 3
NUM_CLASSES = 10  # digits, synthetic and cifar10 all have ten classes
_SYNTHETIC_MAX_SAMPLES = 1000  # per client, so the default lognormal sizes stay modest
_STATS_CHUNK = 1 << 22  # values per chunk when computing channel statistics


@dataclass(frozen=True, eq=False)
class FederatedData:
    """Train/test tensors and the partition of the training samples over clients.

    Client ``k`` owns the training samples ``client_indices[client_offsets[k]:client_offsets[k + 1]]``;
    the two int64 arrays are read-only and are the only per-client state.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    client_offsets: np.ndarray
    client_indices: np.ndarray

    @property
    def num_clients(self) -> int:
        """Number of clients."""
        return len(self.client_offsets) - 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one input sample."""
        channels, height, width = self.x_train.shape[1:]
        return channels, height, width

    def client_samples(self, k: int) -> np.ndarray:
        """Returns the training indices of client ``k`` (a read-only view)."""
        if not 0 <= k < self.num_clients:
            raise IndexError(f"client {k} out of range 0..{self.num_clients - 1}")
        return self.client_indices[self.client_offsets[k] : self.client_offsets[k + 1]]

    def samples_per_client(self) -> np.ndarray:
        """Returns the number of training samples of every client."""
        return np.diff(self.client_offsets)


def _require(ok: bool, key: str, value: object, expected: str) -> None:
    """Raises a one-line DataError naming ``key``, its bad ``value`` and what is ``expected``."""
    if not ok:
        raise DataError(f"{key}: {value!r} is not accepted; expected {expected}")


def _check_test_set(size: int, total: int, test_fraction: float) -> None:
    """Raises DataError when ``test_fraction`` leaves the server test set empty."""
    expected = f"a share that leaves test samples (0 of {total})"
    _require(size > 0, "data.test_fraction", test_fraction, expected)


def _chunks(n: int, per_sample: int) -> list[slice]:
    """Slices of ``range(n)`` holding about ``_STATS_CHUNK`` values each."""
    step = max(1, _STATS_CHUNK // max(per_sample, 1))
    return [slice(start, start + step) for start in range(0, n, step)]


def _normalise(x_train: np.ndarray, x_test: np.ndarray) -> None:
    """Normalises both float32 (N, C, H, W) arrays in place to per-channel mean 0 / std 1 on ``x_train``."""
    n, channels = x_train.shape[:2]
    count = x_train.size // channels
    chunks = _chunks(n, x_train[0].size)
    mean = sum(x_train[c].sum(axis=(0, 2, 3), dtype=np.float64) for c in chunks) / count
    shift = mean[None, :, None, None]
    var = sum(((x_train[c] - shift) ** 2).sum(axis=(0, 2, 3)) for c in chunks) / count
    std = np.sqrt(var)
    std[std == 0] = 1.0
    for x in (x_train, x_test):
        x -= mean.astype(np.float32)[None, :, None, None]
        x /= std.astype(np.float32)[None, :, None, None]


def _stratified_split(
    labels: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Splits sample indices into (train, test), sending ``test_fraction`` of every class to test."""
    is_test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        is_test[members[: min(round(test_fraction * len(members)), len(members) - 1)]] = True
    _check_test_set(int(is_test.sum()), len(labels), test_fraction)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _load_digits(test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Loads scikit-learn's 8x8 digits as float32 (N, 1, 8, 8) and splits off the test set."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data.reshape(-1, 1, 8, 8).astype(np.float32)
    y = digits.target.astype(np.int64)
    train, test = _stratified_split(y, test_fraction, np.random.default_rng([seed, _SPLIT_STREAM]))
    return x[train], y[train], x[test], y[test]


def _generate_synthetic(
    num_clients: int, alpha: float, beta: float, dim: int, samples: int, test_fraction: float, seed: int
) -> tuple[np.ndarray, ...]:
    """Generates Synthetic(alpha, beta) of Li et al., "Federated Optimization in Heterogeneous
    Networks" (FedProx, MLSys 2020), one generator per client.

    For client k: u_k ~ N(0, alpha), W_k ~ N(u_k, 1) (10 x dim), b_k ~ N(u_k, 1), B_k ~ N(0, beta),
    v_k ~ N(B_k, 1) per feature, x ~ N(v_k, Sigma) with Sigma_jj = j^-1.2 and y = argmax(W_k x + b_k)
    (the softmax of the paper does not change the argmax). As in the FedProx code, alpha and beta
    are standard deviations and a client has lognormal(4, 2) + 50 samples (capped here at
    ``_SYNTHETIC_MAX_SAMPLES``) unless ``samples > 0`` fixes the count. The first ``test_fraction``
    of each client's samples (at least one stays for training) go to the pooled test set.

    Returns:
        ``(x_train, y_train, x_test, y_test, offsets)`` with x of shape (n, 1, 1, dim); client k's
        training samples are the contiguous rows ``offsets[k]:offsets[k + 1]``.
    """
    rng = np.random.default_rng([seed, _SYNTHETIC_STREAM])
    if samples > 0:
        counts = np.full(num_clients, samples, dtype=np.int64)
    else:
        counts = np.minimum(rng.lognormal(4, 2, num_clients).astype(np.int64) + 50, _SYNTHETIC_MAX_SAMPLES)
    n_test = np.minimum(np.floor(test_fraction * counts).astype(np.int64), counts - 1)
    _check_test_set(int(n_test.sum()), int(counts.sum()), test_fraction)
    train_at = np.concatenate([[0], np.cumsum(counts - n_test)])
    test_at = np.concatenate([[0], np.cumsum(n_test)])
    x_train = np.empty((train_at[-1], dim), dtype=np.float32)
    y_train = np.empty(train_at[-1], dtype=np.int64)
    x_test = np.empty((test_at[-1], dim), dtype=np.float32)
    y_test = np.empty(test_at[-1], dtype=np.int64)
    u = rng.normal(0.0, alpha, num_clients)
    big_b = rng.normal(0.0, beta, num_clients)
    sigma_sqrt = np.arange(1, dim + 1, dtype=np.float64) ** -0.6
    for k in range(num_clients):
        weights = rng.normal(u[k], 1.0, (NUM_CLASSES, dim))
        bias = rng.normal(u[k], 1.0, NUM_CLASSES)
        v = rng.normal(big_b[k], 1.0, dim)
        x = v + rng.standard_normal((counts[k], dim)) * sigma_sqrt
        y = np.argmax(x @ weights.T + bias, axis=1)
        t = n_test[k]
        x_test[test_at[k] : test_at[k + 1]], y_test[test_at[k] : test_at[k + 1]] = x[:t], y[:t]
        x_train[train_at[k] : train_at[k + 1]], y_train[train_at[k] : train_at[k + 1]] = x[t:], y[t:]
    as_images = (-1, 1, 1, dim)
    return x_train.reshape(as_images), y_train, x_test.reshape(as_images), y_test, train_at


def _check_arguments(
    name: str, path: str | None, partition: str, num_clients: int, test_fraction: float, seed: int
) -> None:
    """Validates the arguments shared by all data sets (partition parameters are checked later)."""
    _require(name in DATASETS, "data.name", name, f"one of {', '.join(DATASETS)}")
    if name == "synthetic":
        accepted = "'natural' for synthetic (one generator per client)"
        _require(partition == NATURAL, "data.partition", partition, accepted)
    else:
        accepted = f"one of {', '.join(PARTITIONS)} for {name}"
        _require(partition in PARTITIONS, "data.partition", partition, accepted)
    integer = (int, np.integer)
    ok_clients = isinstance(num_clients, integer) and num_clients >= 1
    _require(ok_clients, "clients.total", num_clients, "an integer >= 1")
    _require(isinstance(seed, integer) and seed >= 0, "seed", seed, "an integer >= 0")
    if name != "cifar10":
        accepted = "a number strictly between 0 and 1"
        _require(0 < test_fraction < 1, "data.test_fraction", test_fraction, accepted)
    if name == "digits":
        _require(not path, "data.path", path, "no path: digits ships with scikit-learn")
    if name == "synthetic":
        _require(not path, "data.path", path, "no path: synthetic is generated")


def load_federated_data(
    name: str,
    path: str | None,
    partition: str,
    alpha: float,
    shards_per_client: int,
    num_clients: int,
    test_fraction: float,
    seed: int,
    synthetic_alpha: float = 1.0,
    synthetic_beta: float = 1.0,
    synthetic_dim: int = 60,
    synthetic_samples: int = 0,
) -> FederatedData:
    """Loads (or generates) a data set, normalises it and partitions it over ``num_clients`` clients.

    Args:
        name: ``digits``, ``synthetic`` or ``cifar10``.
        path: the ``cifar-10-batches-py`` folder for cifar10; must be empty for the others.
        partition: ``iid``, ``dirichlet`` or ``shards`` (digits, cifar10); ``natural`` (synthetic).
        alpha: Dirichlet concentration for ``dirichlet``.
        shards_per_client: shards per client for ``shards``.
        num_clients: number of clients.
        test_fraction: share of the samples held out as the server test set (ignored by cifar10,
            whose test set is ``test_batch``).
        seed: seed of every random choice.
        synthetic_alpha, synthetic_beta: heterogeneity of the Synthetic generator.
        synthetic_dim: number of Synthetic features.
        synthetic_samples: samples per Synthetic client; 0 draws FedProx's lognormal sizes.

    Raises:
        DataError: for an unknown name or partition, bad numbers, or a missing or malformed file.
    """
    _check_arguments(name, path, partition, num_clients, test_fraction, seed)
    if name == "synthetic":
        _require(synthetic_alpha >= 0, "data.synthetic_alpha", synthetic_alpha, "a number >= 0")
        _require(synthetic_beta >= 0, "data.synthetic_beta", synthetic_beta, "a number >= 0")
        _require(synthetic_dim >= 1, "data.synthetic_dim", synthetic_dim, "an integer >= 1")
        _require(synthetic_samples >= 0, "data.synthetic_samples", synthetic_samples, "an integer >= 0")
        *arrays, offsets = _generate_synthetic(
            num_clients, synthetic_alpha, synthetic_beta, synthetic_dim, synthetic_samples,
            test_fraction, seed,
        )
        x_train, y_train, x_test, y_test = arrays
        indices = np.arange(len(y_train), dtype=np.int64)
    else:
        if name == "digits":
            x_train, y_train, x_test, y_test = _load_digits(test_fraction, seed)
        else:
            x_train, y_train, x_test, y_test = read_cifar10(path)
        offsets, indices = partition_labels(
            y_train,
            partition,
            num_clients,
            alpha=alpha,
            shards_per_client=shards_per_client,
            rng=np.random.default_rng([seed, _PARTITION_STREAM]),
        )
        x_train, x_test = x_train.astype(np.float32, copy=False), x_test.astype(np.float32, copy=False)
    _normalise(x_train, x_test)
    offsets.setflags(write=False)
    indices.setflags(write=False)
    return FederatedData(
        name=name,
        x_train=torch.from_numpy(x_train),
        y_train=torch.from_numpy(y_train),
        x_test=torch.from_numpy(x_test),
        y_test=torch.from_numpy(y_test),
        num_classes=NUM_CLASSES,
        client_offsets=offsets,
        client_indices=indices,
    )
