"""The federated data set: the server's test and validation sets and every client's training and
validation samples.

:func:`load_federated_data` builds a :class:`FederatedData` from one of the supported sources.
Stored sets (scikit-learn's digits; CIFAR-10, CIFAR-100 and FEMNIST from local files) are held
once, in their stored dtype (uint8 images), their samples partitioned over the clients (FEMNIST
also by writer, ``natural``), and normalised per channel with the statistics of the training pool
when samples are handed out (:class:`StoredData`);
the FedProx Synthetic clients are generated on demand (:class:`GeneratedData`), so memory does not
grow with the population. The test and validation splits and their random streams are described in
hpcfed.data.splits; all randomness comes from numpy Generators seeded with ``[seed, stream, ...]``,
so the same arguments always give identical arrays.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from hpcfed.data import cifar100, femnist
from hpcfed.data.cifar import read_cifar10
from hpcfed.data.digits import read_digits
from hpcfed.data.partition import PARTITIONS, choose_groups, partition_labels, partition_natural
from hpcfed.data.splits import (
    PARTITION_STREAM,
    ClientValidation,
    check_fraction,
    check_test_set,
    require,
    server_validation_split,
    split_test_set,
)
from hpcfed.data.synthetic import TEST_CLIENTS, SyntheticClients
from hpcfed.errors import DataError

if TYPE_CHECKING:
    from hpcfed.data.deformed import DeformedOptions

DATASETS = ("digits", "synthetic", "cifar10", "deformed_digits", "cifar100", "femnist")
FROM_DISK = ("cifar10", "cifar100", "femnist")   # read from data.path; their test sets are files of their own
LABELS = {"cifar100": tuple(cifar100.CLASSES), "femnist": tuple(femnist.CLASSES)}   # data.labels, default first
NATURAL = "natural"
NUM_CLASSES = 10  # digits, synthetic, cifar10 and deformed_digits have ten classes
_STATS_CHUNK = 1 << 22  # values per chunk when computing channel statistics


@dataclass(frozen=True, eq=False)
class FederatedData:
    """The server's test and validation sets and the clients' samples, whatever their source.

    ``client_offsets`` (int64, length clients + 1, read-only) gives each client's sample count,
    training and validation together, as ``offsets[k + 1] - offsets[k]``; ``client_split`` says
    which of them are kept for validation. :meth:`client_data` gives client ``k``'s training
    samples, :meth:`client_validation` its validation samples; ``x_test``, ``y_test`` are the
    server's test set and ``x_val``, ``y_val`` its validation set (no samples when its fraction is
    0). Every input handed out is float32 and normalised; ``test_inputs`` and ``val_inputs`` are
    the inputs as held (stored sets hold their stored dtype and normalise on the way out).
    """

    name: str
    test_inputs: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    client_offsets: np.ndarray
    val_inputs: torch.Tensor
    y_val: torch.Tensor
    client_split: ClientValidation

    @property
    def x_test(self) -> torch.Tensor:
        """The server's test inputs, normalised (a new tensor for a stored set)."""
        return self.inputs(self.test_inputs)

    @property
    def x_val(self) -> torch.Tensor:
        """The server's validation inputs, normalised (a new tensor for a stored set)."""
        return self.inputs(self.val_inputs)

    def inputs(self, held: torch.Tensor) -> torch.Tensor:
        """Held inputs as the model takes them: generated sets hold them normalised already."""
        return held

    @property
    def num_clients(self) -> int:
        """Number of clients."""
        return len(self.client_offsets) - 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one input sample."""
        channels, height, width = self.test_inputs.shape[1:]
        return channels, height, width

    def samples_per_client(self) -> np.ndarray:
        """Returns the number of training samples of every client (without generating any)."""
        counts = np.diff(self.client_offsets)
        return counts - self.client_split.sizes(counts)

    def validation_per_client(self) -> np.ndarray:
        """The number of validation samples of every client (without generating any)."""
        return self.client_split.sizes(np.diff(self.client_offsets))

    def client_data(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client ``k``'s training samples ``(x, y)`` on the CPU."""
        return self._client_part(k, validation=False)

    def client_validation(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Client ``k``'s validation samples ``(x, y)`` on the CPU (none when its share is 0)."""
        return self._client_part(k, validation=True)

    def _client_part(self, k: int, validation: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _check_client(self, k: int) -> None:
        if not 0 <= k < self.num_clients:
            raise IndexError(f"client {k} out of range 0..{self.num_clients - 1}")


@dataclass(frozen=True, eq=False)
class StoredData(FederatedData):
    """A data set held in memory in its stored dtype (uint8 images; digits as read) and a CSR
    partition of its training pool.

    ``train_inputs``, ``y_train`` are the training pool (without the server's validation set). Client
    ``k`` owns the samples ``client_indices[client_offsets[k]:client_offsets[k + 1]]``, split into
    training and validation by ``client_split``; the two int64 arrays are read-only and are the only
    per-client state. Inputs are normalised per channel with ``mean`` and ``std`` (float32, one per
    channel, from the training pool) only when they are handed out, so a rank holds the data set
    once, in its stored dtype, and a float copy of no more than the samples it is working on.
    """

    train_inputs: torch.Tensor
    y_train: torch.Tensor
    client_indices: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def x_train(self) -> torch.Tensor:
        """The whole training pool, normalised (a float32 copy of it all: for tests and tools)."""
        return self.inputs(self.train_inputs)

    def inputs(self, held: torch.Tensor) -> torch.Tensor:
        """``(held - mean) / std`` per channel in float32, on ``held``'s device: the arithmetic of
        normalising the whole set in place at load, so every value is the same bit for bit."""
        mean = torch.tensor(self.mean, device=held.device)[:, None, None]
        std = torch.tensor(self.std, device=held.device)[:, None, None]
        return held.to(torch.float32, copy=True).sub_(mean).div_(std)

    def client_samples(self, k: int, validation: bool = False) -> np.ndarray:
        """Returns the indices into the pool of client ``k``'s training (or validation) samples (read-only)."""
        self._check_client(k)
        owned = self.client_indices[self.client_offsets[k] : self.client_offsets[k + 1]]
        train, val = self.client_split.split(k, len(owned))
        rows = owned[val if validation else train]
        rows.setflags(write=False)
        return rows

    def _client_part(self, k: int, validation: bool) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.from_numpy(self.client_samples(k, validation).copy())
        return self.inputs(self.train_inputs[rows]), self.y_train[rows]


@dataclass(frozen=True, eq=False)
class GeneratedData(FederatedData):
    """Synthetic clients whose samples are generated on demand (hpcfed.data.synthetic); client
    ``k``'s generated training samples are split into training and validation by ``client_split``."""

    generator: SyntheticClients

    def _client_part(self, k: int, validation: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_client(k)
        x, y = self.generator.train(k)
        train, val = self.client_split.split(k, len(y))
        rows = torch.from_numpy(val if validation else train)
        return x[rows], y[rows]


def _chunks(n: int, per_sample: int) -> list[slice]:
    """Slices of ``range(n)`` holding about ``_STATS_CHUNK`` values each."""
    step = max(1, _STATS_CHUNK // max(per_sample, 1))
    return [slice(start, start + step) for start in range(0, n, step)]


def channel_statistics(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (float32, a std of 0 taken as 1) of (N, C, H, W)
    samples, summed in float64 over float32 chunks so that the stored dtype does not matter."""
    n, channels = x_train.shape[:2]
    count = x_train.size // channels
    chunks = _chunks(n, x_train[0].size)
    mean = sum(x_train[c].astype(np.float32).sum(axis=(0, 2, 3), dtype=np.float64) for c in chunks) / count
    shift = mean[None, :, None, None]
    var = sum(((x_train[c].astype(np.float32) - shift) ** 2).sum(axis=(0, 2, 3)) for c in chunks) / count
    std = np.sqrt(var)
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def _load_digits(test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """scikit-learn's 8x8 digits as float32 (N, 1, 8, 8), the test set split off (stream 1)."""
    x, y = read_digits()
    train, test = split_test_set(y, test_fraction, seed)
    return x[train], y[train], x[test], y[test]


def _load_femnist(path: str | None, labels: str, partition: str, num_clients: int, seed: int
                  ) -> tuple[np.ndarray, ...]:
    """FEMNIST's training and test samples and, with the natural partition, every training sample's
    client (only the chosen writers' samples are read: hpcfed.data.partition.choose_groups)."""
    train_file, test_file = femnist.femnist_files(path, labels)
    classes = femnist.CLASSES[labels]
    select = None
    if partition == NATURAL:
        rng = np.random.default_rng([seed, PARTITION_STREAM])
        select = functools.partial(choose_groups, num_clients=num_clients, rng=rng)
    x_train, y_train, owner = femnist.read_file(train_file, classes, select)
    x_test, y_test, _ = femnist.read_file(test_file, classes)
    return x_train, y_train, owner, x_test, y_test


def _check_arguments(
    name: str, path: str | None, partition: str, num_clients: int, test_fraction: float, seed: int, labels: str
) -> None:
    """Validates the arguments shared by all data sets (partition parameters are checked later)."""
    require(name in DATASETS, "data.name", name, f"one of {', '.join(DATASETS)}")
    if name == "synthetic":
        accepted = "'natural' for synthetic (one generator per client)"
        require(partition == NATURAL, "data.partition", partition, accepted)
    elif name == "femnist":
        accepted = f"one of {', '.join(PARTITIONS)}, {NATURAL} (one client per writer) for femnist"
        require(partition in (*PARTITIONS, NATURAL), "data.partition", partition, accepted)
    else:
        accepted = f"one of {', '.join(PARTITIONS)} for {name}"
        require(partition in PARTITIONS, "data.partition", partition, accepted)
    choices = LABELS.get(name, ())
    accepted = (f"'' or one of {', '.join(choices)} for {name} (default {choices[0]})" if choices
                else f"'' ({name} has one set of labels; fine/coarse is cifar100's, all/digits femnist's)")
    require(labels in ("", *choices), "data.labels", labels, accepted)
    integer = (int, np.integer)
    ok_clients = isinstance(num_clients, integer) and num_clients >= 1
    require(ok_clients, "clients.total", num_clients, "an integer >= 1")
    require(isinstance(seed, integer) and seed >= 0, "seed", seed, "an integer >= 0")
    if name not in FROM_DISK:
        accepted = "a number strictly between 0 and 1"
        require(0 < test_fraction < 1, "data.test_fraction", test_fraction, accepted)
    if name in ("digits", "deformed_digits"):
        require(not path, "data.path", path, f"no path: {name} is made from scikit-learn's digits")
    if name == "synthetic":
        require(not path, "data.path", path, "no path: synthetic is generated")


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
    client_val_fraction: float = 0.0,
    server_val_fraction: float = 0.0,
    deformed: DeformedOptions | None = None,
    labels: str = "",
) -> FederatedData:
    """Loads (or generates) a data set, normalises it and partitions it over ``num_clients`` clients.

    Args:
        name: ``digits``, ``synthetic``, ``cifar10``, ``deformed_digits`` (hpcfed.data.deformed),
            ``cifar100`` (hpcfed.data.cifar100) or ``femnist`` (hpcfed.data.femnist).
        path: the ``cifar-10-batches-py`` folder for cifar10, the ``cifar-100-python`` folder for
            cifar100, the folder of TFF's ``fed_emnist_*.h5`` files for femnist; empty for the others.
        partition: ``iid``, ``dirichlet`` or ``shards`` (stored sets and deformed_digits' base digits);
            ``natural`` (synthetic; femnist: one client per writer, ``num_clients`` of them at most
            the number of writers, chosen as hpcfed.data.partition.choose_groups says).
        alpha: Dirichlet concentration for ``dirichlet``.
        shards_per_client: shards per client for ``shards``.
        num_clients: number of clients.
        test_fraction: share of the samples held out as the server test set (ignored by the sets
            read from disk, whose test sets are files of their own).
        seed: seed of every random choice.
        synthetic_alpha, synthetic_beta: heterogeneity of the Synthetic generator.
        synthetic_dim: number of Synthetic features.
        synthetic_samples: samples per Synthetic client; 0 draws FedProx's lognormal sizes.
        client_val_fraction: share of every client's samples kept out of its training for validation.
        server_val_fraction: share of the training samples held by the server for validation.
        deformed: deformed_digits' options (default: :class:`DeformedOptions`'s defaults).
        labels: which labels: cifar100 ``fine`` (100 classes, the default) or ``coarse`` (20);
            femnist ``all`` (62 classes, the default) or ``digits`` (the digits-only files, 10);
            empty (the default) for the others.

    Raises:
        DataError: for an unknown name or partition, bad numbers, or a missing or malformed file.
    """
    _check_arguments(name, path, partition, num_clients, test_fraction, seed, labels)
    check_fraction("data.client_val_fraction", client_val_fraction)
    check_fraction("data.server_val_fraction", server_val_fraction)
    client_split = ClientValidation(float(client_val_fraction), int(seed))
    if name == "synthetic":
        require(synthetic_alpha >= 0, "data.synthetic_alpha", synthetic_alpha, "a number >= 0")
        require(synthetic_beta >= 0, "data.synthetic_beta", synthetic_beta, "a number >= 0")
        require(synthetic_dim >= 1, "data.synthetic_dim", synthetic_dim, "an integer >= 1")
        require(synthetic_samples >= 0, "data.synthetic_samples", synthetic_samples, "an integer >= 0")
        generator = SyntheticClients(num_clients, synthetic_alpha, synthetic_beta, synthetic_dim,
                                     synthetic_samples, test_fraction, server_val_fraction, seed)
        return _synthetic(generator, test_fraction, server_val_fraction, client_split)
    if name == "deformed_digits":
        from hpcfed.data.deformed import DeformedOptions, load_deformed  # it subclasses FederatedData
        return load_deformed(deformed or DeformedOptions(), partition, alpha, shards_per_client, num_clients,
                             test_fraction, seed, server_val_fraction, client_split)
    labels = labels or LABELS.get(name, ("",))[0]
    classes, owner = NUM_CLASSES, None
    if name == "digits":
        x_train, y_train, x_test, y_test = _load_digits(test_fraction, seed)
    elif name == "cifar10":
        x_train, y_train, x_test, y_test = read_cifar10(path)
    elif name == "cifar100":
        x_train, y_train, x_test, y_test = cifar100.read_cifar100(path, labels)
        classes = cifar100.CLASSES[labels]
    else:
        x_train, y_train, owner, x_test, y_test = _load_femnist(path, labels, partition, num_clients, seed)
        classes = femnist.CLASSES[labels]
    pool, val = server_validation_split(y_train, server_val_fraction, seed)
    x_val, y_val = x_train[val], y_train[val]
    if len(val):
        x_train, y_train = x_train[pool], y_train[pool]
        owner = None if owner is None else owner[pool]
    if partition == NATURAL:
        offsets, indices = partition_natural(owner, num_clients)
        empty = np.flatnonzero(np.diff(offsets) == 0)
        first = int(empty[0]) if empty.size else -1
        require(not empty.size, "data.server_val_fraction", server_val_fraction,
                f"a share that leaves every writer a training sample (client {first} has none)")
    else:
        offsets, indices = partition_labels(y_train, partition, num_clients, alpha=alpha,
                                            shards_per_client=shards_per_client,
                                            rng=np.random.default_rng([seed, PARTITION_STREAM]))
    mean, std = channel_statistics(x_train)
    for array in (offsets, indices, mean, std):
        array.setflags(write=False)
    return StoredData(
        name=name,
        test_inputs=torch.from_numpy(x_test),
        y_test=torch.from_numpy(y_test),
        num_classes=classes,
        client_offsets=offsets,
        val_inputs=torch.from_numpy(x_val),
        y_val=torch.from_numpy(y_val),
        client_split=client_split,
        train_inputs=torch.from_numpy(x_train),
        y_train=torch.from_numpy(y_train),
        client_indices=indices,
        mean=mean,
        std=std,
    )


def _synthetic(generator: SyntheticClients, test_fraction: float, server_val_fraction: float,
               client_split: ClientValidation) -> GeneratedData:
    """Synthetic clients generated on demand; the test and server validation sets and the
    normalisation come from the first ``TEST_CLIENTS`` clients."""
    check_test_set(int(generator.held_out[:TEST_CLIENTS].sum()), int(generator.counts[:TEST_CLIENTS].sum()),
                   test_fraction)
    expected = "a share that leaves validation samples (0 held out by the test clients)"
    require(server_val_fraction == 0 or generator.server_held.any(), "data.server_val_fraction",
            server_val_fraction, expected)
    (x_test, y_test), (x_val, y_val) = generator.pool(range(min(generator.num_clients, TEST_CLIENTS)))
    offsets = np.concatenate([[0], np.cumsum(generator.train_counts)]).astype(np.int64)
    offsets.setflags(write=False)
    return GeneratedData(name="synthetic", test_inputs=x_test, y_test=y_test, num_classes=NUM_CLASSES,
                         client_offsets=offsets, val_inputs=x_val, y_val=y_val, client_split=client_split,
                         generator=generator)
