"""Loading a federated data set from the job's ``data`` section: the loader that dispatches on
``data.name`` and the arguments every source shares.

Stored sets are read (scikit-learn's digits; CIFAR-10, CIFAR-100 and FEMNIST from ``data.path``),
their server test set split off (or read from its own file), the server's validation share held
back, the rest partitioned over the clients (hpcfed.data.partition) and held as a
:class:`~hpcfed.data.federated.StoredData`; synthetic clients (hpcfed.data.synthetic) and
deformed digits (hpcfed.data.deformed) are generated on demand. The same arguments always give
identical arrays (every random choice is seeded, hpcfed.data.splits).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from hpcfed.config import DataConfig
from hpcfed.data import cifar100, femnist
from hpcfed.data.cifar import read_cifar10
from hpcfed.data.deformed import DeformedOptions, load_deformed
from hpcfed.data.digits import read_digits
from hpcfed.data.federated import NUM_CLASSES, FederatedData, GeneratedData, StoredData, channel_statistics
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

DATASETS = ("digits", "synthetic", "cifar10", "deformed_digits", "cifar100", "femnist")
FROM_DISK = ("cifar10", "cifar100", "femnist")   # read from data.path; their test sets are files of their own
LABELS = {"cifar100": tuple(cifar100.CLASSES), "femnist": tuple(femnist.CLASSES)}   # data.labels, default first
NATURAL = "natural"


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


def load_federated_data(data: DataConfig, num_clients: int, seed: int) -> FederatedData:
    """Loads (or generates) the data set of the job's ``data`` section, normalises it and partitions it
    over ``num_clients`` clients (``clients.total``), every random choice seeded by ``seed``.

    The keys read (hpcfed.config.DataConfig): ``name`` (``digits``, ``synthetic``, ``cifar10``,
    ``deformed_digits``, ``cifar100``, ``femnist``); ``path`` (the ``cifar-10-batches-py`` folder, the
    ``cifar-100-python`` folder, or the folder of TFF's ``fed_emnist_*.h5`` files; empty for the
    others); ``partition`` (``iid``, ``dirichlet`` with ``alpha`` or ``shards`` with
    ``shards_per_client``; ``natural`` for synthetic and for femnist's writers, ``num_clients`` of them
    at most the number of writers, hpcfed.data.partition.choose_groups); ``test_fraction`` (ignored by
    the sets read from disk, whose test sets are files of their own); the ``synthetic_*`` keys; the
    deformed_digits keys; ``client_val_fraction`` and ``server_val_fraction``; ``labels`` (cifar100
    ``fine``/``coarse``, femnist ``all``/``digits``).

    Raises:
        DataError: for an unknown name or partition, bad numbers, or a missing or malformed file.
    """
    name, path, partition, test_fraction, labels = (data.name, data.path or None, data.partition,
                                                    data.test_fraction, data.labels)
    client_val_fraction, server_val_fraction = data.client_val_fraction, data.server_val_fraction
    _check_arguments(name, path, partition, num_clients, test_fraction, seed, labels)
    check_fraction("data.client_val_fraction", client_val_fraction)
    check_fraction("data.server_val_fraction", server_val_fraction)
    client_split = ClientValidation(float(client_val_fraction), int(seed))
    if name == "synthetic":
        require(data.synthetic_alpha >= 0, "data.synthetic_alpha", data.synthetic_alpha, "a number >= 0")
        require(data.synthetic_beta >= 0, "data.synthetic_beta", data.synthetic_beta, "a number >= 0")
        require(data.synthetic_dim >= 1, "data.synthetic_dim", data.synthetic_dim, "an integer >= 1")
        require(data.synthetic_samples >= 0, "data.synthetic_samples", data.synthetic_samples, "an integer >= 0")
        generator = SyntheticClients(num_clients, data.synthetic_alpha, data.synthetic_beta, data.synthetic_dim,
                                     data.synthetic_samples, test_fraction, server_val_fraction, seed)
        return _synthetic(generator, test_fraction, server_val_fraction, client_split)
    if name == "deformed_digits":
        deformed = DeformedOptions(data.image_size, data.deformed_per_digit, data.deformed_test, data.styles,
                                   data.deform_strength)
        return load_deformed(deformed, partition, data.alpha, data.shards_per_client, num_clients,
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
        offsets, indices = partition_labels(y_train, partition, num_clients, alpha=data.alpha,
                                            shards_per_client=data.shards_per_client,
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
